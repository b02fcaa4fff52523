"""A job's attempt: wait for its slot, re-check the guardrails, write the attempt row,
send, follow its status, record the outcome (mixed into
:class:`~callgate.engine.worker.Worker`)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from typing import TYPE_CHECKING

from callgate import logs
from callgate.domain import (
    EXPIRED,
    RELEASED,
    AttemptResult,
    Decision,
    Job,
    Outcome,
    Status,
)
from callgate.engine.health import routes_of
from callgate.engine.pacer import Pacer
from callgate.exceptions import StoreError
from callgate.providers import audit
from callgate.store.base import (
    Abandon,
    Accepted,
    Claimed,
    Finish,
    SettleUnsent,
    StartAttempt,
)

if TYPE_CHECKING:
    from callgate.engine.worker import Worker

log = logging.getLogger("callgate.worker")
#: not sent: too little of the job's lease was left to send it safely
LEASE_SHORT = Decision(
    Status.QUEUED,
    "lease_short",
    "not sent: the worker's lease on it had nearly run out (late heartbeats); queued again",
)
#: when the job of this task was claimed (each job runs in a task of its own)
_claimed_at: contextvars.ContextVar[float] = contextvars.ContextVar("callgate_claimed_at")


async def _run_job(self: Worker, claimed: Claimed, pacer: Pacer | None) -> None:
    job = claimed.job
    _claimed_at.set(self.clock.now())
    # every line logged while this task works on the job carries these (JSON logs)
    logs.bind(job_id=job.id, batch_id=job.batch_id, provider=_provider_of(self, job))
    try:
        await self._attempt(job, claimed.slot, pacer)
    except asyncio.CancelledError:
        raise
    except StoreError as exc:
        log.warning(
            "job %s: not sent, the store failed (%s); its lease will settle it", job.id, exc
        )
    except Exception:
        log.exception("job %s: unexpected error; its lease will settle it", job.id)
    finally:
        self._active.pop(job.id, None)
        self._leased_at.pop(job.id, None)
        self.wake()


async def _attempt(self: Worker, job: Job, slot: float, pacer: Pacer | None) -> None:
    if not await self._wait_for(slot - self._lead.value):
        await self._write(SettleUnsent(job.id, RELEASED, self.clock.now()))
        return
    if job.expired(max(slot, self.clock.now())):
        await self._write(SettleUnsent(job.id, EXPIRED, self.clock.now()))
        return
    refused = await self._checks(job)
    if refused is not None:  # fail closed: the last word before the request
        await self._write(SettleUnsent(job.id, refused, self.clock.now()))
        return
    now = self.clock.now()
    number = await self._write(StartAttempt(job.id, self.worker_id, now))
    self._lead.observe(self.clock.now() - now, self.clock.now())
    if number is None:
        return  # canceled meanwhile, or no longer ours: fail closed
    logs.bind(attempt=number)
    on_time = pacer is None or await pacer.acquire()
    if not on_time or job.expired(self.clock.now()):
        why = EXPIRED if on_time else RELEASED
        await self._write(Abandon(job.id, number, why, self.clock.now()))
        return
    if self._lease_short(job.id):
        await self._write(Abandon(job.id, number, LEASE_SHORT, self.clock.now()))
        return
    result = await self._send(job, number)
    self.stats.sent += 1
    logs.bind(provider_ref=result.provider_ref)
    if result.outcome is None:
        ref = result.provider_ref
        await self._write_until_done(job, Accepted(job.id, number, ref, self.clock.now()))
        result = await self._track(job, ref, number)
    await self._record(job, number, result)


def _provider_of(self: Worker, job: Job) -> str:
    """The name of the provider the job's kind is sent through."""
    routes = self.health.routes if self.health is not None else routes_of(self.provider)
    return routes.get(job.kind, "provider")


def _lease_short(self: Worker, job_id: int) -> bool:
    """Fail closed: the job's lease may run out while its request is on the way (the
    heartbeats came late: a stalled process, a store that did not answer). Once it
    has, the sweep finds the job in doubt and a reconciler that looks before this
    request arrives would find nothing and queue it again: two sends."""
    renewed = self._leased_at.get(job_id)
    left = -1.0 if renewed is None else renewed + self.config.lease - self.clock.now()
    return left < self.config.lease / 3


def _at_send_many(self: Worker, jobs: list[Job]) -> list[Decision | Exception | None]:
    """The guardrails, then the provider's circuit, for the jobs about to be sent at
    this moment (blocks on the store; the worker's ``_checks`` groups them: one read of
    the breaker, the allowlist, the suppressions and the circuits for them all)."""
    now = self.clock.now()
    refused: list[Decision | None] = [None] * len(jobs)
    if self.guard is not None:
        refused = self.guard.at_send_many(jobs, now)
    if self.health is not None:
        waiting = [job for job, why in zip(jobs, refused, strict=True) if why is None]
        checked = iter(self.health.check_many(waiting, now))
        refused = [why if why is not None else next(checked) for why in refused]
    return list(refused)


