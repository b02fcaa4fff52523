"""Test support shipped with the package: an asyncio loop that runs on virtual time.

:class:`VirtualTimeLoop` never waits for a timer: when no callback is ready and no file
descriptor has anything to read, it moves its clock straight to the next timer. Code
under test uses plain ``asyncio.sleep`` and timeouts. Work handed to a thread
(``run_in_executor``, as :mod:`callgate.store.offload` does with store calls) stops the
clock until it is done; other real I/O (sockets) must stay out of a virtual-time test,
since time would jump while it is under way.
"""

from __future__ import annotations

import asyncio
import json
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from callgate.clock import LoopClock

T = TypeVar("T")

#: the longest a virtual-time loop waits (really) for work on a thread
THREAD_TIMEOUT = 120.0
#: 2027-01-15 12:00:00 UTC, a Friday: far from any real "now", easy to read in failures.
EPOCH = 1_799_928_000.0


class _JumpingSelector(selectors.BaseSelector):
    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if self._loop.threads_busy:
            # work on a thread (a store call) is under way: time stands still until it is
            # done, as if it took no time at all
            ready = self._real.select(THREAD_TIMEOUT)
            if not ready:
                raise RuntimeError(f"a thread's work took over {THREAD_TIMEOUT:.0f} s")
            return ready
        if timeout is None:
            raise RuntimeError("virtual-time loop is idle with no timer left: a deadlock")
        self._loop.virtual_time += timeout
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.virtual_time = 0.0
        self.threads_busy = 0  # run_in_executor calls not yet done
        super().__init__(selector=_JumpingSelector(self))

    def time(self) -> float:
        return self.virtual_time

    def run_in_executor(  # type: ignore[override]
        self, executor: Executor | None, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self.threads_busy += 1
        future.add_done_callback(self._thread_done)
        return future

    def _thread_done(self, _: object) -> None:
        self.threads_busy -= 1


def run_virtual(main: Callable[[LoopClock], Coroutine[Any, Any, T]], *, epoch: float = EPOCH) -> T:
    """Run ``main(clock)`` to its end on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    try:
        clock = LoopClock(epoch, loop)
        return loop.run_until_complete(main(clock))
    finally:
        loop.close()


async def wait_until(
    predicate: Callable[[], bool], *, step: float = 0.01, timeout: float = 3600.0
) -> None:
    """Wait (in loop time) until ``predicate()`` holds; fail after ``timeout``."""

    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(step)

    await asyncio.wait_for(poll(), timeout)


#: settings that turn the guardrails off, for tests that are not about them and for load
#: tests: every number may be contacted (outside production too), no caps, no quiet
#: hours, no anomaly breaker. Never for a deployment that can reach real people.
GUARDRAILS_OFF: dict[str, Any] = {
    "allowlist": ["*"],
    "caps": {
        **{k: None for k in ("fax", "sms", "call", "request")},
        **{f"{k}_duplicates": None for k in ("fax", "sms", "call", "request")},
    },
    "quiet_hours": {"fax": None, "sms": None, "call": None, "request": None},
    "breaker": {"enabled": False},
}
#: the same as ``CALLGATE_*`` environment variables (for a callgate in a subprocess)
GUARDRAILS_OFF_ENV: dict[str, str] = {
    "CALLGATE_ALLOWLIST": "*",
    **{f"CALLGATE_CAPS__{k}": "none" for k in ("FAX", "SMS", "CALL", "REQUEST")},
    **{f"CALLGATE_CAPS__{k}_DUPLICATES": "none" for k in ("FAX", "SMS", "CALL", "REQUEST")},
    **{f"CALLGATE_QUIET_HOURS__{k}": "none" for k in ("FAX", "SMS", "CALL", "REQUEST")},
    "CALLGATE_BREAKER__ENABLED": "false",
}

#: fictional-looking numbers by zone (each region has one time zone): a prefix that
#: takes 4 more digits, and its allowlist pattern
DAYTIME_REGIONS: tuple[tuple[str, str], ...] = (
    ("America/New_York", "+1212555"),
    ("Europe/London", "+44207946"),
    ("America/Los_Angeles", "+1415555"),
    ("Pacific/Honolulu", "+1808555"),
    ("Australia/Sydney", "+6125550"),
    ("Asia/Tokyo", "+8131234"),
)


def daytime_numbers(n: int, now: float) -> tuple[list[str], str]:
    """``n`` valid numbers (at most 10,000) where it is between 09:00 and 19:00 at
    ``now``, and the allowlist pattern that covers them: for tests and benches on real
    time with the default quiet hours on."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    for zone, prefix in DAYTIME_REGIONS:
        if 9 <= datetime.fromtimestamp(now, ZoneInfo(zone)).hour < 19:
            return [f"{prefix}{i:04d}" for i in range(n)], f"{prefix}*"
    raise AssertionError(f"no region of {DAYTIME_REGIONS} is in its daytime at {now}")


__all__ = [
    "DAYTIME_REGIONS",
    "EPOCH",
    "GUARDRAILS_OFF",
    "GUARDRAILS_OFF_ENV",
    "PipeLines",
    "ServeProcess",
    "SimProcess",
    "VirtualTimeLoop",
    "daytime_numbers",
    "free_port",
    "run_virtual",
    "wait_until",
]


# -- a real ``callgate serve`` in a subprocess ----------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a server whose URL
    must be known before it starts, e.g. ``CALLGATE_PUBLIC_URL``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PipeLines:
    """Every line a pipe yields, read on a thread (so the pipe never fills up), with a way
    to wait for a particular one."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float, what: str) -> re.Match[str]:
        """The first line (seen or to come) matching ``pattern``; raise TimeoutError if none
        comes in ``timeout`` seconds or the stream ends."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if found := re.search(pattern, line):
                        return found
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    why = "the stream closed" if self.closed else f"{timeout:.0f} s passed"
                    raise TimeoutError(f"{why} before {what}; got:\n" + self.text)
                self._changed.wait(left)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class ServeProcess:
    """``python -m callgate serve --port 0`` in a subprocess, its URL and first API key."""

    proc: subprocess.Popen[str]
    stdout: PipeLines
    stderr: PipeLines
    url: str = ""
    key: str | None = None

    @classmethod
    def start(
        cls,
        *,
        cwd: Path,
        env: Mapping[str, str],
        new_database: bool = True,
        timeout: float = 30.0,
        port: int = 0,
    ) -> ServeProcess:
        """Start it and wait until it serves (and, on a new database, printed its key);
        ``port`` 0: any free one."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "callgate", "serve", "--port", str(port)],
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        server = cls(proc, PipeLines(proc.stdout), PipeLines(proc.stderr))
        try:
            ready = server.stderr.wait_for(r"serving (http://\S+:(\d+))", timeout, "serving")
            server.url = ready.group(1)
            if new_database:
                server.key = server.stdout.wait_for(r"^cg_\S+$", timeout, "the key").group(0)
        except BaseException:
            server.stop()
            raise
        return server

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait for the exit (kill after ``timeout``); return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise TimeoutError(f"serve still ran {timeout:.0f} s after SIGTERM") from None
        self._close(timeout)
        return self.proc.returncode

    def _close(self, timeout: float) -> None:
        for lines, stream in ((self.stdout, self.proc.stdout), (self.stderr, self.proc.stderr)):
            lines.join(timeout)
            if stream is not None:
                stream.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close(15.0)


# -- a real ``callgate simulator`` in a subprocess ------------------------------------------


@dataclass
class SimProcess:
    proc: subprocess.Popen[str]
    stdout: PipeLines
    stderr: PipeLines
    log: Path
    url: str = ""
    telnyx_public_key: str = ""

    @classmethod
    def start(
        cls, home: Path, *args: str, env: dict[str, str], timeout: float = 60.0
    ) -> SimProcess:
        log = home / "sim.log"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "callgate",
                "simulator",
                "--port",
                "0",
                "--log",
                str(log),
                *args,
            ],
            cwd=home,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        sim = cls(proc, PipeLines(proc.stdout), PipeLines(proc.stderr), log)
        try:
            line = sim.stdout.wait_for(r"^\{.*\}$", timeout, "the simulator's ready line")
        except BaseException:
            sim.stop()
            raise
        ready = json.loads(line.group(0))
        sim.url, sim.telnyx_public_key = ready["url"], ready["telnyx_public_key"]
        return sim

    def log_lines(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(x) for x in self.log.read_text().split("\n")[:-1] if x.strip()]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for lines, stream in ((self.stdout, self.proc.stdout), (self.stderr, self.proc.stderr)):
            lines.join(15)
            if stream is not None:
                stream.close()
        return self.proc.returncode


def pg_bindir() -> Path | None:
    """Where the PostgreSQL server's programs are (``initdb``, ``pg_ctl``), if installed."""
    import glob
    import shutil

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return None if initdb is None else Path(initdb).parent


class PgCluster:
    """A throw-away PostgreSQL server of one's own (``initdb`` + ``pg_ctl`` in a temporary
    directory, on a free port, with a ``callgate`` database), to stop and start at will:
    an outage, a restart. The shared server is never touched. As root the server's
    commands run as the ``postgres`` user (``runuser``): PostgreSQL refuses root."""

    def __init__(
        self,
        bindir: Path,
        *,
        max_connections: int,
        settings: tuple[str, ...] = (),
        prefix: str = "callgate-pg-",
        timeout: float = 60.0,
    ) -> None:
        import os
        import shutil
        import tempfile

        import psycopg

        self.bindir, self.timeout = bindir, timeout
        self.max_connections, self.settings = max_connections, settings
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        self.data = self.dir / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE callgate")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=self.timeout)

    def start(self) -> None:
        options = " ".join(
            [
                f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                f"-c max_connections={self.max_connections}",
                *(f"-c {s}" for s in self.settings),
            ]
        )
        log = str(self.dir / "log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        """A fast shutdown: sessions are disconnected, transactions rolled back."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        import contextlib
        import shutil

        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.stop()  # (already stopped)
        shutil.rmtree(self.dir, ignore_errors=True)
