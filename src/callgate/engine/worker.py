"""The worker loop: claim → re-check → send → track → record, on asyncio.

One coordinator claims batches from the store and starts one task per job. A job task
waits for its meter slot, writes the attempt row (``sending``) *before* the request,
sends, follows the status (pushed callbacks first, adaptive polling as a backstop) and
records the outcome. Writes from every task are committed together (group commit): a
task awaits its write, so nothing is sent before its attempt row is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import socket
import sys
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from callgate.clock import Clock
from callgate.domain import AttemptResult, Decision, Job
from callgate.engine import attempt, commit
from callgate.engine.audit import Redactor
from callgate.engine.commit import Backoff
from callgate.engine.guard import Guard
from callgate.engine.health import ProviderHealth
from callgate.engine.meter import GCRA
from callgate.engine.pacer import Lead, Pacer
from callgate.engine.reconcile import ReconcileConfig, Reconciler
from callgate.engine.retry import RetryPolicy
from callgate.exceptions import StoreError, WorkerFailed
from callgate.grouped import Grouped
from callgate.metrics import Metrics
from callgate.providers.base import Provider
from callgate.store.base import (
    Claimed,
    Write,
)
from callgate.store.offload import StoreCalls, set_event
from callgate.store.parts import Store

log = logging.getLogger("callgate.worker")
#: the GIL switch interval for workers whose store calls run on threads (seconds)
SWITCH_INTERVAL = 0.0005
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    lease: float = 30.0
    max_concurrency: int = 100
    claim_batch: int = 500
    idle_poll: float | None = 0.5  # None: rely on wake-ups and next_wakeup alone
    sweep_interval: float = 5.0
    shutdown_grace: float = 30.0
    poll_initial: float = 1.0
    poll_max: float = 30.0
    track_timeout: float = 3600.0
    #: reconciliation of uncertain jobs beside the claim loop (None: not in this worker)
    reconcile: ReconcileConfig | None = field(default_factory=ReconcileConfig)
    #: repeated 429s lower a batch's rate (None: they only slow the global meter)
    batch_throttle: BatchThrottle | None = field(default_factory=lambda: BatchThrottle())


@dataclass(frozen=True, slots=True)
class BatchThrottle:
    """The ``after``-th 429 for one batch within ``window`` s: its rate × ``factor``."""

    after: int = 3
    window: float = 60.0
    factor: float = 0.5


@dataclass
class WorkerStats:
    claimed: int = 0
    sent: int = 0
    finished: int = 0
    reslotted: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class _StatusHub:
    """Wakes the task tracking an attempt when the provider pushes a status for it.

    A push may come before its tracker waits (a callback that beats the worker's write
    of the provider's answer): it is remembered, so the tracker's first wait returns at
    once. Pushes no tracker here ever waits for (attempts of other processes) are
    forgotten oldest first beyond ``limit``."""

    def __init__(self, limit: int = 10_000) -> None:
        self._waiting: OrderedDict[str, asyncio.Event] = OrderedDict()
        self._limit = limit

    def notify(self, ref: str) -> None:
        event = self._waiting.get(ref)
        if event is None:
            event = self._waiting[ref] = asyncio.Event()
            while len(self._waiting) > self._limit:
                self._waiting.popitem(last=False)
        event.set()

    async def wait(self, ref: str, timeout: float) -> None:
        event = self._waiting.setdefault(ref, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        event.clear()

    def forget(self, ref: str) -> None:
        self._waiting.pop(ref, None)


class Worker:
    def __init__(
        self,
        store: Store,
        provider: Provider,
        *,
        clock: Clock,
        meter: GCRA,
        retry: RetryPolicy,
        config: WorkerConfig | None = None,
        worker_id: str | None = None,
        worker_name: str | None = None,
        rng: random.Random | None = None,
        guard: Guard | None = None,
        health: ProviderHealth | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        #: this process's counters (attempts, send time); None: not counted
        self.metrics = metrics
        #: the guardrails, re-checked just before each send (None: no guardrails)
        self.guard = guard
        #: takes credentials out of what is stored about an attempt (the guard's)
        self.redactor = guard.redactor if guard is not None else Redactor()
        #: the providers' circuits (None: a provider's failures are only its jobs')
        self.health = health
        self.provider = provider
        self.clock = clock
        self.meter = meter
        self._lead = Lead(meter.lead)
        #: one pacer per lane: the global meter's slots (key None), and each batch's
        #: with a rate of its own (key: its id), whose slots are the global meter's too
        self._pacers: dict[int | None, Pacer] = {}
        self.retry = retry
        self.config = config or WorkerConfig()
        #: ``host:pid:object``; a configured name (``CALLGATE_WORKER_ID``) takes the host's
        #: place, and the rest keeps two processes started with one name apart
        name = worker_name or socket.gethostname()
        self.worker_id = worker_id or f"{name}:{os.getpid()}:{id(self):x}"
        self.stats = WorkerStats()
        self._rng = rng or random.Random()
        self._active: dict[int, asyncio.Task[None]] = {}
        #: per active job, when its lease was last set (claim) or renewed (heartbeat)
        self._leased_at: dict[int, float] = {}
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._pending_writes: list[tuple[Write, asyncio.Future[Any]]] = []
        self._flushers: set[asyncio.Task[None]] = set()
        self._db = StoreCalls(False)
        #: the send-time checks of the jobs about to go out, grouped (see _at_send_many)
        self._checks = self._check_group()
        self._hub = _StatusHub()
        self.reconciler: Reconciler | None = None
        #: called after each commit of the worker's writes (e.g. to wake the webhook sender)
        self.on_commit: list[Callable[[], None]] = []
        #: why the worker stopped on its own (None: it runs, or was stopped)
        self.failure: BaseException | None = None

    def __repr__(self) -> str:
        return f"Worker({self.worker_id!r}, active={len(self._active)})"

    # -- control ------------------------------------------------------------------------

    def wake(self) -> None:
        """Tell the worker something changed (a job was submitted in this process); from
        any thread."""
        if self._changed is not None:
            set_event(self._changed, self._loop)

    def stop(self) -> None:
        """Stop claiming; in-flight jobs finish (or are released) within the grace period."""
        if self._stopping is not None:
            self._stopping.set()
        for pacer in self._pacers.values():
            pacer.stop()
        self.wake()

    async def run(self, *, drain: bool = False) -> None:
        """Run until :meth:`stop` (or, with ``drain``, until nothing is left to do)."""
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        if self.store.offload:
            # store calls run on threads that hold the GIL in bursts; the default 5 ms
            # switch interval would let them delay the loop past a meter slot's few
            # milliseconds of lateness budget
            sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        self.provider.set_listener(self._hub.notify)
        self.store.prepare_worker()
        self._db = StoreCalls(self.store.offload)
        self._checks = self._check_group()
        if self.health is not None:
            await self._db(self.health.start, self.clock.now())
        loop = asyncio.get_running_loop()
        stop_listening = self.store.listen(
            self._wake_threadsafe(loop), self._status_threadsafe(loop)
        )
        background = [
            self._guarded("callgate-heartbeat", self._heartbeat_loop()),
            self._guarded("callgate-sweep", self._sweep_loop()),
        ]
        if self.config.reconcile is not None:
            self.reconciler = Reconciler(
                self.store,
                self.provider,
                clock=self.clock,
                retry=self.retry,
                worker_id=self.worker_id,
                # a killed worker's reconciliation claims come back within its lease
                config=replace(
                    self.config.reconcile,
                    lease=min(self.config.reconcile.lease, self.config.lease),
                ),
                db=self._db,
                redactor=self.redactor,
            )
            background.append(self._guarded("callgate-reconcile", self.reconciler.run()))
        try:
            await self._main_loop(drain)
        except Exception as exc:
            self._died(exc, "the worker loop")
        finally:
            stop_listening()
            await self._shutdown()
            for pacer in self._pacers.values():
                await pacer.close()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            self.provider.set_listener(None)
            self._db.close()
        if self.failure is not None:
            raise WorkerFailed(f"the worker stopped: {self.failure!r}") from self.failure

    def _check_group(self) -> Grouped[Job, Decision | None]:
        return Grouped(self._db, self._at_send_many, name="callgate-send-checks")

    def _died(self, exc: BaseException, where: str) -> None:
        """A worker that cannot go on says so: an error in the log, ``failure`` set (the
        gateway's readiness answers 503 from then on) and :meth:`run` raises
        :class:`WorkerFailed` once its jobs are settled, so that the process exits
        non-zero instead of idling with nothing sent."""
        if self.failure is None:
            self.failure = exc
        log.error("%s failed; the worker stops: %r", where, exc, exc_info=exc)
        self.stop()

    def _guarded(self, name: str, loop: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A background loop whose unexpected end stops the worker, loudly."""

        async def run() -> None:
            try:
                await loop
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._died(exc, name)

        return asyncio.create_task(run(), name=name)

    def _wake_threadsafe(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """A wake-up other threads may call (the store's LISTEN thread)."""

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(self.wake)

        return wake

    def _status_threadsafe(
        self, loop: asyncio.AbstractEventLoop
    ) -> Callable[[str, str, AttemptResult], None]:
        """Where the store's listener hands a status callback another process received."""

        def pushed(provider: str, ref: str, result: AttemptResult) -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.push_status, provider, ref, result)

        return pushed

    def push_status(self, provider: str, ref: str, result: AttemptResult) -> bool:
        """A verified status callback for ``ref``: the provider keeps it for the tracker,
        which wakes at once (False if this worker's provider takes no pushes)."""
        push: Callable[[str, str, AttemptResult], bool] | None = getattr(
            self.provider, "push", None
        )
        return bool(push is not None and push(provider, ref, result))

    async def _main_loop(self, drain: bool) -> None:
        assert self._changed is not None
        assert self._stopping is not None
        backoff = Backoff()
        while not self._stopping.is_set():
            self._changed.clear()
            try:
                if await self._dispatch():
                    await asyncio.sleep(0)  # let the new tasks start and batch their writes
                    continue
                if drain and not self._active and await self._drained():
                    if await self._reconcile_due():
                        continue  # reconciled jobs may be queued again
                    await self._db(self.store.complete_batches, self.clock.now())
                    return
                timeout = await self._idle_timeout()
                backoff.reset()
            except StoreError as exc:
                timeout = backoff.next()
                log.warning("the store failed (%s); trying again in %.1f s", exc, timeout)
            await self._idle(timeout)

    async def _reconcile_due(self) -> int:
        """Draining: settle the uncertain jobs due now before stopping (how many)."""
        if self.reconciler is None:
            return 0
        if not await self._db(self.store.uncertain_due, self.clock.now()):
            return 0
        return await self.reconciler.run_once()

    async def _drained(self) -> bool:
        """Nothing left that this worker may do: no active jobs (but for jobs waiting for
        a provider whose probe is due: one is queued now), or the breaker is open (the
        queued ones stay queued until a person resets it)."""
        if await self._db(self.store.active_count) == 0:
            if self.health is not None:
                return await self._db(self.health.sweep, self.clock.now()) == 0
            return True
        if self.guard is not None and (await self._db(self.guard.breaker)).open:
            log.warning("the breaker is open: queued jobs stay queued until it is reset")
            return True
        return False

    async def _dispatch(self) -> int:
        room = self.config.max_concurrency - len(self._active)
        if room <= 0:
            return 0
        if self.guard is not None and (await self._db(self.guard.breaker)).open:
            return 0  # no new claims while the breaker is open; queued jobs stay queued
        leased_at = self.clock.now()  # the claim's leases run from a moment after this
        claimed = await self._db(self._claim, min(room, self.config.claim_batch))
        paced = [(item, self._pacer(item)) for item in claimed]
        for item, pacer in paced:
            if pacer is not None:
                pacer.add([item.slot])
        for item, pacer in paced:
            self._leased_at[item.job.id] = leased_at
            self._active[item.job.id] = asyncio.create_task(self._run_job(item, pacer))
        self.stats.claimed += len(claimed)
        return len(claimed)

    def _pacer(self, claimed: Claimed) -> Pacer | None:
        """The pacer of the claimed job's lane (None: nothing meters it)."""
        if claimed.lane_rate is None:  # the global meter's slots
            if self.meter.rate is None:
                return None
            lane, lateness = None, self.meter.max_lateness
        else:  # its batch's, within both meters' lateness budgets
            lane = claimed.job.batch_id
            lateness = min(
                self.meter.max_lateness, self.meter.for_rate(claimed.lane_rate).max_lateness
            )
        pacer = self._pacers.get(lane)
        if pacer is None:
            reserve = functools.partial(self._reserve_slots, batch_id=lane)
            pacer = self._pacers[lane] = Pacer(self.clock, lateness, reserve)
            if self._stopping is not None and self._stopping.is_set():
                pacer.stop()
        pacer.max_lateness = lateness  # a lowered batch rate widens its own budget
        return pacer

    def _meter(self) -> GCRA:
        """The meter, with slots handed out far enough ahead for the attempt row to be
        written before them."""
        lead = self._lead.value
        return self.meter if lead == self.meter.lead else replace(self.meter, lead=lead)

    def _claim(self, limit: int) -> list[Claimed]:
        return self.store.claim(
            self.worker_id,
            self.clock.now(),
            limit=limit,
            lease=self.config.lease,
            max_concurrency=self.config.max_concurrency,
            meter=self._meter(),
        )

    async def _idle_timeout(self) -> float:
        """How long to wait for a change before claiming again."""
        poll = self.config.idle_poll if self.config.idle_poll is not None else 3600.0
        now = self.clock.now()
        wake = await self._db(self.store.next_wakeup, now, self._meter())
        if wake is None or wake <= now:
            # nothing waits, or work is ready but the concurrency cap is reached: a job
            # finishing here wakes us; one finishing in another worker, the poll
            return poll
        return min(wake - now, poll)

    async def _idle(self, timeout: float) -> None:
        assert self._changed is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def _shutdown(self) -> None:
        if self._active:
            tasks = list(self._active.values())
            _, late = await asyncio.wait(tasks, timeout=self.config.shutdown_grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        while any(not t.done() for t in self._flushers):
            await asyncio.gather(*self._flushers)
        with contextlib.suppress(StoreError):
            released = await self._db(self.store.release_worker, self.worker_id, self.clock.now())
            if released:
                log.info("released %d claimed jobs that were not sent", released)

    # -- background ---------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        # the first beat at once: the worker is alive (the alerts' heartbeat rule)
        while True:
            beat, jobs = self.clock.now(), list(self._active)
            try:
                await self._db(self.store.heartbeat, self.worker_id, beat, self.config.lease, jobs)
            except StoreError as exc:
                log.warning("heartbeat failed: %s", exc)
            else:
                for job_id in jobs:
                    if job_id in self._leased_at:
                        self._leased_at[job_id] = max(self._leased_at[job_id], beat)
            await asyncio.sleep(self.config.lease / 3)

    async def _sweep_loop(self) -> None:
        while True:
            try:
                now = self.clock.now()
                expired = await self._db(self.store.expire_leases, now)
                if expired and self.reconciler is not None:
                    self.reconciler.kick()  # some may be uncertain now
                for batch in await self._db(self.store.hold_unusable_batches, now):
                    log.error(
                        "batch %s: its rate %r cannot be used; paused, its jobs held "
                        "(reason invalid_rate)",
                        batch.id,
                        batch.rate,
                    )
                settled = expired + await self._db(self.store.release_held, now)
                if settled + await self._db(self.store.expire_overdue, now):
                    self.wake()
                if self.guard is not None:
                    await self._db(self.guard.evaluate_breaker, now)
                if self.health is not None and await self._db(self.health.sweep, now) > 0:
                    self.wake()  # jobs that waited for their provider are queued again
                if await self._db(self.store.complete_batches, now):
                    for callback in self.on_commit:  # a batch.completed event to send
                        callback()
            except StoreError as exc:
                log.warning("sweep failed: %s", exc)
            await asyncio.sleep(self.config.sweep_interval)

    # -- group commit -------------------------------------------------------------------

    # the attempt's path and the group commit, in modules of their own
    _run_job = attempt._run_job
    _attempt = attempt._attempt
    _lease_short = attempt._lease_short
    _at_send_many = attempt._at_send_many
    _reserve_slots = attempt._reserve_slots
    _wait_for = attempt._wait_for
    _send = attempt._send
    _poll = attempt._poll
    _audit = attempt._audit
    _track = attempt._track
    _record = attempt._record
    _throttle_batch = attempt._throttle_batch
    _write = commit._write
    _flush = commit._flush
    _salvage = commit._salvage
    _commit = commit._commit
    _write_until_done = commit._write_until_done


__all__ = ["Backoff", "Worker", "WorkerConfig", "WorkerFailed", "WorkerStats"]
