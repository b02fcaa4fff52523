"""Provider health: a circuit per provider, separate from what happens to each job.

A provider that refuses the credentials or the account (401, Twilio 20003), or that fails
for everyone for a while (a run of 5xx, 403 or connection failures: the adapters tag these
as a :class:`~callgate.domain.Fault` on the result), opens its circuit. While it is open
no job is sent through it and no job uses an attempt: the jobs of the kinds it sends wait
(``held``, reason ``provider_unavailable``), a ``provider.down`` event and an error line
say why. Once in a while one job is let through as a probe (half open): when the provider
answers it (whatever the job's own outcome), the circuit closes, ``provider.up`` is sent
and the waiting jobs are queued again in their order; when the probe fails alike, probes
back off. A worker that starts probes at once (a restart may have fixed the credentials).

Per-number outcomes (busy, an invalid number, ...) are the retry policy's, not this.
Its methods block on the store: async code calls them through its store offload.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from callgate.domain import AttemptResult, Decision, Fault, Job, Kind, Outcome, Reason, Status
from callgate.store.base import Circuit
from callgate.store.parts import CircuitsPart

log = logging.getLogger("callgate.providers")


@dataclass(frozen=True, slots=True)
class CircuitPolicy:
    """When a provider's circuit opens and how it probes (``CALLGATE_PROVIDER_CIRCUIT__*``)."""

    enabled: bool = True
    failures: int = 5  # faults in a row (outage, access) within ``window`` that open it
    window: float = 60.0
    probe_after: float = 30.0  # the first probe, this long after it opened
    probe_max: float = 600.0  # failed probes double the wait, up to this

    def opens(self, fault: Fault, run: int) -> bool:
        """Refused credentials open it at once; other faults after a run of them."""
        return fault is Fault.AUTH or run >= self.failures

    def probe_delay(self, failed_probes: int) -> float:
        return float(min(self.probe_max, self.probe_after * 2**failed_probes))


def unavailable(circuit: Circuit) -> Decision:
    """A job that waits for its provider, unsent and without using an attempt."""
    return Decision(
        Status.HELD,
        Reason.PROVIDER_UNAVAILABLE,
        f"{circuit.name} is unavailable ({circuit.fault}: {circuit.detail}); the job waits "
        "without using an attempt until a probe gets through (see `callgate providers`)",
        count_attempt=False,
    )


