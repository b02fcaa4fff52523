"""Claiming in lanes, on every backend, in virtual time: jobs from the API before batch
jobs, running batches round-robin, each batch at its own rate inside the global meter."""

from __future__ import annotations

import io
import itertools
import math
from collections import Counter

from callgate.batches import ingest
from callgate.domain import Kind, make_spec
from callgate.engine.meter import GCRA
from callgate.store.base import Claimed
from callgate.store.parts import Store
from tests.integration.batch_support import claim, end

NOW = 1_800_000_000.0


def _csv(numbers: list[str], body: str = "hi") -> io.BytesIO:
    return io.BytesIO(("to,body\n" + "".join(f"{n},{body}\n" for n in numbers)).encode())


def _numbers(start: int, n: int) -> list[str]:
    return [f"+1500555{start + i:04d}" for i in range(n)]


def _batch(store: Store, numbers: list[str], now: float = NOW, **kw: object) -> int:
    return ingest(store, _csv(numbers), now, **kw).id  # type: ignore[arg-type]


def _max_in_window(times: list[float], width: float = 1.0) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _run(store: Store, meter: GCRA, seconds: float, step: float = 0.05) -> list[Claimed]:
    """Claim every ``step`` for ``seconds`` of virtual time; every job ends at once."""
    out: list[Claimed] = []
    now = NOW
    while now < NOW + seconds:
        got = claim(store, now, meter)
        end(store, got, now)
        out += got
        now += step
    return out


def test_an_api_job_goes_before_a_running_batch(store: Store) -> None:
    batch = _batch(store, _numbers(0, 200))
    meter = GCRA(rate=10.0)
    first = claim(store, NOW, meter)
    assert first
    assert all(c.job.batch_id == batch for c in first)
    [fax] = store.submit([make_spec(Kind.FAX, to="+15005550999", media_url="https://x/a.pdf")], NOW)
    # the next claim the meter allows takes the fax first: the batch rows claimed before
    # it came keep their slots, and the fax gets the very next one
    later = NOW + 0.05
    while not (got := claim(store, later, meter)):
        later += 0.05
    assert got[0].job.id == fax.job.id
    assert got[0].slot - max(c.slot for c in first) <= 1 / (10.0 * 0.995) + 1e-9
    assert all(c.job.batch_id == batch and c.slot > got[0].slot for c in got[1:])


def test_the_api_job_overtakes_batch_rows_to_its_own_number(store: Store) -> None:
    number, other = "+15005550100", "+15005550101"
    a = _batch(store, [number, other])
    [direct] = store.submit([make_spec(Kind.SMS, to=number, body="urgent")], NOW)
    b = ingest(store, io.BytesIO(f"to,body\n{number},later\n{number},last\n".encode()), NOW).id
    meter = GCRA(rate=None)
    got = claim(store, NOW, meter)
    # one job per number: for ``number`` the API's job, before batch a's earlier row
    assert sorted((c.job.to, c.job.batch_id) for c in got) == [(number, None), (other, a)]
    assert [c.job.id for c in got if c.job.to == number] == [direct.job.id]
    seen = []
    for i in range(1, 4):
        end(store, got, NOW + i)
        got = claim(store, NOW + i, meter)
        seen += [(c.job.batch_id, c.job.payload["body"]) for c in got]
    assert seen == [(a, "hi"), (b, "later"), (b, "last")]  # then FIFO by submit order


def test_a_batch_never_goes_above_its_own_rate(store: Store) -> None:
    _batch(store, _numbers(0, 400), rate=5.0)
    claimed = _run(store, GCRA(rate=None), seconds=20.0)
    slots = [c.slot for c in claimed]
    assert _max_in_window(slots) == 5
    assert 99 <= sum(s < NOW + 20 for s in slots) <= 101  # 5/s over 20 s
    assert all(c.lane_rate == 5.0 for c in claimed)
    assert all(b - a >= 1 / 5.0 - 1e-9 for a, b in itertools.pairwise(slots))


