"""The guardrails applied with the store's facts (:class:`Guard`): at submit, at send
time (fail closed; the jobs of one moment together), the breaker's evaluation, the
suppressions providers report, and the audit log of each attempt's exchanges. The rules
themselves, pure, are in :mod:`callgate.engine.guardrails`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from callgate.domain import Decision, Job, Suppression
from callgate.engine.audit import Redactor
from callgate.engine.guardrails import (
    BreakerState,
    CapUse,
    GuardFacts,
    Guardrails,
    breaker_open,
)
from callgate.policies import Allowlist
from callgate.providers.audit import Exchange
from callgate.store.parts import GuardrailsStore

log = logging.getLogger("callgate.guardrails")
#: the breaker as the submit-time checks see it (they do not read it)
CLOSED = BreakerState(False)


class Guard:
    """The guardrails applied with the store's facts: at submit, at send time (fail
    closed), the breaker's evaluation, and suppressions learnt from provider errors.
    Its methods block on the store: async code calls them from its store offload."""

    def __init__(
        self, rules: Guardrails, store: GuardrailsStore, redactor: Redactor | None = None
    ) -> None:
        self.rules = rules
        self.store = store
        self.redactor = redactor or Redactor()

    def __repr__(self) -> str:
        return f"Guard({self.rules.environment!r})"

    def facts(self, job: Job, now: float) -> GuardFacts:
        assert job.to is not None
        cap, same = self.rules.caps.get(job.kind), self.rules.same.get(job.kind)
        counted = not self.rules.fictional(job.to)
        got = self.store.number_facts(
            job.to,
            str(job.kind),
            now - cap.window if cap and counted else None,
            job_id=job.id,
            same_since=now - same.window if same and counted else None,
        )
        return GuardFacts(
            allowlisted=Allowlist(frozenset(got.allowlist)).allows(job.to),
            suppressed=got.suppressed_why,
            is_suppressed=got.suppressed,
            cap_use=CapUse(got.sent, got.oldest),
            same_use=CapUse(got.same, got.same_oldest),
            breaker=self.breaker(),
        )

    def at_submit(self, job: Job, now: float) -> Decision | None:
        if job.to is None:
            return None
        return self.rules.refusal(job, self.facts(job, now))

    def at_submit_many(self, jobs: Sequence[Job]) -> list[Decision | None]:
        """:meth:`at_submit` for many jobs in two reads at most (the stored allowlist
        when the configured one does not allow them all, and their suppressions): the
        refusal reads nothing else (the caps and the breaker apply at send time)."""
        listed = zip(jobs, self._listed(jobs), strict=True)
        return [None if f is None else self.rules.refusal(j, f) for j, f in listed]

    def at_send_many(self, jobs: Sequence[Job], now: float) -> list[Decision | None]:
        """:meth:`at_send` for the jobs about to be sent at this moment, with one read of
        the breaker, of the stored allowlist (when the configured one does not allow
        them all) and of their suppressions; the caps' counts are read per job, and
        only when a cap applies and the breaker is closed."""
        rules = self.rules
        breaker = self.breaker()
        if breaker.open:
            return [breaker_open(breaker.detail) for _ in jobs]
        out: list[Decision | None] = []
        for job, facts in zip(jobs, self._listed(jobs, breaker), strict=True):
            if facts is None or job.to is None:
                out.append(None)
                continue
            if rules.refusal(job, facts) is None and not rules.fictional(job.to):
                facts = self._with_caps(job, facts, now)
            out.append(rules.at_send(job, facts, now))
        return out

    def _listed(
        self, jobs: Sequence[Job], breaker: BreakerState = CLOSED
    ) -> list[GuardFacts | None]:
        """Each job's allowlist and suppression facts (None: a job to no number), from one
        read of the stored allowlist (only when the configured one does not allow them
        all) and one of the suppressions."""
        numbered = [(j.to, str(j.kind)) for j in jobs if j.to is not None]
        if not numbered:
            return [None] * len(jobs)
        rules = self.rules
        stored = Allowlist()
        if rules.allowlisting and not all(rules.allowlist.allows(to) for to, _ in numbered):
            stored = Allowlist(frozenset(e["number"] for e in self.store.allowlist()))
        why = self.store.suppressed(numbered)
        out: list[GuardFacts | None] = []
        for job in jobs:
            if job.to is None:
                out.append(None)
                continue
            reason = why.get((job.to, str(job.kind)))
            facts = GuardFacts(
                allowlisted=stored.allows(job.to),
                suppressed=reason,
                is_suppressed=reason is not None,
                breaker=breaker,
            )
            out.append(facts)
        return out

    def _with_caps(self, job: Job, facts: GuardFacts, now: float) -> GuardFacts:
        """``facts`` with the job's number's use of its caps (no read without a cap)."""
        assert job.to is not None
        cap, same = self.rules.caps.get(job.kind), self.rules.same.get(job.kind)
        if cap is None and same is None:
            return facts
        sent, oldest, same_n, same_oldest = self.store.cap_counts(
            job.to,
            str(job.kind),
            now - cap.window if cap else None,
            job_id=job.id,
            same_since=now - same.window if same else None,
        )
        return replace(facts, cap_use=CapUse(sent, oldest), same_use=CapUse(same_n, same_oldest))

    def breaker(self) -> BreakerState:
        return BreakerState(*self.store.breaker_state())

    def evaluate_breaker(self, now: float) -> str | None:
        """Trip the breaker if the send rate is anomalous; the reason if it tripped now."""
        policy = self.rules.breaker
        if not policy.enabled:
            return None
        state = self.breaker()
        if state.open:
            return None
        # a person who reset it accepted the rate of the moment: the ratio applies again
        # once a whole baseline has passed since (the ceiling applies throughout)
        since_reset = now - state.changed_at if state.changed_at is not None else None
        ratio = since_reset is None or since_reset >= 60 * policy.baseline_minutes
        counts = self.store.send_counts(now, policy.baseline_minutes)
        tripped = policy.check(counts, now, ratio=ratio)
        if tripped is None:
            return None
        rule, why = tripped
        if not self.store.set_breaker(
            True, now, reason="anomaly", detail=why, actor="callgate", rule=rule
        ):
            return None  # it was open already
        log.error("breaker.tripped (%s): %s; no new sends until a person resets it", rule, why)
        return why

    def learn(self, job: Job, hint: Suppression, error_code: str | None, now: float) -> None:
        """A failure the provider's adapter read as "stop sending this kind here" (STOP,
        landline: ``result.suppress``) puts the number on the suppression list."""
        if job.to is None:
            return
        if self.store.suppress(
            job.to,
            str(hint.kind),
            hint.reason,
            now,
            source="error_rule",
            detail=f"provider error {error_code} on job {job.id}",
        ):
            log.info(
                "%s suppressed for %s (%s, error %s)", job.to, hint.kind, hint.reason, error_code
            )

    def file_audit(
        self, job_id: int, attempt: int, exchanges: Sequence[Exchange], now: float
    ) -> None:
        """Store an attempt's provider exchanges, credentials redacted (and, with
        ``audit.mask_pii``, numbers and content masked)."""
        rows = []
        for ex in map(self.redactor.exchange, exchanges):
            rows.append(
                (ex.method, ex.url, ex.status, ex.request, ex.response, ex.duration, ex.error)
            )
        self.store.add_audit(job_id, attempt, rows, now)


#: the simulator's test numbers (docs/simulator.md), allowlisted in development
