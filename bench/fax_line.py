"""One fax line, many faxes: how much of the line's time is spent faxing.

``callgate serve`` and ``callgate simulator`` run as subprocesses; N faxes to one number
go through the Telnyx adapter (its SDK, against the simulator), each taking
``--fax-duration`` seconds on the line. At most one fax is on a line at a time, so the
run can never take less than the sum of the fax durations; what it takes beyond that is
the time the line sits idle between faxes: learning that a fax ended, recording it, and
starting the next. The figure is ``total ÷ sum of fax durations`` from the simulator's
call log (first start to last end), target ≤ 1.05.

Three designs in the same run:

* ``callbacks``: callgate as configured for production: the vendor's signed status
  callback ends each fax (adaptive polling, 1 s first, as the backstop);
* ``polling``: no callbacks (no ``CALLGATE_PUBLIC_URL``), callgate's adaptive polling
  alone (1 s first, growing 1.5× to 30 s);
* ``seed``: the seed design this grew from: no callbacks, a fixed 15 s poll.

    python bench/fax_line.py [--faxes 30] [--fax-duration 1] [--seed-faxes 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(__file__))
import itertools

from _common import emit

from callgate.testing import GUARDRAILS_OFF_ENV, ServeProcess, free_port

LINE = "+12125550190"
FROM = "+15005550006"
PDF = "https://example.org/ballot.pdf"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}


def start_simulator(home: Path, fax_duration: float) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "callgate", "simulator", "--port", "0",
            "--log", str(home / "sim.log"), "--fax-duration", str(fax_duration),
            "--callback-delay", "0",
        ],
        cwd=home, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())
    return proc, ready["url"], ready["telnyx_public_key"]


def run(design: str, faxes: int, fax_duration: float, work: Path) -> dict[str, Any]:
    home = work / design
    home.mkdir()
    sim, sim_url, public_key = start_simulator(home, fax_duration)
    port = free_port()
    env = clean_env() | {
        **GUARDRAILS_OFF_ENV,  # 30 faxes to one line are over the default fax cap
        "CALLGATE_DATABASE_URL": f"sqlite:///{home}/gw.db",
        "CALLGATE_RATE": "0",
        "CALLGATE_PROVIDER_FAX": "telnyx",
        "CALLGATE_TELNYX_API_KEY": "KEYsimulator",
        "CALLGATE_TELNYX_CONNECTION_ID": "sim",
        "CALLGATE_TELNYX_FROM": FROM,
        "CALLGATE_TELNYX_BASE_URL": f"{sim_url}/v2",
        "CALLGATE_TELNYX_PUBLIC_KEY": public_key,
    }
    if design == "callbacks":
        env["CALLGATE_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    if design == "seed":
        env |= {"CALLGATE_POLL_INITIAL": "15", "CALLGATE_POLL_MAX": "15"}
    try:
        with ServeProcess.start(cwd=home, env=env, port=port) as server:
            auth = {"Authorization": f"Bearer {server.key}"}
            with httpx.Client(base_url=server.url, headers=auth, timeout=10) as client:
                start = time.monotonic()
                for _ in range(faxes):
                    r = client.post("/v1/faxes", json={"to": LINE, "media_url": PDF})
                    r.raise_for_status()
                while True:
                    jobs = client.get("/v1/jobs", params={"limit": faxes}).json()["data"]
                    if all(j["status"] == "delivered" for j in jobs):
                        break
                    time.sleep(0.1)
                wall = time.monotonic() - start
            server.stop()
    finally:
        sim.terminate()
        sim.wait(15)
    calls = sorted(
        (json.loads(line) for line in (home / "sim.log").read_text().splitlines() if line),
        key=lambda c: c["started_at"],
    )
    assert len(calls) == faxes, f"{len(calls)} calls for {faxes} faxes"
    busy = sum(c["ended_at"] - c["started_at"] for c in calls)
    total = calls[-1]["ended_at"] - calls[0]["started_at"]
    gaps = sorted(b["started_at"] - a["ended_at"] for a, b in itertools.pairwise(calls))
    return {
        "faxes": faxes,
        "fax_seconds": round(busy, 3),
        "line_seconds": round(total, 3),
        "ratio": round(total / busy, 4),
        "idle_gap_median_s": round(gaps[len(gaps) // 2], 3) if gaps else None,
        "idle_gap_max_s": round(gaps[-1], 3) if gaps else None,
        "submit_to_done_s": round(wall, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faxes", type=int, default=30)
    parser.add_argument("--fax-duration", type=float, default=1.0)
    parser.add_argument("--seed-faxes", type=int, default=30, help="faxes for the 15 s poll run")
    parser.add_argument("--designs", nargs="+", default=["callbacks", "polling", "seed"])
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for design in args.designs:
            n = args.seed_faxes if design == "seed" else args.faxes
            results[design] = run(design, n, args.fax_duration, Path(tmp))
    doc: dict[str, Any] = {
        "bench": "fax_line",
        "fax_duration_s": args.fax_duration,
        "target_ratio": 1.05,
        **results,
    }
    if "callbacks" in results and "seed" in results:
        doc["seed_over_callbacks"] = round(
            results["seed"]["ratio"] / results["callbacks"]["ratio"], 2
        )
    emit(doc)


if __name__ == "__main__":
    main()
