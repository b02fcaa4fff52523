"""The dashboard's overview remembers the activity it read: a minute that is over is
counted once, so a refresh of a busy gateway reads two minutes of attempts, not a day."""

from __future__ import annotations

from callgate.clock import ManualClock
from callgate.services.views import OUTCOMES_TTL, ViewsService

T0 = 1_800_000_000.0  # a minute boundary (1_800_000_000 / 60 = 30_000_000)


class Attempts:
    """The store part the service reads, over a list of attempt start times."""

    def __init__(self) -> None:
        self.started: list[float] = []
        self.asked: list[float] = []  # the ``since`` of each sends_by_minute
        self.outcome_reads = 0

    def sends_by_minute(self, since: float) -> list[tuple[int, int]]:
        self.asked.append(since)
        counts: dict[int, int] = {}
        for t in self.started:
            if t >= since:
                counts[int(t) // 60] = counts.get(int(t) // 60, 0) + 1
        return sorted(counts.items())

    def outcomes_since(self, since: float) -> list[tuple[str, str, int]]:
        self.outcome_reads += 1
        return [("sms", "delivered", sum(1 for t in self.started if t >= since))]


def service(clock: ManualClock) -> tuple[ViewsService, Attempts]:
    store = Attempts()
    views = ViewsService(store, clock, lambda: None)  # type: ignore[arg-type]
    return views, store


def test_minutes_that_are_over_are_read_once() -> None:
    clock = ManualClock(T0 + 30)
    views, store = service(clock)
    store.started = [T0 - 600 + 1, T0 - 120 + 5, T0 - 60 + 5, T0 - 60 + 6, T0 + 10]
    first = views.sends_per_minute(clock.now(), 15)
    assert len(first) == 15
    assert first[-1] == 1  # the current minute
    assert first[-2] == 2
    assert first[-3] == 1
    assert first[-11] == 1  # ten minutes ago
    assert sum(first) == 5
    assert store.asked == [T0 - 14 * 60]  # the whole window, once

    clock.advance(60)  # a minute later; one more attempt, in the new current minute
    store.started.append(T0 + 65)
    second = views.sends_per_minute(clock.now(), 15)
    assert store.asked[-1] == T0 - 60  # only the minutes not yet over when last read
    assert second[-1] == 1
    assert second[-2] == 1  # the minute that was current before
    assert second[-3] == 2
    assert sum(second) == 6
    assert second[:-1] == first[1:]  # the window moved by a minute


def test_the_window_forgets_minutes_that_fell_out_of_it() -> None:
    clock = ManualClock(T0)
    views, store = service(clock)
    store.started = [T0 - 5 * 60]
    assert sum(views.sends_per_minute(clock.now(), 10)) == 1
    clock.advance(10 * 60)
    assert sum(views.sends_per_minute(clock.now(), 10)) == 0


def test_the_outcomes_are_read_again_only_after_a_while() -> None:
    clock = ManualClock(T0)
    views, store = service(clock)
    store.started = [T0 - 10]
    assert views.outcomes(clock.now()) == [("sms", "delivered", 1)]
    store.started.append(T0 - 5)
    clock.advance(OUTCOMES_TTL / 2)
    assert views.outcomes(clock.now()) == [("sms", "delivered", 1)]  # remembered
    assert store.outcome_reads == 1
    clock.advance(OUTCOMES_TTL)
    assert views.outcomes(clock.now()) == [("sms", "delivered", 2)]
    assert store.outcome_reads == 2