async def _reserve_slots(self: Worker, n: int, batch_id: int | None = None) -> list[float]:
    slots = await self._db(self.store.reserve_slots, self.clock.now(), self._meter(), n, batch_id)
    self.stats.reslotted += len(slots)
    return slots


async def _wait_for(self: Worker, slot: float) -> bool:
    """Sleep until ``slot``; False if told to stop while waiting. A job whose slot has
    come goes ahead even when stopping: it finishes within the grace period."""
    assert self._stopping is not None
    delay = slot - self.clock.now()
    if delay <= 0:
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(self._stopping.wait(), delay)
    return not self._stopping.is_set()


async def _send(self: Worker, job: Job, number: int) -> AttemptResult:
    with audit.capture() as exchanges:
        try:
            result = await self.provider.send(job)
        except Exception as exc:
            log.exception("job %s: the provider adapter raised", job.id)
            result = AttemptResult(Outcome.UNKNOWN, error_message=f"adapter error: {exc!r}")
    await self._audit(job, number, exchanges)
    return result


async def _poll(self: Worker, job: Job, ref: str, number: int) -> AttemptResult:
    with audit.capture() as exchanges:
        try:
            result = await self.provider.status(job, ref)
        except Exception as exc:  # keep polling: a failed poll proves nothing
            log.warning("job %s: status poll failed: %r", job.id, exc)
            result = AttemptResult(None, provider_ref=ref)
    await self._audit(job, number, exchanges)
    return result


async def _audit(self: Worker, job: Job, number: int, exchanges: list[audit.Exchange]) -> None:
    """File the attempt's provider exchanges in the audit log (redacted)."""
    if self.guard is None or not exchanges:
        return
    try:
        await self._db(self.guard.file_audit, job.id, number, exchanges, self.clock.now())
    except StoreError as exc:
        log.warning("job %s: the audit log could not be written: %s", job.id, exc)


async def _track(self: Worker, job: Job, ref: str | None, number: int) -> AttemptResult:
    """Follow a pending attempt until it ends; past the deadline it is ``unknown``."""
    if ref is None:
        return AttemptResult(Outcome.UNKNOWN, error_message="accepted without a reference")
    deadline = self.clock.now() + self.config.track_timeout
    gap = self.config.poll_initial
    try:
        while True:
            await self._hub.wait(ref, min(gap, max(0.0, deadline - self.clock.now())))
            result = await self._poll(job, ref, number)
            if result.outcome is not None:
                return result
            if self.clock.now() >= deadline:
                return AttemptResult(
                    Outcome.UNKNOWN,
                    provider_ref=ref,
                    error_message=f"no final status after {self.config.track_timeout:.0f} s",
                )
            gap = min(self.config.poll_max, gap * 1.5)
    finally:
        self._hub.forget(ref)


async def _record(self: Worker, job: Job, number: int, result: AttemptResult) -> None:
    now = self.clock.now()
    outcome = result.outcome or Outcome.UNKNOWN
    self.stats.outcomes[outcome] = self.stats.outcomes.get(outcome, 0) + 1
    logs.bind(provider_ref=result.provider_ref)
    if self.metrics is not None:
        claimed = _claimed_at.get(None)
        seconds = None if claimed is None else now - claimed
        self.metrics.attempt(str(job.kind), _provider_of(self, job), str(outcome), seconds)
    log.debug("attempt %d ended: %s", number, outcome)
    if outcome is Outcome.RATE_LIMITED:
        try:
            rate = await self._db(self.store.lower_rate, now, self.meter)
        except StoreError as exc:  # the outcome must still be recorded
            log.warning("could not lower the meter's rate after a 429: %s", exc)
        else:
            if rate is not None:
                log.warning("provider answered 429; meter rate lowered to %.2f/s", rate)
        await self._throttle_batch(job, now)
    decision = self.retry.decide(job, job.attempts + 1, result, now)
    if self.health is not None:
        try:
            decision = await self._db(self.health.observe, job, result, decision, now)
        except StoreError as exc:  # the outcome must still be recorded
            log.warning("job %s: the provider's circuit could not be updated: %s", job.id, exc)
    await self._write_until_done(job, Finish(job.id, number, result, decision, now))
    self.stats.finished += 1
    if self.guard is not None and result.suppress is not None:
        try:
            await self._db(self.guard.learn, job, result.suppress, result.error_code, now)
        except StoreError as exc:
            log.warning("job %s: could not record the suppression: %s", job.id, exc)


async def _throttle_batch(self: Worker, job: Job, now: float) -> None:
    """The batch rule: repeated 429s for a batch's jobs lower that batch's rate."""
    rule = self.config.batch_throttle
    if rule is None or job.batch_id is None:
        return
    try:
        rate = await self._db(
            self.store.batch_throttled,
            job.batch_id,
            now,
            after=rule.after,
            window=rule.window,
            factor=rule.factor,
        )
    except StoreError as exc:
        log.warning("could not count the 429 against batch %s: %s", job.batch_id, exc)
        return
    if rate is not None:
        log.warning(
            "batch %s: repeated 429 answers; its rate is lowered to %.2f/s", job.batch_id, rate
        )