def test_batches_share_the_global_meter_round_robin(store: Store) -> None:
    a = _batch(store, _numbers(0, 300))
    b = _batch(store, _numbers(1000, 300))
    claimed = _run(store, GCRA(rate=10.0), seconds=10.0)
    count = Counter(c.job.batch_id for c in claimed)
    assert abs(count[a] - count[b]) <= 1
    assert 99 <= sum(c.slot < NOW + 10 for c in claimed) <= 101
    order = [c.job.batch_id for c in sorted(claimed, key=lambda c: c.slot)]
    assert max(len(list(run)) for run in _runs(order)) <= 2  # interleaved, not one then other
    assert _max_in_window([c.slot for c in claimed]) <= 10


def _runs(seq: list[int | None]) -> list[list[int | None]]:
    runs: list[list[int | None]] = []
    for x in seq:
        if runs and runs[-1][0] == x:
            runs[-1].append(x)
        else:
            runs.append([x])
    return runs


def test_batches_at_their_own_rates_interleave_within_the_global_meter(store: Store) -> None:
    slow = _batch(store, _numbers(0, 300), rate=2.0)
    fast = _batch(store, _numbers(1000, 300), rate=6.0)
    claimed = _run(store, GCRA(rate=100.0), seconds=20.0)
    by = {k: [c.slot for c in claimed if c.job.batch_id == k] for k in (slow, fast)}
    assert _max_in_window(by[slow]) == 2
    assert _max_in_window(by[fast]) == 6
    assert 39 <= sum(s < NOW + 20 for s in by[slow]) <= 41
    assert 119 <= sum(s < NOW + 20 for s in by[fast]) <= 121


def test_a_slow_batch_leaves_the_global_meter_to_the_others(store: Store) -> None:
    slow = _batch(store, _numbers(0, 300), rate=1.0)
    free = _batch(store, _numbers(1000, 300))  # no rate of its own
    claimed = _run(store, GCRA(rate=10.0), seconds=10.0)
    count = Counter(c.job.batch_id for c in claimed)
    assert 9 <= count[slow] <= 11
    assert count[free] >= 85  # the rest of the global 10/s
    assert _max_in_window([c.slot for c in claimed]) <= 10


def test_paused_batch_leaves_shared_groups_to_the_other_batch(store: Store) -> None:
    shared = "+15005550100"
    a = _batch(store, [shared, shared])
    b = _batch(store, [shared])
    meter = GCRA(rate=None)
    [first] = claim(store, NOW, meter)
    assert first.job.batch_id == a
    store.pause_batch(a, NOW)
    end(store, [first], NOW)
    [nxt] = claim(store, NOW + 1, meter)
    assert nxt.job.batch_id == b  # not stuck behind the paused batch's lane


def test_pausing_a_batch_frees_its_lane_for_a_waiting_group(store: Store) -> None:
    shared = "+15005550100"
    a = _batch(store, [shared])
    b = _batch(store, [shared])  # the group is in a's lane: a's row is its head
    store.pause_batch(a, NOW)
    meter = GCRA(rate=None)
    assert [c.job.batch_id for c in claim(store, NOW, meter)] == [b]
    store.resume_batch(a, NOW)
    assert claim(store, NOW, meter) == []  # one job per number: b's is in flight


def test_next_wakeup_waits_for_the_batch_meter(store: Store) -> None:
    _batch(store, _numbers(0, 50), rate=0.5)
    meter = GCRA(rate=None)
    got = claim(store, NOW, meter)
    assert len(got) == 1
    assert claim(store, NOW + 0.1, meter) == []
    wake = store.next_wakeup(NOW + 0.1, meter)
    assert wake is not None
    assert wake > NOW + 0.5
    assert claim(store, wake + 0.01, meter)


def test_reserved_lane_slots_keep_the_batch_spacing(store: Store) -> None:
    batch = _batch(store, _numbers(0, 10), rate=4.0)
    meter = GCRA(rate=100.0)
    got = claim(store, NOW, meter)
    slots = store.reserve_slots(NOW, meter, 3, batch)
    gaps = [b - a for a, b in zip([got[-1].slot, *slots], slots, strict=False)]
    assert all(math.isclose(g, 1 / (4.0 * 0.995), rel_tol=1e-6) for g in gaps)
    plain = store.reserve_slots(NOW, meter, 1)
    assert plain[0] > slots[-1]  # the global meter counted the lane's slots too
