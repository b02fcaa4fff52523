"""The Store protocol: queue operations (submit, claim, start, finish, ...), not SQL.

Every method that changes a job's status writes the matching event row in the same
transaction (the outbox). Times are unix seconds (floats) passed in by the caller, so
the store never reads a clock of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

from callgate.domain import (
    ApiKey,
    Attempt,
    AttemptResult,
    Batch,
    BatchRowError,
    Decision,
    Delivery,
    Event,
    Job,
    JobSpec,
    Kind,
    Status,
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


class Store(Protocol):
    #: its calls wait on the network or a disk flush: async code should call it from a
    #: thread (see :class:`callgate.store.offload.StoreCalls`)
    offload: bool

    def close(self) -> None: ...

    def migrate(self) -> list[str]:
        """Apply the migrations not yet applied; return their names."""
        ...

    def prepare_worker(self) -> None:
        """Tune the store for a long-running worker in this process (called once)."""
        ...

    def listen(
        self, callback: Callable[[], None], on_status: StatusCallback | None = None
    ) -> Callable[[], None]:
        """Call ``callback`` (from any thread) whenever another process made work
        claimable, and ``on_status`` for each status :meth:`publish_status` published;
        return the function that stops listening."""
        ...

    def publish_status(self, provider: str, ref: str, result: AttemptResult) -> None:
        """Tell the workers of every process about a verified provider status callback
        (PostgreSQL: NOTIFY; SQLite: nothing, polling covers it)."""
        ...

    def group_summary(self, limit: int = 50) -> list[tuple[str, dict[str, int]]]:
        """Per group, jobs per status (oldest groups first)."""
        ...

    # -- submit and read
    def submit(
        self, specs: Sequence[JobSpec], now: float, *, scope: str = ""
    ) -> list[SubmitResult]: ...

    def get_job(self, job_id: int) -> Job: ...

    def list_jobs(
        self,
        *,
        status: Status | None = None,
        to: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
    ) -> list[Job]:
        """Newest first; ``before_id`` pages backwards (cursor pagination)."""
        ...

    def attempts(self, job_id: int) -> list[Attempt]: ...

    def events(
        self, job_id: int | None = None, *, after_id: int = 0, limit: int = 1000
    ) -> list[Event]: ...

    def counts(self) -> dict[str, int]: ...

    def active_count(self) -> int:
        """Jobs queued, in flight or retrying (what ``worker --drain`` waits for)."""
        ...

    # -- the worker's side
    def claim(
        self,
        worker_id: str,
        now: float,
        *,
        limit: int,
        lease: float,
        max_concurrency: int,
        meter: MeterPolicy,
    ) -> list[Claimed]: ...

    def next_wakeup(self, now: float, meter: MeterPolicy) -> float | None:
        """The earliest time a claim could find something (``None``: nothing waits)."""
        ...

    def reserve_slots(
        self, now: float, meter: MeterPolicy, n: int, batch_id: int | None = None
    ) -> list[float]:
        """``n`` more meter slots (for jobs whose own slot went by before they were
        ready to send); with ``batch_id``, slots of that batch's meter and the global one."""
        ...

    def lower_rate(self, now: float, meter: MeterPolicy) -> float | None: ...

    def write_batch(self, writes: Sequence[Write]) -> list[Any]:
        """Apply the writes in one transaction (at most one per job); their results, in
        order (see each write's docstring)."""
        ...

    def heartbeat(
        self, worker_id: str, now: float, lease: float, job_ids: Sequence[int] = ()
    ) -> int:
        """Extend the leases of the jobs this worker still holds."""
        ...

    def expire_leases(self, now: float) -> int:
        """Settle in-flight jobs whose lease ran out: ``uncertain`` if an attempt may
        have reached the provider, else back to ``queued``."""
        ...

    def expire_overdue(self, now: float) -> int:
        """Jobs waiting past their ``expires_at`` become ``expired``."""
        ...

    def release_worker(self, worker_id: str, now: float) -> int:
        """At shutdown: this worker's unsent jobs go back to the queue; any whose attempt
        may have reached the provider become ``uncertain`` (never resent blindly)."""
        ...

    # -- reconciliation (see store/sql_reconcile.py)
    def uncertain_due(self, now: float) -> int: ...

    def known_refs(self, refs: Sequence[str]) -> set[str]:
        """Which of these provider references belong to an attempt callgate recorded."""
        ...

    def claim_uncertain(
        self, worker_id: str, now: float, *, limit: int, lease: float
    ) -> list[Uncertain]: ...

    def settle_uncertain(
        self,
        job_id: int,
        number: int,
        worker_id: str,
        now: float,
        *,
        decision: Decision | None = None,
        retry_at: float | None = None,
        ref: str | None = None,
        note: str | None = None,
    ) -> bool: ...

    # -- API keys and webhook secrets
    def add_api_key(
        self, key_id: str, name: str, token_hash: str, prefix: str, now: float
    ) -> ApiKey: ...

    def api_key_by_hash(self, token_hash: str) -> ApiKey | None: ...

    def api_keys(self) -> list[ApiKey]: ...

    def revoke_api_key(self, key_id: str, now: float) -> bool: ...

    def webhook_secrets(self) -> list[str]: ...

    def add_webhook_secret(self, secret: str, now: float) -> None: ...

    def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        ...

    # -- the webhook outbox (see store/sql_webhooks.py)
    def fan_out(self, now: float, default_url: str | None) -> int: ...

    def claim_deliveries(self, now: float, limit: int, lease: float) -> list[Delivery]: ...

    def next_delivery_at(self) -> float | None: ...

    def delivery_done(self, delivery_id: int, now: float, status_code: int) -> None: ...

    def delivery_failed(
        self,
        delivery_id: int,
        now: float,
        status_code: int | None,
        error: str,
        retry_at: float | None,
    ) -> None: ...

    def endpoint_gone(self, url: str, now: float) -> int: ...

    def list_deliveries(
        self,
        *,
        status: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
        job_id: int | None = None,
    ) -> list[Delivery]: ...

    def replay_deliveries(
        self, now: float, *, delivery_id: int | None = None, since: float | None = None
    ) -> int: ...

    def delivery(self, delivery_id: int) -> Delivery | None: ...

    # -- guardrails (see store/sql_guardrails.py)
    def allowlist_add(self, entry: str, now: float, note: str | None = None) -> bool: ...

    def allowlist_remove(self, entry: str) -> bool: ...

    def allowlist(self) -> list[dict[str, Any]]: ...

    def suppress(
        self,
        number: str,
        kind: str | None,
        reason: str,
        now: float,
        *,
        source: str = "manual",
        detail: str | None = None,
    ) -> bool: ...

    def unsuppress(self, number: str, kind: str | None = None) -> int: ...

    def suppressions(self, number: str | None = None) -> list[dict[str, Any]]: ...

    def suppressed(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Of the (number, kind) pairs, the suppressed ones with their reason (as
        :meth:`number_facts` gives it), in one read."""
        ...

    def number_facts(
        self,
        number: str,
        kind: str,
        since: float | None,
        *,
        job_id: int | None = None,
        same_since: float | None = None,
    ) -> NumberFacts: ...

    def refuse(self, job_id: int, decision: Decision, now: float) -> bool: ...

    def release_held(self, now: float) -> int: ...

    def send_counts(self, now: float, minutes: int) -> SendCounts: ...

    def breaker_state(
        self,
    ) -> tuple[bool, str | None, str | None, float | None, str | None, str | None]: ...

    def set_breaker(
        self,
        open_: bool,
        now: float,
        *,
        reason: str,
        detail: str | None,
        actor: str,
        rule: str | None = None,
    ) -> bool: ...

    def breaker_log(self, limit: int = 50) -> list[dict[str, Any]]: ...

    def add_audit(
        self, job_id: int, attempt: int | None, rows: Sequence[AuditRow], now: float
    ) -> None: ...

    def audit(
        self,
        job_id: int | None = None,
        *,
        since: float | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[dict[str, Any]]: ...

    def prune_audit(self, before: float) -> int: ...

    # -- provider circuits (see store/sql_circuits.py and engine/health.py)
    def circuits(self) -> list[Circuit]: ...

    def open_circuit(
        self,
        name: str,
        now: float,
        *,
        fault: str,
        detail: str,
        probe_at: float,
        kinds: Sequence[str],
    ) -> bool: ...

    def take_probe(self, name: str, job_id: int, now: float, next_probe_at: float) -> bool: ...

    def probe_failed(self, name: str, job_id: int, now: float, next_probe_at: float) -> None: ...

    def probe_now(self, names: Sequence[str], now: float) -> int: ...

    def close_circuit(
        self, name: str, now: float, *, kinds: Sequence[str], detail: str
    ) -> bool: ...

    def hold_for_provider(self, kinds: Sequence[str], decision: Decision, now: float) -> int: ...

    def release_for_provider(
        self, kinds: Sequence[str], now: float, *, limit: int | None = None
    ) -> int: ...

    def waiting_for_provider(self, kinds: Sequence[str]) -> int: ...

    # -- webhook events that belong to no job (see store/sql_system_webhooks.py)
    def claim_system_webhooks(self, now: float, limit: int, lease: float) -> list[Any]: ...

    def next_system_webhook_at(self) -> float | None: ...

    def system_webhook_done(self, webhook_id: int, now: float, status_code: int) -> None: ...

    def system_webhook_failed(
        self,
        webhook_id: int,
        now: float,
        status_code: int | None,
        error: str,
        retry_at: float | None,
    ) -> None: ...

    def system_webhooks(self, limit: int = 100) -> list[dict[str, Any]]: ...

    # -- a person's side
    def cancel(self, job_id: int, now: float) -> Job: ...

    def retry(self, job_id: int, now: float) -> Job: ...

    def retry_matching(
        self,
        now: float,
        *,
        statuses: Sequence[Status],
        since: float | None = None,
        reason: str | None = None,
        batch_id: int | None = None,
    ) -> int: ...

    # -- batches (see callgate.batches)
    def create_batch(
        self,
        *,
        kind: Kind,
        now: float,
        name: str | None = None,
        rate: float | None = None,
        strict: bool = False,
        scope: str = "",
    ) -> Batch: ...

    def add_batch_rows(
        self,
        batch_id: int,
        rows: Sequence[tuple[int, JobSpec]],
        errors: Sequence[BatchRowError],
        now: float,
        *,
        scope: str = "",
        block_suppressed: bool = True,
    ) -> int:
        """Queue a chunk of a batch's valid rows and keep its invalid/duplicate ones; rows
        to a suppressed number are blocked at once (``block_suppressed``)."""
        ...

    def get_batch(self, batch_id: int, now: float | None = None) -> Batch:
        """With ``now``: also the achieved rate (last ten seconds) and the ETA."""
        ...

    def finish_batch_ingest(self, batch_id: int, now: float) -> None: ...

    def complete_batches(self, now: float) -> list[int]:
        """Complete every batch whose rows are in and jobs ended (``batch.completed``)."""
        ...

    def batch_throttled(
        self,
        batch_id: int,
        now: float,
        *,
        after: int,
        window: float,
        factor: float,
        min_rate: float = 0.1,
    ) -> float | None:
        """A 429 for a batch job; the new batch rate if this one lowered it."""
        ...

    def pause_batch(self, batch_id: int, now: float, *, reason: str = "batch_paused") -> Batch:
        """Its queued jobs become ``held`` (reason ``batch_paused``) until resumed."""
        ...

    def hold_unusable_batches(self, now: float) -> list[Batch]:
        """Pause the running batches whose rate cannot be used (reason ``invalid_rate``)."""
        ...

    def resume_batch(self, batch_id: int, now: float) -> Batch: ...

    def cancel_batch(self, batch_id: int, now: float) -> Batch:
        """Its jobs not yet ended become ``canceled`` (in flight: after the attempt)."""
        ...

    def batch_errors(
        self, batch_id: int, *, after_line: int = 0, limit: int = 1000
    ) -> list[BatchRowError]: ...

    def batch_results(
        self, batch_id: int, *, after_line: int = 0, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """One result per input row, by line (see :mod:`callgate.batches.export`)."""
        ...


T = TypeVar("T")


def chunks(items: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
