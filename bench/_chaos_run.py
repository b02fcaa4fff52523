"""bench/chaos.py's moving parts: a producer paced by real elapsed time, ``callgate
worker`` processes to kill and restart, the HTTP simulator, and a watch on the jobs a
killed worker left in flight.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from callgate.domain import make_spec
from callgate.exceptions import StoreError
from callgate.store.postgres import PostgresStore
from callgate.testing import GUARDRAILS_OFF_ENV, SimProcess

NUMBERS = [f"+1202555{i:04d}" for i in range(1000)]
#: statuses a job may still be in while the system works on it
ACTIVE = ("queued", "in_flight", "retrying", "uncertain")
#: the worker settings of every scenario: a short lease (a killed worker's jobs come back
#: within it), fast sweeps and reconciliation, a meter well above the producer's rate
WORKER_ENV = {
    "CALLGATE_RATE": "2000",
    "CALLGATE_BURST": "0.2",
    "CALLGATE_MAX_CONCURRENCY": "1000",
    "CALLGATE_CLAIM_BATCH": "200",
    "CALLGATE_LEASE": "5",
    "CALLGATE_SWEEP_INTERVAL": "0.5",
    "CALLGATE_IDLE_POLL": "0.2",
    "CALLGATE_RECONCILE_INTERVAL": "1",
    "CALLGATE_RECONCILE_PAD": "0.5",  # one machine, one clock: no skew to allow for
    "CALLGATE_RECONCILE_RETRY_DELAY": "1",
    "CALLGATE_POLL_INITIAL": "0.05",
    "CALLGATE_POLL_MAX": "0.5",
    "CALLGATE_SHUTDOWN_GRACE": "5",
    **GUARDRAILS_OFF_ENV,
}
SIM_LATENCY = 0.005


class Producer(threading.Thread):
    """Submits ``rate`` jobs a second through the store, paced by real elapsed time
    (what falls behind is caught up), each with an idempotency key so that a submit cut
    by a fault is retried without a second job; the ids it was given are "accepted"."""

    def __init__(self, url: str, rate: float) -> None:
        super().__init__(name="chaos-producer", daemon=True)
        self.url, self.rate = url, rate
        self.accepted: set[int] = set()
        self.errors = 0
        self._stop_at: float | None = None
        self._halt = threading.Event()

    def halt(self) -> None:
        self._halt.set()
        self.join(60)

    def run(self) -> None:
        store = PostgresStore(self.url, migrate=False, max_size=2)
        try:
            start, n = time.monotonic(), 0
            while not self._halt.is_set():
                due = int(self.rate * (time.monotonic() - start)) - n
                if due <= 0:
                    self._halt.wait(0.01)
                    continue
                specs = [
                    make_spec(
                        "sms",
                        to=NUMBERS[i % len(NUMBERS)],
                        body=f"chaos {i}",
                        idempotency_key=f"chaos-{i}",
                    )
                    for i in range(n, n + min(due, 500))
                ]
                try:
                    results = store.submit(specs, time.time())
                except StoreError:
                    self.errors += 1
                    self._halt.wait(0.1)  # the same keys again: no job twice
                    continue
                self.accepted.update(r.job.id for r in results)
                n += len(specs)
        finally:
            store.close()


@dataclass
class Workers:
    """``callgate worker`` processes, each start with a worker id of its own."""

    home: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # slot -> current worker id
    starts: int = 0
    kills: int = 0

    def start(self, slot: str) -> str:
        self.starts += 1
        worker_id = f"{slot}-{self.starts}"
        with open(self.home / f"{worker_id}.log", "wb") as out:
            self.procs[slot] = subprocess.Popen(
                [sys.executable, "-m", "callgate", "worker"],
                cwd=self.home,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.ids[slot] = worker_id
        return worker_id

    def kill(self, slot: str) -> int:
        """SIGKILL: no grace, no release; the pid it had (part of its worker id,
        ``host:pid:...``)."""
        proc = self.procs[slot]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        self.kills += 1
        return proc.pid

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs.values())

    def stop(self) -> list[int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in self.procs.values():
            try:
                codes.append(proc.wait(30))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes

    def crashed(self) -> list[str]:
        """Log files of worker starts that said Traceback (a worker that crashed)."""
        found = []
        for log in sorted(self.home.glob("w*.log")):
            if b"Traceback" in log.read_bytes():
                found.append(log.name)
        return found


def start_sim(home: Path) -> tuple[SimProcess, dict[str, str]]:
    """The HTTP simulator (one record of every call, for every worker) and the settings
    that send SMS to it through the Twilio adapter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}
    sim = SimProcess.start(home, "--latency", str(SIM_LATENCY), env=env)
    return sim, {
        "CALLGATE_PROVIDER_SMS": "twilio",
        "CALLGATE_TWILIO_ACCOUNT_SID": "ACsimulator",
        "CALLGATE_TWILIO_AUTH_TOKEN": "simulator-auth-token",
        "CALLGATE_TWILIO_FROM": "+15005550006",
        "CALLGATE_TWILIO_BASE_URL": sim.url,
    }


class OrphanWatch(threading.Thread):
    """After a kill: how long until none of the jobs the dead worker held is in flight
    or uncertain any more (its lease ran out, the attempt was reconciled)."""

    def __init__(self, url: str, pid: int, killed_at: float) -> None:
        super().__init__(name="chaos-orphans", daemon=True)
        self.url, self.pid, self.killed_at = url, pid, killed_at
        self.jobs = 0
        self.settled_s: float | None = None

    def run(self) -> None:
        store = PostgresStore(self.url, migrate=False, max_size=1)
        with contextlib.suppress(StoreError), contextlib.closing(store):
            rows = store._read(
                "SELECT id FROM jobs WHERE status = 'in_flight' AND worker_id LIKE ?",
                (f"%:{self.pid}:%",),
            )
            ids = [int(r[0]) for r in rows]
            self.jobs = len(ids)
            while time.monotonic() - self.killed_at < 120:
                left = store._read(
                    "SELECT count(*) FROM jobs WHERE id = ANY(?) "
                    "AND status IN ('in_flight', 'uncertain')",
                    (ids,),
                )
                if int(left[0][0]) == 0:
                    self.settled_s = round(time.monotonic() - self.killed_at, 2)
                    return
                time.sleep(0.2)


def wait_drained(url: str, timeout: float) -> dict[str, int]:
    """Wait until no job is queued, in flight, retrying or uncertain; the counts."""
    deadline = time.monotonic() + timeout
    with contextlib.closing(PostgresStore(url, migrate=False, max_size=1)) as store:
        while True:
            try:
                counts = store.counts()
            except StoreError:
                counts = {}
            if counts and not any(counts.get(s) for s in ACTIVE):
                return counts
            if time.monotonic() > deadline:
                return counts
            time.sleep(0.25)
