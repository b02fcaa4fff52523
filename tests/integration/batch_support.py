"""Claiming and ending jobs by hand, for the batch tests on the store."""

from __future__ import annotations

from callgate.domain import AttemptResult, Decision, Outcome, Status
from callgate.engine.meter import GCRA
from callgate.store.base import Claimed, Finish, StartAttempt
from callgate.store.parts import Store


def claim(
    store: Store, now: float, meter: GCRA | None = None, *, limit: int = 100
) -> list[Claimed]:
    """One claim by worker ``w1`` (no concurrency cap to speak of; unmetered by default)."""
    return store.claim(
        "w1",
        now,
        limit=limit,
        lease=600.0,
        max_concurrency=10_000,
        meter=meter or GCRA(rate=None),
    )


def end(
    store: Store, claimed: list[Claimed], now: float, outcome: Outcome = Outcome.DELIVERED
) -> None:
    """Send and end each claimed job at ``now``: delivered, or failed with ``outcome``."""
    status = Status.DELIVERED if outcome is Outcome.DELIVERED else Status.FAILED
    for c in claimed:
        [number] = store.write_batch([StartAttempt(c.job.id, "w1", now)])
        store.write_batch([Finish(c.job.id, number, AttemptResult(outcome), Decision(status), now)])
