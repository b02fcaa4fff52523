"""Batches in the store, on every backend: chunked ingest, the error report, strict mode,
duplicates against earlier submits, and results with one row per input row."""

from __future__ import annotations

import io

import pytest

from callgate.batches import BatchRejected, RowMapper, ingest
from callgate.domain import AttemptResult, Decision, Kind, Outcome, Status, make_spec
from callgate.engine.meter import GCRA
from callgate.exceptions import NotFound, ValidationError
from callgate.store.base import Finish, StartAttempt
from callgate.store.parts import Store

NOW = 1_800_000_000.0

CSV = (
    b"To,From,Body,idempotency_key\n"
    b"+15005550006,+15005550006,one,\n"  # 2
    b"nope,+15005550006,two,\n"  # 3 invalid
    b"+15005550006,+15005550006,one,\n"  # 4 duplicate of 2
    b"+15005550007,+15005550006,three,k-old\n"  # 5 key used before the batch
    b"+15005550008,+15005550006,four,\n"  # 6
    b"+15005550009,+15005550006,,\n"  # 7 invalid: no body
)


def test_ingest_queues_valid_rows_in_chunks_and_reports_the_rest(store: Store) -> None:
    [earlier] = store.submit(
        [
            make_spec(
                Kind.SMS,
                to="+15005550007",
                body="three",
                idempotency_key="k-old",
                **{"from": "+15005550006"},
            )
        ],
        NOW,
    )
    batch = ingest(store, io.BytesIO(CSV), NOW, name="spring", rate=5.0, chunk=2)
    assert (batch.name, batch.kind, batch.status, batch.rate) == (
        "spring",
        Kind.SMS,
        "running",
        5.0,
    )
    assert (batch.total_rows, batch.queued_rows, batch.invalid_rows, batch.duplicate_rows) == (
        6,
        2,
        2,
        2,
    )
    assert batch.counts == {"queued": 2}
    assert not batch.done
    errors = store.batch_errors(batch.id)
    assert [(e.line, e.column, e.code, e.job_id) for e in errors] == [
        (3, "To", "invalid_phone_number", None),
        (4, None, "duplicate", errors[1].job_id),
        (5, "idempotency_key", "duplicate", earlier.job.id),
        (7, "Body", "missing_field", None),
    ]
    results = store.batch_results(batch.id)
    assert [r["line"] for r in results] == [2, 3, 4, 5, 6, 7]
    assert [r["status"] for r in results] == [
        "queued",
        "invalid",
        "duplicate",
        "duplicate",
        "queued",
        "invalid",
    ]
    assert results[2]["job_id"] == results[0]["job_id"] == errors[1].job_id
    assert results[3]["job_id"] == earlier.job.id
    assert store.batch_results(batch.id, after_line=4, limit=2)[0]["line"] == 5
    assert len(store.batch_results(batch.id, after_line=4, limit=2)) == 2


def test_results_carry_the_final_status_sid_and_error(store: Store) -> None:
    batch = ingest(store, io.BytesIO(b"to,body\n+15005550006,a\n+15005550007,b\n"), NOW)
    jobs = store.claim("w1", NOW, limit=10, lease=30.0, max_concurrency=10, meter=GCRA(rate=None))
    by_to = {c.job.to: c.job.id for c in jobs}
    for to, result, decision in (
        (
            "+15005550006",
            AttemptResult(Outcome.DELIVERED, provider_ref="SM1"),
            Decision(Status.DELIVERED),
        ),
        (
            "+15005550007",
            AttemptResult(Outcome.PERMANENT, error_code="21610", error_message="unsubscribed"),
            Decision(Status.FAILED, "permanent"),
        ),
    ):
        [number] = store.write_batch([StartAttempt(by_to[to], "w1", NOW)])
        store.write_batch([Finish(by_to[to], number, result, decision, NOW + 1)])
    rows = store.batch_results(batch.id)
    assert [(r["line"], r["status"], r["error_code"], r["attempts"]) for r in rows] == [
        (2, "delivered", None, 1),
        (3, "failed", "21610", 1),
    ]
    assert store.get_batch(batch.id).done


def test_strict_batch_with_one_bad_row_stores_nothing(store: Store) -> None:
    with pytest.raises(BatchRejected) as info:
        ingest(store, io.BytesIO(CSV), NOW, strict=True)
    assert info.value.total == 2
    assert [e.line for e in info.value.errors] == [3, 7]
    assert info.value.field == "To"
    assert store.counts().get("queued", 0) == 0
    with pytest.raises(NotFound):
        store.get_batch(1)
    good = b"to,body\n+15005550006,a\n+15005550006,a\n"  # a duplicate is not invalid
    batch = ingest(store, io.BytesIO(good), NOW, strict=True)
    assert (batch.strict, batch.queued_rows, batch.duplicate_rows) == (True, 1, 1)


def test_file_level_errors_create_no_batch(store: Store) -> None:
    for data, code in (
        (b"", "no_header"),
        (b"to,body\n", "empty_batch"),
        (b'{"x": 1}', "invalid_json"),
    ):
        with pytest.raises(ValidationError) as info:
            ingest(store, io.BytesIO(data), NOW, fmt="json" if data.startswith(b"{") else "csv")
        assert info.value.code == code
    with pytest.raises(ValidationError):
        ingest(store, io.BytesIO(b"to,body\n+15005550006,a\n"), NOW, rate=0)
    with pytest.raises(NotFound):
        store.get_batch(1)


def test_json_batch_with_api_column(store: Store) -> None:
    data = (
        b'[{"api": "fax", "to": "+15005550006", "media_url": "https://example.org/a.pdf",'
        b' "metadata": {"voter": 7}}, {"api": "lookup", "to": "+15005550006"}]'
    )
    batch = ingest(store, io.BytesIO(data), NOW, mapper=RowMapper("sms"))
    assert batch.queued_rows == 2
    jobs = sorted(store.list_jobs(), key=lambda j: j.id)
    assert [j.kind for j in jobs] == [Kind.FAX, Kind.REQUEST]
    assert jobs[0].metadata == {"voter": 7}


def test_rows_arriving_after_pause_or_cancel_follow_the_batch(store: Store) -> None:
    batch = store.create_batch(kind=Kind.SMS, now=NOW)
    spec = make_spec(Kind.SMS, to="+15005550006", body="a")
    store.pause_batch(batch.id, NOW)
    store.add_batch_rows(batch.id, [(2, spec)], [], NOW)
    assert store.get_batch(batch.id).counts == {"held": 1}
    store.cancel_batch(batch.id, NOW)
    store.add_batch_rows(batch.id, [(3, make_spec(Kind.SMS, to="+15005550006", body="b"))], [], NOW)
    assert store.get_batch(batch.id).counts == {"canceled": 2}
