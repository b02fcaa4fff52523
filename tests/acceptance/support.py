"""Helpers for the acceptance tests: run ``callgate`` in subprocesses, read what they did.

``Callgate`` runs the real command (``python -m callgate``) with ``cwd`` at the test's
home and only the ``CALLGATE_*`` variables it was given; the store and the simulator log
are read directly, since both are what other processes leave behind.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from callgate.domain import Job, Status, make_spec
from callgate.store.sqlite import SQLiteStore

#: the real console entry point, run as a module (see ``src/callgate/__main__.py``)
CALLGATE = [sys.executable, "-m", "callgate"]
#: no single command should ever take this long; a hang fails the test, not the suite
COMMAND_TIMEOUT = 30.0
PDF = "https://example.org/ballot-request.pdf"


#: where a job whose attempt may have reached the provider ends up: ``uncertain`` until a
#: reconciler looks, then ``held`` when the provider cannot tell (the built-in simulator
#: only knows its own process's calls, so after a kill it never can)
IN_DOUBT = frozenset({Status.UNCERTAIN, Status.HELD})


def check_in_doubt(job: Job, *lost: str) -> None:
    """A job in doubt says why: its lease ran out (or ``lost``), or it was held by a
    reconciler that could not tell."""
    if job.status is Status.UNCERTAIN:
        assert job.reason in ("lease_lost", *lost), job
    elif job.status is Status.HELD:
        assert job.reason == "unreconcilable", job
        assert "not resent blindly" in (job.detail or ""), job


def wait_for(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    state: Callable[[], object] | None = None,
) -> None:
    """Poll another process's observable state until ``predicate`` holds, or fail (saying
    what ``state`` shows then, for the post-mortem)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            seen = f"; last seen: {state()!r}" if state is not None else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{seen}")
        time.sleep(0.02)


def submit_faxes(db: Path, numbers: list[str]) -> list[int]:
    """Queue one fax per entry of ``numbers`` straight into the store; return the ids."""
    store = SQLiteStore(str(db))
    try:
        specs = [make_spec("fax", to=n, media_url=PDF) for n in numbers]
        return [r.job.id for r in store.submit(specs, time.time())]
    finally:
        store.close()


def query(db: Path, sql: str) -> list[Any]:
    """Read the database a worker process is writing (WAL: readers never block it)."""
    with closing(sqlite3.connect(db, timeout=30)) as conn:
        return conn.execute(sql).fetchall()


def one_line(stderr: str) -> str:
    """stderr must be exactly one non-empty line and no traceback; return it."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    return lines[0]


@dataclass
class Callgate:
    """Runs ``callgate`` against this test's database and simulator log."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def db(self) -> Path:
        return self.home / "callgate.db"

    @property
    def log(self) -> Path:
        return self.home / "sim.log"

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}
        return base | self.env | (extra or {})

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CALLGATE, *args],
            cwd=self.home,
            env=self.environ(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = COMMAND_TIMEOUT
    ) -> str:
        """Run a command that must succeed; return its stdout."""
        done = self.run(*args, env=env, timeout=timeout)
        assert done.returncode == 0, (
            f"callgate {' '.join(args)} exited {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
        return done.stdout

    def json(self, *args: str, env: dict[str, str] | None = None) -> Any:
        return json.loads(self.ok(*args, "--json", env=env))

    def jobs(self) -> list[dict[str, Any]]:
        return self.json("jobs", "list", "--limit", "10000")  # type: ignore[no-any-return]

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start a long-running command (a worker); stopped at teardown if still alive."""
        proc = subprocess.Popen(
            [*CALLGATE, *args],
            cwd=self.home,
            env=self.environ(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=COMMAND_TIMEOUT)
