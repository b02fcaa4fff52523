"""The store's records: what its parts (:mod:`callgate.store.parts`) take and return.

Every method that changes a job's status writes the matching event row in the same
transaction (the outbox). Times are unix seconds (floats) passed in by the caller, so
the store never reads a clock of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

from callgate.domain import (
    AttemptResult,
    Decision,
    Job,
    from_ts,
    iso,
)


@dataclass(frozen=True, slots=True)
class SubmitResult:
    job: Job
    created: bool  # False: the idempotency key was known and this is the existing job


@dataclass(frozen=True, slots=True)
class Claimed:
    job: Job
    slot: float  # the meter's time slot: send at or just after this instant
    #: the rate of the job's batch, when the batch has one of its own: the job then sends
    #: in its batch's slots (which are the global meter's too), else in the global ones
    lane_rate: float | None = None


@dataclass(frozen=True, slots=True)
class MeterState:
    tat: float  # GCRA theoretical arrival time of the next call
    rate: float | None  # current rate (calls/s) after AIMD; None: unlimited
    changed_at: float  # when the rate was last lowered


class MeterPolicy(Protocol):
    """The meter's arithmetic; the store applies it inside the claim transaction."""

    def allowance(self, state: MeterState, now: float, wanted: int) -> int: ...

    def take(self, state: MeterState, now: float, n: int) -> tuple[list[float], MeterState]: ...

    def next_allowed(self, state: MeterState, now: float) -> float: ...

    def lowered(self, state: MeterState, now: float) -> MeterState: ...

    def take_at(self, state: MeterState, now: float, at: float) -> tuple[float, MeterState]: ...

    def horizon(self, now: float) -> float: ...

    def for_rate(self, rate: float | None) -> MeterPolicy: ...

    @property
    def rate(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class StartAttempt:
    """Write the attempt row (``sending``) before the request. Result: its number, or
    ``None``: do not send (canceled meanwhile, and now ``canceled``; or no longer this
    worker's)."""

    job_id: int
    worker_id: str
    now: float


@dataclass(frozen=True, slots=True)
class Accepted:
    """The provider accepted attempt ``number`` under ``ref``; its status is tracked."""

    job_id: int
    number: int
    ref: str | None
    now: float


@dataclass(frozen=True, slots=True)
class Finish:
    """End attempt ``number`` and move the job on. Result: the status it got, or
    ``None`` if the attempt was settled elsewhere meanwhile (stale)."""

    job_id: int
    number: int
    result: AttemptResult
    decision: Decision
    now: float


@dataclass(frozen=True, slots=True)
class Abandon:
    """Close attempt ``number`` as never sent (uncounted) and move the job on."""

    job_id: int
    number: int
    decision: Decision
    now: float


@dataclass(frozen=True, slots=True)
class SettleUnsent:
    """Move an in-flight job that was never sent (expired, released, blocked)."""

    job_id: int
    decision: Decision
    now: float


@dataclass(frozen=True, slots=True)
class NumberFacts:
    """What the guardrails need to know about one number for one kind of job."""

    allowlist: tuple[str, ...]  # the stored allowlist's entries (numbers and patterns)
    suppressed: bool
    suppressed_why: str | None
    sent: int  # other jobs of this kind that reached the provider since ``since``
    oldest: float | None  # when the oldest of them first did
    same: int = 0  # of those since ``same_since``, the ones with this job's very content
    same_oldest: float | None = None


@dataclass(frozen=True, slots=True)
class Circuit:
    """A provider's circuit as stored: open while the provider fails for everyone."""

    name: str
    open: bool
    fault: str | None = None  # auth | access | outage (see callgate.domain.Fault)
    detail: str | None = None
    opened_at: float | None = None
    probe_at: float | None = None  # when the next probe may be sent
    probes: int = 0  # probes that failed since it opened
    probe_job: int | None = None  # the job sent as the probe, while under way
    changed_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        state = "closed"
        if self.open:
            state = "half_open" if self.probe_job is not None else "open"
        return {
            "name": self.name,
            "state": state,
            "fault": self.fault,
            "detail": self.detail,
            "opened_at": _iso(self.opened_at),
            "probe_at": _iso(self.probe_at) if self.open else None,
            "failed_probes": self.probes,
            "changed_at": _iso(self.changed_at),
        }


def _iso(ts: float | None) -> str | None:
    return None if ts is None else iso(from_ts(ts))


class SendCounts(NamedTuple):
    """Attempts that went to the provider, as the anomaly breaker weighs them."""

    last_minute: int  # every attempt started in the last minute
    unintended: int  # of those, the ones not of a batch (a batch's rate was declared)
    baseline: int  # attempts not of a batch in the baseline's minutes before the last one
    first_at: float | None  # the first attempt this database holds (the history's age)


#: one provider exchange for the audit log: (method, url, status, request, response,
#: duration, error), credentials already redacted
AuditRow = tuple[str, str, int | None, str | None, str | None, float, str | None]


#: a worker's write; :meth:`Store.write_batch` applies many at once (group commit)
Write = StartAttempt | Accepted | Finish | Abandon | SettleUnsent


@dataclass(frozen=True, slots=True)
class Uncertain:
    """An ``uncertain`` job claimed for reconciliation, with the attempt in doubt."""

    job: Job
    number: int  # the attempt's number
    provider_ref: str | None  # the provider's reference, when the request was answered
    started_at: float  # when the attempt row was written (just before the request)
    ended_at: float | None


#: a verified provider status callback heard from another process: (provider, ref, result)
StatusCallback = Callable[[str, str, AttemptResult], None]


T = TypeVar("T")


def chunks(items: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
