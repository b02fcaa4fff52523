"""Reconciliation: settle ``uncertain`` attempts by asking the provider, never by resending.

An attempt is ``uncertain`` when it may have reached the provider but callgate does not
know how it ended: the worker died (or lost its lease) between writing the attempt row
and recording the answer, or no final status came before ``track_timeout``. Resending
blindly could fax a county twice or call a voter twice, so a reconciler looks the
attempt up first:

* **by reference**, when the provider's answer was recorded (its SID or fax id): the
  provider's current status is adopted (``delivered``, a busy line retried, ...); an
  attempt still under way there is looked up again later;
* **by listing** otherwise: the records the provider holds for the number in the
  attempt's time window (padded for clock skew), minus the ones callgate knows belong to
  other attempts. One record: it is this attempt, and its status is adopted. None: the
  request provably never arrived, and the job is ``queued`` again (that attempt does not
  count). Several, or a provider that cannot list this kind of job: **held** with the
  reason, for a person (``callgate jobs retry`` sends it again, ``jobs cancel`` drops it).

Workers run a reconciler beside their claim loop; reconcilers on many machines share
the work through the store's leases (see :mod:`callgate.store.sql_reconcile`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, replace

from callgate.clock import Clock
from callgate.domain import AttemptResult, Decision, Outcome, Status
from callgate.engine.audit import Redactor
from callgate.engine.retry import RetryPolicy
from callgate.providers.base import CannotReconcile, Provider, Reconciling
from callgate.store.base import Finish, Uncertain
from callgate.store.offload import StoreCalls
from callgate.store.parts import Store

log = logging.getLogger("callgate.reconcile")

#: reason codes a reconciliation leaves on a job
ABSENT = "reconciled_absent"
UNRECONCILABLE = "unreconcilable"
#: lookups under way at once in one reconciler
CONCURRENCY = 10


@dataclass(frozen=True, slots=True)
class ReconcileConfig:
    #: seconds between looks for uncertain jobs (a worker also looks once at start)
    interval: float = 30.0
    #: how long a claimed job is this reconciler's (a worker caps it at its own lease:
    #: the jobs of a reconciler that died come back as soon as a dead worker's sends)
    lease: float = 120.0
    #: jobs per look
    batch: int = 50
    #: seconds added to each side of an attempt's window when listing (clock skew)
    pad: float = 120.0
    #: a provider that could not answer (or an attempt still under way there) is asked
    #: again after this long ...
    retry_delay: float = 60.0
    #: ... until the attempt is this old; then the job is held for a person
    give_up_after: float = 86_400.0


class Reconciler:
    """Looks ``uncertain`` jobs up at the provider and settles them (see the module)."""

    def __init__(
        self,
        store: Store,
        provider: Provider,
        *,
        clock: Clock,
        retry: RetryPolicy,
        worker_id: str,
        config: ReconcileConfig | None = None,
        db: StoreCalls | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.redactor = redactor or Redactor()
        self.store = store
        self.provider = provider
        self.clock = clock
        self.retry = retry
        self.worker_id = worker_id
        self.config = config or ReconcileConfig()
        self._db = db or StoreCalls(False)
        self.verdicts: Counter[str] = Counter()
        self._kicked: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"Reconciler({self.worker_id!r}, {dict(self.verdicts)})"

    def kick(self) -> None:
        """Look now (jobs just became uncertain) instead of at the next interval."""
        if self._kicked is not None:
            self._kicked.set()

    async def run(self) -> None:
        """Look for uncertain jobs every ``interval`` seconds (or when kicked), until
        cancelled."""
        self._kicked = asyncio.Event()
        while True:
            self._kicked.clear()
            try:
                while await self.run_once() == self.config.batch:
                    pass  # a full batch: there may be more
            except Exception as exc:  # the store is down, say: try again next round
                log.warning("reconciliation failed: %r", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kicked.wait(), self.config.interval)

    async def run_once(self) -> int:
        """One look: claim a batch of due uncertain jobs and settle each; how many."""
        claimed = await self._db(
            self.store.claim_uncertain,
            self.worker_id,
            self.clock.now(),
            limit=self.config.batch,
            lease=self.config.lease,
        )
        # all at once: a killed worker leaves hundreds in doubt, and one lookup after
        # another would keep them (and their numbers) waiting many leases long
        room = asyncio.Semaphore(CONCURRENCY)

        async def one(item: Uncertain) -> str:
            async with room:
                return await self.reconcile(item)

        verdicts = await asyncio.gather(*(one(item) for item in claimed))
        for item, verdict in zip(claimed, verdicts, strict=True):
            self.verdicts[verdict] += 1
            log.info("job %s: reconciled (%s)", item.job.id, verdict)
        return len(claimed)

    async def reconcile(self, item: Uncertain) -> str:
        """Settle one claimed job; the verdict (``adopted``, ``requeued``, ``held``,
        ``later``, or ``stale`` when someone else settled it meanwhile)."""
        if item.provider_ref is not None:
            return await self._by_reference(item, item.provider_ref)
        return await self._by_listing(item)

    async def _by_reference(self, item: Uncertain, ref: str) -> str:
        try:
            result = await self.provider.status(item.job, ref)
        except Exception as exc:
            return await self._later(item, f"the provider could not be asked about {ref}: {exc}")
        if result.outcome is Outcome.UNKNOWN:  # the provider has no such record
            why = result.error_message or f"the provider has no record of {ref}"
            return await self._hold(item, f"the provider cannot tell: {why}")
        if result.outcome is None:  # under way there (or the poll failed: no news)
            return await self._later(item, f"{ref} is still under way at the provider")
        return await self._adopt(item, replace(result, provider_ref=ref))

    async def _by_listing(self, item: Uncertain) -> str:
        job = item.job
        since = item.started_at - self.config.pad
        # the request went out before the job was found in doubt (its last update)
        until = max(item.started_at, job.updated_at.timestamp()) + self.config.pad
        if not isinstance(self.provider, Reconciling):
            return await self._hold(item, f"{self.provider.name} cannot list {job.kind} jobs")
        try:
            found = await self.provider.find(job, since, until)
        except CannotReconcile as exc:
            return await self._hold(item, f"the provider cannot tell whether it was sent: {exc}")
        except Exception as exc:
            return await self._later(item, f"the provider could not be asked: {exc}")
        known = await self._db(self.store.known_refs, [f.ref for f in found])
        mine = [f for f in found if f.ref not in known]
        if not mine:
            decision = Decision(
                Status.QUEUED,
                ABSENT,
                "the provider has no record of the attempt: it never arrived, so the job "
                "is queued again",
                run_at=self.clock.now(),
                count_attempt=False,
            )
            return await self._settle(item, decision, "requeued", note="not found at the provider")
        if len(mine) > 1:
            refs = ", ".join(f.ref for f in mine)
            return await self._hold(
                item,
                f"the provider holds {len(mine)} records to this number from the attempt's "
                f"time ({refs}); a person must decide which, if any, was this job",
            )
        [record] = mine
        if record.result.outcome is None or record.result.outcome is Outcome.UNKNOWN:
            # found, still under way: look it up by its reference next time
            return await self._later(
                item, f"found as {record.ref}, still under way", ref=record.ref
            )
        return await self._adopt(item, replace(record.result, provider_ref=record.ref))

    async def _adopt(self, item: Uncertain, result: AttemptResult) -> str:
        now = self.clock.now()
        decision = self.retry.decide(item.job, item.job.attempts, result, now)
        write = self.redactor.write(Finish(item.job.id, item.number, result, decision, now))
        [status] = await self._db(self.store.write_batch, [write])
        return "adopted" if status is not None else "stale"

    async def _later(self, item: Uncertain, why: str, *, ref: str | None = None) -> str:
        now = self.clock.now()
        if now - item.started_at >= self.config.give_up_after:
            return await self._hold(
                item, f"still undecided after {self.config.give_up_after:.0f} s: {why}"
            )
        done = await self._db(
            self.store.settle_uncertain,
            item.job.id,
            item.number,
            self.worker_id,
            now,
            retry_at=now + self.config.retry_delay,
            ref=ref,
        )
        return "later" if done else "stale"

    async def _hold(self, item: Uncertain, why: str) -> str:
        decision = Decision(
            Status.HELD,
            UNRECONCILABLE,
            f"{why}; not resent blindly: `callgate jobs retry {item.job.id}` sends it "
            f"again, `callgate jobs cancel {item.job.id}` drops it",
        )
        return await self._settle(item, decision, "held", note=why)

    async def _settle(self, item: Uncertain, decision: Decision, verdict: str, *, note: str) -> str:
        decision = replace(decision, detail=self.redactor.optional(decision.detail))
        note = self.redactor.secret_text(note)
        done = await self._db(
            self.store.settle_uncertain,
            item.job.id,
            item.number,
            self.worker_id,
            self.clock.now(),
            decision=decision,
            note=note,
        )
        return verdict if done else "stale"


__all__ = ["ABSENT", "UNRECONCILABLE", "ReconcileConfig", "Reconciler"]
