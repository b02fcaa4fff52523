"""Webhook delivery throughput: events/s from the outbox to a local receiver.

Queues N jobs with a ``callback_url`` on a local receiver (a minimal keep-alive HTTP
server in its own process, answering 204), lets a worker finish them (N
``job.delivered`` events), then times the webhook sender from its start until every
delivery is ``delivered``. Signing, the outbox fan-out, ordering and the per-delivery
bookkeeping are all included.

    python bench/webhooks.py [--events 5000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import textwrap
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit, peak_rss_mb

from callgate.config import Settings
from callgate.gateway import Gateway
from callgate.testing import GUARDRAILS_OFF, free_port

RECEIVER = textwrap.dedent(
    """
    import asyncio, sys

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\\r\\n\\r\\n")
                length = 0
                for line in head.split(b"\\r\\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 204 No Content\\r\\n\\r\\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())
    """
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        result = run(args.events, args.concurrency, f"http://127.0.0.1:{port}/hooks")
    finally:
        receiver.terminate()
        receiver.wait(10)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result["target_events_per_s"] = 1000
    emit(result)


def run(n: int, concurrency: int, url: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite:///{tmp}/bench.db",
            rate=0,
            max_concurrency=1000,
            webhook_concurrency=concurrency,
            **GUARDRAILS_OFF,  # a load test: see docs/guardrails.md
        )
        gw = Gateway(settings)
        gw.submit_many(
            [
                gw.spec("sms", to=f"+1212555{i % 1000:04d}", body=f"m{i}", callback_url=url)
                for i in range(n)
            ]
        )
        asyncio.run(gw.run_worker(drain=True))

        async def deliver() -> float:
            sender = gw.webhook_sender()
            task = asyncio.create_task(sender.run())
            start = time.perf_counter()
            while len(gw.store.list_deliveries(status="delivered", limit=n)) < n:
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - start
            sender.stop()
            await task
            return elapsed

        elapsed = asyncio.run(deliver())
        failed = len(gw.store.list_deliveries(status="failed", limit=n))
        gw.close()
    return {
        "events": n,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "events_per_s": round(n / elapsed),
        "failed": failed,
    }


if __name__ == "__main__":
    main()
