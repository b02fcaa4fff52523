"""``callgate serve``: the HTTP API, with a worker and the webhook sender beside it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import uvicorn

from callgate.api import create_app
from callgate.engine.worker import Worker
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
    release its jobs, and return. The worker runs where ``CALLGATE_SERVE_WORKER`` says
    (see :meth:`~callgate.config.Settings.serve_worker_mode`): on this loop (``thread``),
    as a ``callgate worker`` child process with the webhook sender and the alerts'
    monitor (``process``), or nowhere (``none``: an API node, workers elsewhere)."""
    server = http_server(create_app(gateway), host, port)
    loop = asyncio.get_running_loop()
    signalled: list[int] = []

    def on_signal(sig: int) -> None:
        signalled.append(sig)
        _exit(server)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    # a worker that stops on its own takes the process down (non-zero exit), after the
    # HTTP server has stopped taking requests
    working = await start_worker(gateway, lambda: _exit(server))
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
        failed = await working.stop(signalled=bool(signalled))
        await gateway.provider.aclose()  # providers (issue 5): close HTTP sessions
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    if failed is not None:
        raise failed


class Working(Protocol):
    async def stop(self, *, signalled: bool) -> WorkerFailed | None:
        """Stop working; the failure that stopped it first, if any."""


async def start_worker(gateway: Gateway, on_failure: Callable[[], None]) -> Working:
    """The worker (and the webhook sender, the alerts' monitor) where the settings say."""
    mode = gateway.settings.serve_worker_mode()
    if mode == "process":
        return await Child.start(gateway.settings.shutdown_grace, on_failure)
    if mode == "none":
        log.info("no worker in this process (CALLGATE_SERVE_WORKER=none)")
        return InPlace(gateway, None, on_failure)
    return InPlace(gateway, gateway.worker(), on_failure)


class InPlace:
    """The worker and the background services as tasks of this loop."""

    def __init__(self, gateway: Gateway, worker: Worker | None, on_failure: Callable[[], None]):
        self._gateway, self._worker = gateway, worker
        self._tasks: list[asyncio.Task[None]] = []
        if worker is not None:
            working = asyncio.create_task(worker.run(), name="callgate-worker")
            working.add_done_callback(lambda _: on_failure() if worker.failure else None)
            self._tasks = [working]
            self._tasks += [asyncio.create_task(t, name=n) for n, t in gateway.background_tasks()]

    async def stop(self, *, signalled: bool) -> WorkerFailed | None:
        if self._worker is not None:
            self._worker.stop()
        self._gateway.stop_background()
        failed = None
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await task
                except WorkerFailed as exc:
                    failed = exc
        return failed


class Child:
    """``callgate worker`` as a child process of ``serve`` (same environment, same
    working directory, so the same settings; its log lines on the same streams).
    :attr:`exited` is done when it exits; :meth:`stop` asks it to stop (SIGTERM: jobs
    in flight finish within the shutdown grace, unsent ones go back to the queue) and
    kills it only when it is still running well past that grace."""

    def __init__(
        self, proc: asyncio.subprocess.Process, grace: float, on_exit: Callable[[], None]
    ) -> None:
        self._proc, self._grace = proc, grace
        self.pid = proc.pid
        self.exited: asyncio.Task[int] = asyncio.create_task(proc.wait(), name="callgate-child")
        self.exited.add_done_callback(lambda _: on_exit())

    @classmethod
    async def start(cls, grace: float, on_exit: Callable[[], None]) -> Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callgate", "worker", preexec_fn=_stop_with_parent
        )
        log.info("worker process %d started", proc.pid)
        return cls(proc, grace, on_exit)

    async def stop(self, *, signalled: bool) -> WorkerFailed | None:
        code = await self._wait()
        if code != 0 or not signalled:  # it stopped on its own, or badly
            return WorkerFailed(f"the worker process (pid {self.pid}) exited with {code}")
        return None

    async def _wait(self) -> int:
        if not self.exited.done():
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self.exited), self._grace + 10.0)
            except TimeoutError:
                log.error("worker process %d did not stop: killed", self.pid)
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
        return await self.exited


def _stop_with_parent() -> None:
    """In the child, before it runs: SIGTERM when ``serve`` dies, even killed outright
    (Linux's parent-death signal), so that no worker outlives its ``serve``."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _exit(server: uvicorn.Server) -> None:
    if server.should_exit:  # a second signal: stop waiting for open connections
        server.force_exit = True
    server.should_exit = True
