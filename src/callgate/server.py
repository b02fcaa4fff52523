"""``callgate serve``: the HTTP API, a worker and the webhook sender in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import uvicorn

from callgate.api import create_app
from callgate.gateway import Gateway

log = logging.getLogger("callgate.server")


async def serve(
    gateway: Gateway, host: str, port: int, *, on_ready: Callable[[int], None] | None = None
) -> None:
    """Run until SIGTERM/SIGINT: then stop taking requests, let the worker finish or
    release its jobs, and return."""
    app = create_app(gateway)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    worker = gateway.worker()
    background = [asyncio.create_task(worker.run(), name="callgate-worker")]
    background += [asyncio.create_task(t, name=n) for n, t in gateway.background_tasks()]
    try:
        serving = asyncio.create_task(server.serve(), name="callgate-http")
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)
        if server.started and on_ready is not None:
            bound = server.servers[0].sockets[0].getsockname()[1]
            on_ready(int(bound))
        await serving
    finally:
        worker.stop()
        gateway.stop_background()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
