"""The store's parts: one small protocol per group of operations, and :class:`Store`,
all of them. Queue operations, not SQL (see :mod:`callgate.store.base` for the records).

Every method that changes a job's status writes the matching event row in the same
transaction (the outbox). Times are unix seconds passed in by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

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
    SystemWebhook,
)
from callgate.store.base import (
    AuditRow,
    Circuit,
    Claimed,
    MeterPolicy,
    NumberFacts,
    SendCounts,
    StatusCallback,
    SubmitResult,
    Uncertain,
    Write,
)
from callgate.store.parts_observe import ObservePart
from callgate.store.views import ViewsPart


class StoreLifecycle(Protocol):
    """Opening, migrating and closing; listening for other processes' news."""

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


class JobsPart(Protocol):
    """Submitting and reading jobs."""

    def group_summary(self, limit: int = 50) -> list[tuple[str, dict[str, int]]]:
        """Per group, jobs per status (oldest groups first)."""
        ...

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
        kind: str | None = None,
        batch_id: int | None = None,
    ) -> list[Job]:
        """Newest first; ``before_id`` pages backwards (cursor pagination)."""
        ...

    def jobs_after(
        self, after_id: int, *, created_after: float | None = None, limit: int = 1000
    ) -> list[Job]:
        """Oldest first, ids above ``after_id`` (an export's cursor)."""
        ...

    def attempts(self, job_id: int) -> list[Attempt]: ...

    def events(
        self, job_id: int | None = None, *, after_id: int = 0, limit: int = 1000
    ) -> list[Event]: ...

    def counts(self) -> dict[str, int]: ...

    def active_count(self) -> int:
        """Jobs queued, in flight or retrying (what ``worker --drain`` waits for)."""
        ...

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


class ClaimsPart(Protocol):
    """The worker's side: the meter, claims, its writes, leases."""

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


class ReconcilePart(Protocol):
    """Attempts whose outcome is unknown (see store/sql_reconcile.py)."""

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


class KeysPart(Protocol):
    """API keys and webhook signing secrets."""

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


class OutboxPart(Protocol):
    """The outbox: each job event's deliveries, and webhook events that belong to no job,
    claimed and settled through one path (store/sql_outbox.py; the fan-out, 410s and
    replays in store/sql_webhooks.py); the webhook sender's only part."""

    def fan_out(self, now: float, default_url: str | None) -> int: ...

    def claim_outbox(
        self, now: float, limit: int, lease: float, *, jobs: bool = True, system: bool = True
    ) -> list[Delivery | SystemWebhook]: ...

    def next_outbox_at(self, *, system: bool = True) -> float | None: ...

    def outbox_done(self, item: Delivery | SystemWebhook, now: float, status_code: int) -> None: ...

    def outbox_failed(
        self,
        item: Delivery | SystemWebhook,
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

    def system_webhooks(self, limit: int = 100) -> list[dict[str, Any]]: ...


class GuardrailsPart(Protocol):
    """The guardrails' facts: allowlist, suppressions, caps, the breaker, the audit log
    (see store/sql_guardrails.py)."""

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

    def inbound_sms(
        self, number: str, action: str | None, event: Mapping[str, Any], now: float
    ) -> None:
        """An inbound SMS from ``number``, in one transaction: ``action`` ``opt_out``
        suppresses it for SMS (reason ``unsubscribed``), ``opt_in`` lifts its
        ``unsubscribed`` SMS suppressions (none other), and ``event`` becomes a
        ``message.received`` system webhook."""
        ...

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

    def cap_counts(
        self,
        number: str,
        kind: str,
        since: float | None,
        *,
        job_id: int | None = None,
        same_since: float | None = None,
    ) -> tuple[int, float | None, int, float | None]: ...

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


class AuditPart(Protocol):
    """The audit log: every provider request and response, redacted."""

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


class CircuitsPart(Protocol):
    """The providers' circuits (see store/sql_circuits.py and engine/health.py)."""

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


class BatchesPart(Protocol):
    """Batches (see callgate.batches)."""

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


class Store(
    StoreLifecycle,
    JobsPart,
    ClaimsPart,
    ReconcilePart,
    KeysPart,
    OutboxPart,
    GuardrailsPart,
    AuditPart,
    CircuitsPart,
    BatchesPart,
    ViewsPart,
    ObservePart,
    Protocol,
):
    """Every part: what the wiring (:func:`callgate.store.open_store`) returns. A consumer
    takes only the part it uses (the webhook sender the outbox, the guard the guardrails)."""


class WebhookStore(StoreLifecycle, OutboxPart, KeysPart, JobsPart, Protocol):
    """What the webhook sender uses: the outbox, the signing secrets, and the jobs it
    reads for the fax-gateway body."""


class DeliveriesStore(OutboxPart, KeysPart, Protocol):
    """What a person's view of the deliveries uses: the outbox and the signing secrets."""


class JobsStore(JobsPart, AuditPart, Protocol):
    """What a person's view of jobs uses: the jobs and their audit log."""


class GuardrailsStore(GuardrailsPart, AuditPart, Protocol):
    """The guard and a person's steering of it: its facts and the audit log."""
