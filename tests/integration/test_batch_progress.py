"""A batch's progress and end, on every backend: achieved rate and ETA, completion with
its ``batch.completed`` event, the 429 rule and suppressed numbers blocked at ingest."""

from __future__ import annotations

import io

import pytest

from callgate.batches import ingest
from callgate.domain import AttemptResult, Decision, Kind, Outcome, Status
from callgate.store.base import Finish, StartAttempt
from callgate.store.parts import Store
from tests.integration.batch_support import claim, end

NOW = 1_800_000_000.0
RULE = {"after": 3, "window": 60.0, "factor": 0.5}


def _csv(*numbers: str) -> io.BytesIO:
    return io.BytesIO(("to,body\n" + "".join(f"{n},hi {n}\n" for n in numbers)).encode())


def _events(store: Store) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    return [(w.type, w.data) for w in store.claim_outbox(NOW + 10_000, 100, 30.0, jobs=False)]


def test_achieved_rate_and_eta(store: Store) -> None:
    numbers = [f"+150055501{i:02d}" for i in range(40)]
    batch = ingest(store, _csv(*numbers), NOW, rate=2.0)
    fresh = store.get_batch(batch.id, NOW)
    assert (fresh.current_rate, fresh.achieved_rate) == (2.0, 0.0)
    assert fresh.eta_seconds == 20.0  # 40 rows at the batch's 2/s, before any is sent
    got = claim(store, NOW)
    assert len(got) == 2  # the batch's rate
    for i, c in enumerate(got):  # both sent in the last ten seconds, then delivered
        [n] = store.write_batch([StartAttempt(c.job.id, "w1", NOW + 5 + i)])
        store.write_batch(
            [
                Finish(
                    c.job.id,
                    n,
                    AttemptResult(Outcome.DELIVERED),
                    Decision(Status.DELIVERED),
                    NOW + 6,
                )
            ]
        )
    b = store.get_batch(batch.id, NOW + 10)
    assert b.achieved_rate == pytest.approx(0.2)  # 2 in 10 s
    assert b.remaining == 38
    assert b.eta_seconds == pytest.approx(190.0)
    assert b.to_dict()["eta_seconds"] == b.eta_seconds
    later = store.get_batch(batch.id, NOW + 100)  # nothing sent lately: the batch's rate
    assert (later.achieved_rate, later.eta_seconds) == (0.0, 19.0)
    assert store.get_batch(batch.id).achieved_rate is None  # no time given: not measured
    store.pause_batch(batch.id, NOW + 10)
    assert store.get_batch(batch.id, NOW + 10).eta_seconds is None  # paused: no ETA


def test_a_batch_completes_when_its_last_job_ends_and_says_so(store: Store) -> None:
    batch = ingest(store, _csv("+15005550100", "+15005550101", "bad"), NOW, name="spring")
    assert store.complete_batches(NOW) == []
    got = claim(store, NOW)
    end(store, got[:1], NOW + 1, Outcome.DELIVERED)
    assert store.complete_batches(NOW + 1) == []  # one still in flight
    end(store, got[1:], NOW + 2, Outcome.PERMANENT)
    assert store.complete_batches(NOW + 3) == [batch.id]
    assert store.complete_batches(NOW + 4) == []  # once
    done = store.get_batch(batch.id)
    assert done.status == "completed"
    assert done.completed_at is not None
    [(kind, data)] = _events(store)
    assert kind == "batch.completed"
    assert data["batch_id"] == batch.id
    assert data["name"] == "spring"
    assert data["status"] == "completed"
    assert data["counts"] == {"delivered": 1, "failed": 1}
    assert (data["total_rows"], data["invalid_rows"]) == (3, 1)


def test_a_batch_still_being_read_does_not_complete(store: Store) -> None:
    batch = store.create_batch(kind=Kind.SMS, now=NOW)
    assert store.complete_batches(NOW) == []  # no rows yet, but more may come
    store.finish_batch_ingest(batch.id, NOW)
    assert store.get_batch(batch.id).status == "completed"


def test_a_canceled_batch_ends_canceled_with_the_event(store: Store) -> None:
    batch = ingest(store, _csv("+15005550100", "+15005550101"), NOW)
    [first] = claim(store, NOW, limit=1)
    store.cancel_batch(batch.id, NOW)
    assert store.complete_batches(NOW) == []  # the one in flight is not over yet
    end(store, [first], NOW + 1, Outcome.DELIVERED)
    assert store.complete_batches(NOW + 1) == [batch.id]
    assert store.get_batch(batch.id).status == "canceled"
    [(_, data)] = _events(store)
    assert data["status"] == "canceled"


def test_repeated_429s_lower_the_batch_rate(store: Store) -> None:
    batch = ingest(store, _csv("+15005550100"), NOW, rate=10.0)
    assert store.batch_throttled(batch.id, NOW, **RULE) is None
    assert store.batch_throttled(batch.id, NOW + 1, **RULE) is None
    assert store.batch_throttled(batch.id, NOW + 2, **RULE) == 5.0  # the third in a minute
    assert store.get_batch(batch.id).current_rate == 5.0
    assert store.get_batch(batch.id).rate == 10.0  # what was asked stays on record
    for t in (100, 200, 300):  # spread out: never three within the window
        assert store.batch_throttled(batch.id, NOW + t, **RULE) is None
    for t in (400, 401, 402):
        store.batch_throttled(batch.id, NOW + t, **RULE)
    assert store.get_batch(batch.id).current_rate == 2.5
    free = ingest(store, _csv("+15005550101"), NOW)  # no rate of its own
    assert [store.batch_throttled(free.id, NOW, **RULE) for _ in range(3)] == [None] * 3


def test_the_lowered_rate_meters_the_batch(store: Store) -> None:
    batch = ingest(store, _csv(*(f"+150055501{i:02d}" for i in range(40))), NOW, rate=4.0)
    for t in range(3):
        store.batch_throttled(batch.id, NOW + t * 0.1, **RULE)
    got = claim(store, NOW + 1)
    assert {c.lane_rate for c in got} == {2.0}
    assert len(got) == 2  # at 2/s: two slots within the one-second burst
    assert got[1].slot - got[0].slot == pytest.approx(1 / (2.0 * 0.995))


def test_rows_to_a_suppressed_number_are_blocked_as_they_are_read(store: Store) -> None:
    store.suppress("+15005550100", "sms", "unsubscribed", NOW)
    store.suppress("+15005550101", "*", "manual", NOW)
    store.suppress("+15005550102", "call", "landline", NOW)  # not for SMS
    batch = ingest(store, _csv("+15005550100", "+15005550101", "+15005550102"), NOW)
    rows = store.batch_results(batch.id)
    assert [r["status"] for r in rows] == ["blocked", "blocked", "queued"]
    job = store.get_job(rows[0]["job_id"])
    assert job.reason == "suppressed"
    assert "unsubscribed" in (job.detail or "")
    keep = ingest(
        store, _csv("+15005550100"), NOW, block_suppressed=False
    )  # the rule is off: the guardrails still refuse it at send time
    assert [r["status"] for r in store.batch_results(keep.id)] == ["queued"]
