"""``callgate serve``: the HTTP API, a worker and the webhook sender in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from callgate.api import create_app
from callgate.exceptions import WorkerFailed
from callgate.gateway import Gateway

log = logging.getLogger("callgate.server")


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handling: uvicorn re-raises a caught SIGTERM
    once HTTP is down, which would kill the process before the worker stops. ``serve``
    handles the signals itself and shuts everything down in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def http_server(app: Any, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for ``app`` that leaves the signals to its caller; its log lines
    go to callgate's handler (the format of ``CALLGATE_LOG_FORMAT``, redacted)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,
        lifespan="off",
        access_log=False,
    )
    return _Server(config)


async def serve(
    gateway: Gateway, host: str, port: int, *, on_ready: Callable[[int], None] | None = None
) -> None:
    """Run until SIGTERM/SIGINT: then stop taking requests, let the worker finish or
    release its jobs, and return."""
    server = http_server(create_app(gateway), host, port)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _exit, server)
    worker = gateway.worker()
    working = asyncio.create_task(worker.run(), name="callgate-worker")
    # a worker that stops on its own takes the process down (non-zero exit), after the
    # HTTP server has stopped taking requests
    working.add_done_callback(lambda _: _exit(server) if worker.failure is not None else None)
    background = [working]
    background += [asyncio.create_task(t, name=n) for n, t in gateway.background_tasks()]
    try:
        serving = asyncio.create_task(server.serve(), name="callgate-http")
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)
        # a worker that died at once may have stopped the server already: no sockets left
        sockets = [sock for srv in getattr(server, "servers", []) for sock in srv.sockets]
        if server.started and sockets and on_ready is not None:
            on_ready(int(sockets[0].getsockname()[1]))
        await serving
    finally:
        worker.stop()
        gateway.stop_background()
        failed = None
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await task
                except WorkerFailed as exc:
                    failed = exc
        await gateway.provider.aclose()  # providers (issue 5): close HTTP sessions
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    if failed is not None:
        raise failed


def _exit(server: uvicorn.Server) -> None:
    if server.should_exit:  # a second signal: stop waiting for open connections
        server.force_exit = True
    server.should_exit = True
