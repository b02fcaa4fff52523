"""The meter's arithmetic: GCRA time slots plus AIMD on 429.

A claim reserves one *slot* per job from the shared GCRA row: slots are spaced
``1 / (rate × (1 - margin))`` apart and may be reserved up to ``burst`` seconds ahead;
the worker sends each job at its slot. A job that would go out more than
``max_lateness`` after its slot takes a fresh one instead, so that over any one-second
window the provider sees at most ``rate`` calls, summed over every worker, while the
long-run rate stays within ``margin`` of the configured one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from callgate.store.base import MeterState


@dataclass(frozen=True, slots=True)
class GCRA:
    rate: float | None  # configured calls/s; None: unlimited
    burst: float = 1.0  # seconds of slots that may be reserved ahead
    margin: float = 0.005  # slot spacing is this much wider than 1/rate
    decrease: float = 0.5  # on 429: rate × decrease
    increase: float = 0.05  # then + increase × rate per second, back up to rate
    min_rate: float = 0.1
    #: slots start this far ahead of the claim, leaving the worker time to write the
    #: attempt row before the slot (else the first job of every claim would be late)
    lead: float = 0.05

    @property
    def max_lateness(self) -> float:
        """How late a send may be after its slot and still keep the window bound.

        With every send in ``[slot, slot + L]`` and slots at least ``T`` apart, a
        one-second window holds at most ``ceil((1 + L) / T)`` sends; that stays within
        ``ceil(rate)`` while ``L <= ceil(rate) × T - 1``: about 5 ms at 200/s, a whole
        second at 0.5/s. Four fifths of it, to be safe.
        """
        if self.rate is None:
            return math.inf
        spacing = 1.0 / (self.rate * (1.0 - self.margin))
        return 0.8 * (math.ceil(self.rate) * spacing - 1.0)

    def effective_rate(self, state: MeterState, now: float) -> float | None:
        if self.rate is None:
            return None
        if state.rate is None:
            return self.rate
        recovered = state.rate + self.increase * self.rate * max(0.0, now - state.changed_at)
        return min(self.rate, recovered)

    def interval(self, state: MeterState, now: float) -> float:
        rate = self.effective_rate(state, now)
        return 0.0 if rate is None else 1.0 / (rate * (1.0 - self.margin))

    def allowance(self, state: MeterState, now: float, wanted: int) -> int:
        if self.rate is None or wanted <= 0:
            return max(wanted, 0)
        start = max(state.tat, now + self.lead)
        if start - now > self.burst + self.lead:
            return 0
        fits = math.floor((now + self.lead + self.burst - start) / self.interval(state, now)) + 1
        return min(wanted, fits)

    def take(self, state: MeterState, now: float, n: int) -> tuple[list[float], MeterState]:
        if self.rate is None:
            return [now] * n, state
        step = self.interval(state, now)
        start = max(state.tat, now + self.lead)
        slots = [start + i * step for i in range(n)]
        return slots, replace(state, tat=start + n * step)

    def take_at(self, state: MeterState, now: float, at: float) -> tuple[float, MeterState]:
        """One slot, not before ``at`` (another meter's slot): the later of the two."""
        if self.rate is None:
            return max(now, at), state
        slot = max(state.tat, now + self.lead, at)
        return slot, replace(state, tat=slot + self.interval(state, now))

    def horizon(self, now: float) -> float:
        """The latest slot a claim at ``now`` may hand out."""
        return math.inf if self.rate is None else now + self.lead + self.burst

    def for_rate(self, rate: float | None) -> GCRA:
        """The same meter at another rate (a batch's): a rate lowered after 429s stays
        lowered (no recovery), the worker's lead is kept."""
        return replace(self, rate=rate, increase=0.0)

    def next_allowed(self, state: MeterState, now: float) -> float:
        if self.rate is None:
            return now
        return max(now, state.tat - self.burst - self.lead)

    def lowered(self, state: MeterState, now: float) -> MeterState:
        rate = self.effective_rate(state, now)
        if rate is None:
            return state
        return replace(state, rate=max(self.min_rate, rate * self.decrease), changed_at=now)
