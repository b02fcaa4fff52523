"""The embedded gateway: a store, a provider and a worker wired from settings.

``Gateway`` is what ``callgate demo``, ``callgate worker`` and in-process users share;
the CLI and (later) the HTTP API are thin shells over it.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import IO, Any

import httpx

from callgate import auth
from callgate.clock import Clock, SystemClock
from callgate.config import Settings, load_settings
from callgate.domain import (
    RETRYABLE,
    ApiKey,
    AttemptResult,
    Batch,
    Job,
    JobSpec,
    Kind,
    Status,
    make_spec,
)
from callgate.engine.alerts import AlertMonitor
from callgate.engine.audit import Redactor, redact_logs
from callgate.engine.guard import Guard
from callgate.engine.health import CircuitPolicy, ProviderHealth, routes_of
from callgate.engine.retry import RetryPolicy
from callgate.engine.worker import Worker
from callgate.exceptions import ConfigurationError, StoreError, ValidationError, WorkerFailed
from callgate.grouped import Grouped, commit_group, look_up_keys
from callgate.metrics import Metrics
from callgate.providers.base import Provider
from callgate.services import (
    AlertsService,
    BatchesService,
    DeliveriesService,
    GuardrailsService,
    JobsService,
    KeysService,
    ViewsService,
    alert_policy,
)
from callgate.store import Store, SubmitResult, open_store
from callgate.store.base import Circuit
from callgate.store.offload import StoreCalls
from callgate.urls import DnsCache, UrlChecker
from callgate.webhooks.sender import WebhookSender
from callgate.wiring import make_guardrails, make_meter, worker_config

log = logging.getLogger("callgate.gateway")
#: threads for the store calls of async code (the API) on a store that waits on the
#: network; a PostgreSQL store's pool has 4 connections, which the worker shares
API_THREADS = 4


def make_provider(settings: Settings, clock: Clock) -> Provider:
    # one provider per kind from CALLGATE_PROVIDER_*; the simulator for every kind unless
    # configured otherwise (see callgate.providers.routing)
    from callgate.providers.routing import build_provider, resolve

    if settings.environment == "production" and not settings.allow_simulator_in_production:
        simulated = [str(k) for k in Kind if resolve(settings, k) == "simulator"]
        if simulated:
            raise ConfigurationError(
                f"production would send {', '.join(simulated)} jobs to the simulator; "
                "configure a provider, or set CALLGATE_ALLOW_SIMULATOR_IN_PRODUCTION=true",
                field="environment",
            )
    return build_provider(settings, clock, rng=random.Random(settings.simulator_seed))


def _retryable(raw: Status | str) -> Status:
    status = next((s for s in RETRYABLE if s == raw), None)
    if status is None:
        raise ValidationError(
            f"{raw!r} cannot be retried; one of {', '.join(sorted(RETRYABLE))}", field="status"
        )
    return status


class Gateway:
    """callgate in-process: submit jobs, run a worker, read results."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: Store | None = None,
        clock: Clock | None = None,
        provider: Provider | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.clock = clock or SystemClock()
        self.store = store or open_store(
            self.settings.database_url, migrate=self.settings.auto_migrate
        )
        self._provider = provider
        self._health: ProviderHealth | None = None
        self._rng = rng or random.Random(self.settings.simulator_seed)
        self._workers: list[Worker] = []
        self._senders: list[WebhookSender] = []
        self._db: StoreCalls | None = None
        self._submits: Grouped[tuple[JobSpec, str], SubmitResult] | None = None
        self._keys: Grouped[str, ApiKey | None] | None = None
        #: URL safety checks, with one DNS cache (hosts repeat across jobs and batch rows)
        self.urls = UrlChecker(
            self.settings.environment,
            self.settings.url_allowlist,
            DnsCache(timeout=self.settings.dns_timeout, ttl=self.settings.dns_cache_ttl),
        )
        redactor = Redactor.of(self.settings.secret_values(), mask_pii=self.settings.audit.mask_pii)
        self.guard = Guard(make_guardrails(self.settings), self.store, redactor)
        redact_logs(redactor)
        # the operations the shells need (see callgate.services): no shell reaches the store
        parts = (self.store, self.clock, self._changed)
        self.jobs, self.batches = JobsService(*parts), BatchesService(*parts)
        self.guardrails, self.deliveries = GuardrailsService(*parts), DeliveriesService(*parts)
        cache = auth.KeyCache(self.clock, self.settings.api_key_cache_seconds)
        self.keys = KeysService(*parts, cache=cache)
        self.views = ViewsService(*parts)
        self.alerts = AlertsService(*parts, policy=alert_policy(self.settings), redactor=redactor)
        #: Prometheus metrics: this process's counters, the database's gauges (issue 17)
        self.metrics = Metrics(
            self.alerts.observe, lambda: self.health.routes.values(), self.alerts.rules
        )
        self._monitors: list[AlertMonitor] = []

    def __repr__(self) -> str:
        return f"Gateway({self.store!r})"

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
        self.store.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> StoreCalls:
        """How async code (the API) calls the store and the blocking methods here:
        ``await gw.db(gw.cancel, job_id)`` runs on a thread when the store waits on the
        network (PostgreSQL), in place when it answers at once (SQLite)."""
        if self._db is None:
            self._db = StoreCalls(self.store.offload, threads=API_THREADS, name="callgate-api-db")
        return self._db

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            self._provider = make_provider(self.settings, self.clock)
        return self._provider

    @property
    def health(self) -> ProviderHealth:
        """The circuits of the providers this gateway sends through."""
        if self._health is None:
            policy = CircuitPolicy(**self.settings.provider_circuit.model_dump())
            self._health = ProviderHealth(self.store, routes_of(self.provider), policy)
        return self._health

    # -- submitting ---------------------------------------------------------------------

    def spec(self, kind: Kind | str, **fields: Any) -> JobSpec:
        fields.setdefault("default_region", self.settings.default_region)
        fields.setdefault("now", self.clock.now())
        return make_spec(kind, **fields)

    def submit(self, spec: JobSpec, *, scope: str = "") -> SubmitResult:
        return self.submit_many([spec], scope=scope)[0]

    def submit_many(self, specs: Sequence[JobSpec], *, scope: str = "") -> list[SubmitResult]:
        results = self._store_submit(specs, scope)
        self._changed()
        return results

    async def submit_async(self, spec: JobSpec, *, scope: str = "") -> SubmitResult:
        """:meth:`submit` from async code: the submits of the same moment share one
        commit (see :mod:`callgate.grouped`), off the event loop when the store waits
        on the network. Same results, same errors, per request."""
        if self._submits is None:
            self._submits = Grouped(
                self.db,
                functools.partial(commit_group, self._store_submit),
                on_done=self._changed,
                flushers=2 if self.store.offload else 1,
                name="callgate-submit",
            )
        return await self._submits((spec, scope))

    async def authenticate(self, token: str | None) -> ApiKey | None:
        """The API key of a bearer token (None: unknown or revoked), from async code:
        the look-ups of the same moment share one trip to a store thread, and a valid
        key is remembered for ``api_key_cache_seconds`` (see :class:`auth.KeyCache`)."""
        if not token or not token.startswith(auth.TOKEN_PREFIX):
            return None
        token_hash = auth.hash_token(token)
        if not self.store.offload:  # an embedded store answers at once: in place
            return self.store.api_key_by_hash(token_hash)
        cached = self.keys.cache.get(token_hash)
        if cached is not None:
            return cached
        if self._keys is None:
            self._keys = Grouped(
                self.db,
                functools.partial(look_up_keys, self.store),
                flushers=2,
                name="callgate-keys",
            )
        key = await self._keys(token_hash)
        if key is not None:
            self.keys.cache.put(token_hash, key)
        return key

    def _store_submit(self, specs: Sequence[JobSpec], scope: str) -> list[SubmitResult]:
        now = self.clock.now()
        results = self.store.submit(specs, now, scope=scope)
        # the allowlist and the suppression list, at once (checked again at send time)
        made = [i for i, result in enumerate(results) if result.created]
        for i in made:
            self.metrics.submitted(str(results[i].job.kind))
        decisions = self.guard.at_submit_many([results[i].job for i in made])
        for i, decision in zip(made, decisions, strict=True):
            if decision is not None and self.store.refuse(results[i].job.id, decision, now):
                results[i] = SubmitResult(self.store.get_job(results[i].job.id), True)
        return results

    def send(self, kind: Kind | str, **fields: Any) -> SubmitResult:
        return self.submit(self.spec(kind, **fields))

    def submit_batch(
        self,
        stream: IO[bytes],
        *,
        kind: Kind | str | None = None,
        fmt: str | None = None,
        filename: str | None = None,
        name: str | None = None,
        rate: float | None = None,
        strict: bool = False,
        scope: str = "",
    ) -> Batch:
        """Accept a batch file (seekable bytes: CSV, JSON or JSON Lines); see
        :func:`callgate.batches.ingest`. URLs get the same SSRF check as the API's."""
        from callgate.batches import RowMapper, ingest

        mapper = RowMapper(
            kind,
            default_region=self.settings.default_region,
            url_check=self.urls.check,
            now=self.clock.now(),
        )
        batch = ingest(
            self.store,
            stream,
            self.clock.now(),
            fmt=fmt,
            filename=filename,
            mapper=mapper,
            name=name,
            rate=rate,
            strict=strict,
            scope=scope,
            block_suppressed=self.settings.batch_rules.block_suppressed,
        )
        self.metrics.submitted(str(batch.kind), batch.queued_rows)
        self._changed()
        return batch

    # -- reading and steering -----------------------------------------------------------

    def job(self, job_id: int) -> Job:
        return self.store.get_job(job_id)

    def cancel(self, job_id: int) -> Job:
        job = self.store.cancel(job_id, self.clock.now())
        self._changed()
        return job

    def retry(self, job_id: int) -> Job:
        job = self.store.retry(job_id, self.clock.now())
        self._changed()
        return job

    def retry_matching(
        self,
        *,
        statuses: Sequence[Status | str] = (),
        since: datetime | None = None,
        reason: str | None = None,
        batch_id: int | None = None,
    ) -> int:
        """Queue again every job that matches (``statuses``, default ``failed``; in that
        status since ``since``; with ``reason``; of ``batch_id``), each with a fresh
        attempt budget as :meth:`retry` gives one job; how many. At least one filter is
        required: "retry everything" is never what a person meant."""
        if not statuses and since is None and reason is None and batch_id is None:
            raise ValidationError(
                "name the jobs to retry: at least one of status, since, reason or batch",
                field="status",
                code="filter_required",
            )
        wanted = [_retryable(raw) for raw in statuses or (Status.FAILED,)]
        if since is not None and since.tzinfo is None:
            raise ValidationError("since must carry a time zone", field="since")
        n = self.store.retry_matching(
            self.clock.now(),
            statuses=wanted,
            since=None if since is None else since.timestamp(),
            reason=reason,
            batch_id=batch_id,
        )
        self._changed()
        return n

    async def provider_status(self, provider: str, ref: str, result: AttemptResult) -> bool:
        """A verified status callback from ``provider`` (``twilio``, ``signalwire``,
        ``telnyx``) about attempt ``ref``. A final status goes to the worker tracking
        the attempt: the one in this process at once (its provider keeps the result for
        the tracker, which wakes without another request to the vendor), workers in
        other processes through the store (PostgreSQL: NOTIFY; with SQLite their polling
        covers it). Duplicates and statuses still under way change nothing. True if a
        worker in this process took it."""
        if result.outcome is None:
            return False
        # the workers of a gateway share its provider: one push reaches the tracker
        pushed = bool(self._workers) and self._workers[0].push_status(provider, ref, result)
        try:
            await self.db(self.store.publish_status, provider, ref, result)
        except StoreError as exc:  # the tracker's polling still finds the status
            log.warning("could not pass the %s status of %s on: %s", provider, ref, exc)
        return pushed

    # -- guardrails -----------------------------------------------------------------------

    def breaker(self) -> dict[str, object]:
        state = self.guard.breaker().to_dict()
        return state | {"history": self.store.breaker_log(20)}

    def providers(self) -> list[dict[str, Any]]:
        """Each provider sent through here, with its circuit and the jobs waiting for it."""
        stored = {c.name: c for c in self.store.circuits()}
        out = []
        for name in sorted(set(self.health.routes.values())):
            kinds = self.health.kinds(name)
            circuit = stored.get(name) or Circuit(name, False)
            waiting = self.store.waiting_for_provider(kinds)
            out.append({"kinds": kinds} | circuit.to_dict() | {"waiting": waiting})
        return out

    def trip_breaker(self, reason: str, *, actor: str = "operator") -> bool:
        """The kill switch: no new sends until :meth:`reset_breaker`."""
        tripped = self.store.set_breaker(
            True, self.clock.now(), reason="manual", detail=reason, actor=actor, rule="manual"
        )
        return tripped

    def reset_breaker(self, reason: str, *, actor: str = "operator") -> bool:
        """Only a person resets the breaker, and says why."""
        if not reason.strip():
            raise ValidationError("a reason is required to reset the breaker", field="reason")
        done = self.store.set_breaker(
            False, self.clock.now(), reason="reset", detail=reason, actor=actor
        )
        self._changed()
        return done

    def ready(self) -> None:
        """Raise unless the database answers and every worker of this process runs
        (:class:`~callgate.engine.worker.WorkerFailed` for one that stopped on an error)."""
        self.store.ping()
        for worker in self._workers:
            if worker.failure is not None:
                raise WorkerFailed(f"the worker stopped: {worker.failure!r}")

    def wake(self) -> None:
        """Tell this process's workers that something may have become claimable."""
        self._changed()

    def _changed(self) -> None:
        for worker in self._workers:
            worker.wake()
        for sender in self._senders:
            sender.wake()

    # -- background services (webhook delivery) -------------------------------------------

    def webhook_sender(
        self, transport: httpx.AsyncBaseTransport | None = None, *, poll: float = 1.0
    ) -> WebhookSender:
        sender = WebhookSender(
            self.store,
            self.settings,
            clock=self.clock,
            transport=transport,
            rng=self._rng,
            poll=poll,
            urls=self.urls,
            metrics=self.metrics,
        )
        self._senders.append(sender)
        for worker in self._workers:
            worker.on_commit.append(sender.wake)
        return sender

    def background_tasks(self) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        """Long-running services besides the worker (the webhook sender, the alerts'
        monitor unless ``CALLGATE_ALERT_INTERVAL=0``), named."""
        tasks = [("callgate-webhooks", self.webhook_sender().run())]
        if self.settings.alert_interval > 0:
            monitor = self.alerts.monitor(self.db, self.settings.alert_interval)
            self._monitors.append(monitor)
            tasks.append(("callgate-alerts", monitor.run()))
        return tasks

    def stop_background(self) -> None:
        """Ask the services of :meth:`background_tasks` to stop."""
        for sender in self._senders:
            sender.stop()
        for monitor in self._monitors:
            monitor.stop()

    # -- working ------------------------------------------------------------------------

    def worker(self, *, worker_id: str | None = None, **overrides: Any) -> Worker:
        config = worker_config(self.settings)
        if overrides:
            from dataclasses import replace

            config = replace(config, **overrides)
        worker = Worker(
            self.store,
            self.provider,
            clock=self.clock,
            meter=make_meter(self.settings),
            retry=RetryPolicy(self.settings.kind_policies(), rng=self._rng),
            config=config,
            worker_id=worker_id,
            worker_name=self.settings.worker_id,
            rng=self._rng,
            guard=self.guard,
            health=self.health,
            metrics=self.metrics,
        )
        worker.on_commit.extend(sender.wake for sender in self._senders)
        self._workers.append(worker)
        return worker

    async def run_worker(self, *, drain: bool = False, **overrides: Any) -> Worker:
        worker = self.worker(**overrides)
        await worker.run(drain=drain)
        return worker
