"""Hostile input (issue 15): what the fixes cost and bound.

* ``callgate serve`` in a subprocess is sent batches nested 100,000 (JSON, 200 KB) and
  20,000 (JSON Lines, after a valid row) levels deep, a 2 MiB CSV line and a 5,000-digit
  number: each answer's status and time, and the server's peak RSS (VmHWM) before and
  after (the old parser drove it to ~24 GB at depth 100,000);
* in process, ``/healthz`` while a fax's media host takes 5 s to resolve (a stub
  resolver): the latency of each of ``--samples`` calls (it was 4.97 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit

from callgate import auth, urls
from callgate.api import create_app
from callgate.config import Settings
from callgate.gateway import Gateway
from callgate.testing import GUARDRAILS_OFF, ServeProcess


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


CASES: dict[str, tuple[str, bytes]] = {
    "json_nested_100000": (
        "application/json",
        b'[{"to": "+15005550006", "body": "hi", "metadata": {"x": ' + deep(100_000) + b"}}]",
    ),
    "jsonl_nested_20000_after_a_valid_row": (
        "application/x-ndjson",
        b'{"to": "+15005550006", "body": "hi"}\n{"metadata": ' + deep(20_000) + b"}\n",
    ),
    "csv_line_2_mib": ("text/csv", b"To,Body\n+15005550006," + b"x" * (2 << 20) + b"\n"),
    "jsonl_5000_digit_number": (
        "application/x-ndjson",
        b'{"to": "+15005550006", "body": "hi", "metadata": {"n": ' + b"9" * 5000 + b"}}\n",
    ),
}


def serve_cases() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}
        env |= {"CALLGATE_DATABASE_URL": f"sqlite:///{tmp}/gw.db", "CALLGATE_RATE": "0"}
        server = ServeProcess.start(cwd=Path(tmp), env=env)
        try:
            pid = server.proc.pid
            before = vm_hwm_mb(pid)
            out: dict[str, Any] = {"rss_peak_mb_before": round(before, 1)}
            headers = {"Authorization": f"Bearer {server.key}"}
            with httpx.Client(base_url=server.url, timeout=60) as client:
                for name, (media, body) in CASES.items():
                    began = time.perf_counter()
                    r = client.post(
                        "/v1/batches", content=body, headers=headers | {"Content-Type": media}
                    )
                    out[name] = {
                        "status": r.status_code,
                        "code": r.json()["error"]["code"],
                        "seconds": round(time.perf_counter() - began, 3),
                        "rss_peak_mb": round(vm_hwm_mb(pid), 1),
                    }
                batches = client.get("/v1/jobs", headers=headers).json()["data"]
            out["jobs_stored"] = len(batches)
            out["rss_peak_growth_mb"] = round(vm_hwm_mb(pid) - before, 1)
            return out
        finally:
            server.stop()


def healthz_while_dns_is_slow(samples: int) -> dict[str, Any]:
    started, release = threading.Event(), threading.Event()

    def slow(host: str) -> list[str]:
        started.set()
        release.wait(5.0)
        return ["93.184.215.14"]

    urls.resolve = slow  # the stub resolver: 5 s per lookup unless released
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/gw.db", dns_timeout=10, **GUARDRAILS_OFF)
        gw = Gateway(settings)
        _, token = auth.create_key(gw.store, "bench", time.time())
        app = create_app(gw)
        headers = {"Authorization": f"Bearer {token}"}

        async def main() -> list[float]:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://cg") as client:
                fax = {"to": "+15005550006", "media_url": "https://slow.example.net/b.pdf"}
                sending = asyncio.create_task(client.post("/v1/faxes", json=fax, headers=headers))
                await asyncio.to_thread(started.wait, 5.0)
                took = []
                for _ in range(samples):
                    began = time.perf_counter()
                    await client.get("/healthz")
                    took.append(time.perf_counter() - began)
                release.set()
                await sending
                return took

        took = asyncio.run(main())
        gw.close()
    took.sort()
    return {
        "samples": samples,
        "p50_ms": round(1000 * took[len(took) // 2], 2),
        "max_ms": round(1000 * took[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    emit({"serve": serve_cases(), "healthz_with_5s_dns": healthz_while_dns_is_slow(args.samples)})


if __name__ == "__main__":
    main()
