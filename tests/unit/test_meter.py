"""GCRA slots and AIMD: the arithmetic behind invariant 4 (metering)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from callgate.engine.meter import GCRA
from callgate.store.base import MeterState

NOW = 1_000.0


def test_unlimited_meter_allows_everything_now() -> None:
    meter = GCRA(rate=None)
    state = MeterState(NOW, None, NOW)
    assert meter.allowance(state, NOW, 500) == 500
    slots, after = meter.take(state, NOW, 3)
    assert (slots, after) == ([NOW] * 3, state)


def test_slots_are_spaced_and_lookahead_is_bounded() -> None:
    meter = GCRA(rate=100.0, burst=0.5)
    state = MeterState(NOW, None, NOW)
    n = meter.allowance(state, NOW, 10_000)
    assert n == math.floor(0.5 / meter.interval(state, NOW)) + 1
    slots, state = meter.take(state, NOW, n)
    assert slots[0] == NOW + meter.lead  # room to write the attempt row first
    assert slots[-1] - slots[0] <= 0.5
    assert meter.allowance(state, NOW, 1) == 0
    assert meter.next_allowed(state, NOW) > NOW


def test_429_halves_the_rate_then_it_recovers() -> None:
    meter = GCRA(rate=100.0, decrease=0.5, increase=0.05)
    state = meter.lowered(MeterState(NOW, None, NOW), NOW)
    assert meter.effective_rate(state, NOW) == 50.0
    assert meter.effective_rate(state, NOW + 5) == 75.0  # +5 %/s of 100
    assert meter.effective_rate(state, NOW + 60) == 100.0
    twice = meter.lowered(state, NOW)
    assert meter.effective_rate(twice, NOW) == 25.0


@given(
    rate=st.floats(1, 500),
    sends=st.lists(st.tuples(st.floats(0, 30), st.integers(1, 50)), min_size=1, max_size=40),
    lateness=st.floats(0, 1),
)
def test_no_one_second_window_exceeds_the_rate(rate: float, sends, lateness: float) -> None:  # type: ignore[no-untyped-def]
    """Claims at arbitrary times, each send up to max_lateness after its slot: any
    half-open one-second window holds at most ceil(rate) sends (= rate when it is whole;
    evenly spaced calls at 1.5/s must put 2 in some window)."""
    meter = GCRA(rate=rate, burst=2.0)
    state = MeterState(0.0, None, 0.0)
    times: list[float] = []
    for at, wanted in sorted(sends):
        n = meter.allowance(state, at, wanted)
        slots, state = meter.take(state, at, n)
        times += [s + lateness * meter.max_lateness for s in slots]
    times.sort()
    j = 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        assert i - j + 1 <= math.ceil(rate)