class ProviderHealth:
    """The circuits of the providers one worker sends through (``routes``: the provider
    name of each kind)."""

    def __init__(
        self, store: CircuitsPart, routes: Mapping[Kind, str], policy: CircuitPolicy
    ) -> None:
        self.store = store
        self.routes = dict(routes)
        self.policy = policy
        self._runs: dict[str, deque[float]] = {}  # this process's faults in a row
        self._open: dict[str, Circuit] = {}  # as last read

    def __repr__(self) -> str:
        return f"ProviderHealth({sorted(set(self.routes.values()))}, open={sorted(self._open)})"

    def kinds(self, name: str) -> list[str]:
        return sorted(str(k) for k, p in self.routes.items() if p == name)

    def _read(self) -> dict[str, Circuit]:
        self._open = {c.name: c for c in self.store.circuits() if c.open}
        return self._open

    # -- a worker's life ----------------------------------------------------------------

    def start(self, now: float) -> None:
        """A worker starts: probe the open circuits it sends through at once."""
        names = sorted(set(self.routes.values()) & set(self._read()))
        if names and self.store.probe_now(names, now):
            for name in names:
                log.warning(
                    "%s has been unavailable since an earlier failure (%s); probing it now",
                    name,
                    self._open[name].detail,
                )

    def check_many(self, jobs: Sequence[Job], now: float) -> list[Decision | None]:
        """At send time, for the jobs about to be sent at this moment (one read of the
        circuits for them all), each: ``None`` to send (the provider is up, or this job
        is its probe), else the job waits for its provider."""
        if not self.policy.enabled or not jobs:
            return [None] * len(jobs)
        circuits = self._read()
        return [self._check(job, circuits.get(self.routes[job.kind]), now) for job in jobs]

    def _check(self, job: Job, circuit: Circuit | None, now: float) -> Decision | None:
        name = self.routes[job.kind]
        if circuit is None:
            return None
        delay = self.policy.probe_delay(circuit.probes)
        due = circuit.probe_at is not None and circuit.probe_at <= now
        if due and self.store.take_probe(name, job.id, now, now + delay):
            log.info("%s is unavailable: probing it with job %s", name, job.id)
            return None
        return unavailable(circuit)

    def observe(self, job: Job, result: AttemptResult, decision: Decision, now: float) -> Decision:
        """After an attempt: a fault counts towards opening the circuit, an answer closes
        it. Returns the decision to record: a job whose attempt failed only because the
        provider is down waits for it without using the attempt."""
        if not self.policy.enabled:
            return decision
        name = self.routes[job.kind]
        if result.fault is None:
            if result.outcome not in (None, Outcome.UNKNOWN):
                self._answered(name, now)
            return decision
        circuit = self._failed(name, job, result.fault, _said(result), now)
        if circuit is not None and result.outcome is Outcome.PROVIDER_ERROR:
            return unavailable(circuit)  # it never reached the person: not an attempt
        return decision

    def _answered(self, name: str, now: float) -> None:
        self._runs.pop(name, None)
        if name not in self._open:
            return
        kinds = self.kinds(name)
        if self.store.close_circuit(name, now, kinds=kinds, detail=f"{name} answered again"):
            log.warning("provider.up: %s answers again; queuing the jobs that waited", name)
        self._open.pop(name, None)
        self.store.release_for_provider(kinds, now)

    def _failed(self, name: str, job: Job, fault: Fault, said: str, now: float) -> Circuit | None:
        """Count a fault; the circuit if it is open now."""
        run = self._runs.setdefault(name, deque())
        run.append(now)
        while run and run[0] < now - self.policy.window:
            run.popleft()
        circuit = self._read().get(name)
        if circuit is not None:
            if circuit.probe_job == job.id:  # the probe failed alike: wait longer
                delay = self.policy.probe_delay(circuit.probes + 1)
                self.store.probe_failed(name, job.id, now, now + delay)
            return circuit
        if not self.policy.opens(fault, len(run)):
            return None
        detail = f"{fault}: {said}"
        kinds = self.kinds(name)
        if self.store.open_circuit(
            name, now, fault=str(fault), detail=said, probe_at=now + self.policy.probe_after,
            kinds=kinds,
        ):  # fmt: skip
            log.error(
                "provider.down: %s fails for every job (%s); its jobs (%s) wait without "
                "using attempts until a probe gets through",
                name,
                detail,
                ", ".join(kinds),
            )
        circuit = self._read().get(name)
        if circuit is not None:
            self.store.hold_for_provider(kinds, unavailable(circuit), now)
        return circuit

    def sweep(self, now: float) -> int:
        """Now and then: let a waiting job through when a probe is due, and queue again
        any job still waiting for a provider that answers (a hold that raced a close).
        How many jobs were queued."""
        if not self.policy.enabled:
            return 0
        circuits = self._read()
        released = 0
        for name in sorted(set(self.routes.values())):
            kinds, circuit = self.kinds(name), circuits.get(name)
            due = circuit is None or (circuit.probe_at is not None and circuit.probe_at <= now)
            if due and self.store.waiting_for_provider(kinds):
                limit = None if circuit is None else 1
                released += self.store.release_for_provider(kinds, now, limit=limit)
        return released


def _said(result: AttemptResult) -> str:
    text = result.error_message or str(result.outcome)
    return f"{result.error_code} {text}" if result.error_code else text


def routes_of(provider: object) -> dict[Kind, str]:
    """The provider name of each kind: a router's, or one provider's for every kind."""
    routes: Mapping[Kind, object] | None = getattr(provider, "routes", None)
    if routes is not None:
        return {k: str(getattr(p, "name", "provider")) for k, p in routes.items()}
    return {k: str(getattr(provider, "name", "provider")) for k in Kind}


__all__ = ["CircuitPolicy", "ProviderHealth", "routes_of", "unavailable"]
