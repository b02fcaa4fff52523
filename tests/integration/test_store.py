"""Store contract: each test runs on every backend (see ``BACKENDS`` in conftest)."""

from __future__ import annotations

import itertools
import sqlite3
from datetime import UTC, datetime

import pytest

from callgate.domain import AttemptResult, Decision, Kind, Outcome, Status, make_spec
from callgate.engine.meter import GCRA
from callgate.exceptions import IdempotencyConflict, InvalidTransition, NotFound, StoreError
from callgate.store.base import Finish, StartAttempt
from callgate.store.sql import SQLStore, migrations
from callgate.store.sqlite import SQLiteStore
from tests import pg

NOW = 1_800_000_000.0
UNLIMITED = GCRA(rate=None)


def fax(to: str = "+15005550006", **kw: object):  # type: ignore[no-untyped-def]
    return make_spec(Kind.FAX, to=to, media_url="https://example.org/a.pdf", **kw)  # type: ignore[arg-type]


def claim(
    store: SQLStore,
    now: float = NOW,
    *,
    limit: int = 100,
    worker: str = "w1",
    max_concurrency: int = 1000,
    meter: GCRA = UNLIMITED,
    lease: float = 30.0,
):  # type: ignore[no-untyped-def]
    return store.claim(
        worker, now, limit=limit, lease=lease, max_concurrency=max_concurrency, meter=meter
    )


def finish(
    store: SQLStore,
    job_id: int,
    decision: Decision,
    now: float = NOW,
    worker: str = "w1",
    outcome: Outcome = Outcome.DELIVERED,
) -> Status | None:
    number = start(store, job_id, worker, now)
    assert number is not None
    [status] = store.write_batch([Finish(job_id, number, AttemptResult(outcome), decision, now)])
    return status  # type: ignore[no-any-return]


def start(store: SQLStore, job_id: int, worker: str = "w1", now: float = NOW) -> int | None:
    [number] = store.write_batch([StartAttempt(job_id, worker, now)])
    return number  # type: ignore[no-any-return]


# -- schema -------------------------------------------------------------------------------


def _schema(conn: sqlite3.Connection) -> set[tuple[str, str, str]]:
    """Tables by their columns (ALTER TABLE rewrites the stored SQL text), everything
    else by its SQL with white space folded."""
    found = set()
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
        "AND name != 'schema_migrations'"
    ).fetchall()
    for kind, name, sql in rows:
        if kind == "table":
            cols = conn.execute(f"PRAGMA table_xinfo({name})").fetchall()
            found.add((kind, name, repr(cols)))
        else:
            found.add((kind, name, " ".join((sql or "").split())))
    return found


def test_migrations_reproduce_schema_sql(tmp_path):  # type: ignore[no-untyped-def]
    migrated = SQLiteStore(str(tmp_path / "m.db"))
    from importlib import resources

    reference = sqlite3.connect(str(tmp_path / "ref.db"))
    schema = (resources.files("callgate.store") / "migrations/sqlite/schema.sql").read_text()
    reference.executescript(schema)
    assert _schema(migrated._conn) == _schema(reference)
    # numbers are reserved per issue, so there may be gaps; never two with one number
    versions = [m[0] for m in migrations("sqlite")]
    assert versions == sorted(set(versions))
    assert versions[0] == 1


PG_CATALOG = {
    "columns": "SELECT table_name, column_name, ordinal_position, data_type, is_nullable, "
    "column_default, is_identity FROM information_schema.columns WHERE table_schema = 'public' "
    "AND table_name != 'schema_migrations'",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
    "AND tablename != 'schema_migrations'",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
    "FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
    "AND conrelid::regclass::text != 'schema_migrations'",
    "triggers": "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal",
    "functions": "SELECT proname, pg_get_functiondef(oid) FROM pg_proc "
    "WHERE pronamespace = 'public'::regnamespace",
}


def _pg_schema(url: str) -> dict[str, set[tuple[object, ...]]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return {k: {tuple(r) for r in conn.execute(q)} for k, q in PG_CATALOG.items()}


def test_postgres_migrations_reproduce_schema_sql(pg_databases: pg.Databases) -> None:
    from importlib import resources

    import psycopg

    from callgate.store.postgres import PostgresStore

    migrated, reference = pg_databases.fresh(migrated=False), pg_databases.fresh(migrated=False)
    PostgresStore(migrated).close()
    schema = (resources.files("callgate.store") / "migrations/postgres/schema.sql").read_text()
    with psycopg.connect(reference, autocommit=True) as conn:
        conn.execute(schema.encode())
    got, want = _pg_schema(migrated), _pg_schema(reference)
    assert got["columns"]
    assert got["triggers"]
    assert got["functions"]
    assert got == want
    versions = [m[0] for m in migrations("postgres")]
    assert versions == sorted(set(versions))  # gaps allowed (numbers reserved per issue)
    assert versions[0] == 1


def test_migrate_is_idempotent(store: SQLStore) -> None:
    assert store.migrate() == []


# -- submit and idempotency ---------------------------------------------------------------


def test_submit_normalises_and_queues(store: SQLStore) -> None:
    spec = make_spec(Kind.SMS, to="+1 (212) 555-0100", body="hi")
    [result] = store.submit([spec], NOW)
    assert result.created
    job = store.get_job(result.job.id)
    assert (job.to, job.group_key, job.status, job.attempts) == (
        "+12125550100",
        "+12125550100",
        Status.QUEUED,
        0,
    )
    assert [e.type for e in store.events(job.id)] == ["job.queued"]


def test_idempotency_key_maps_to_the_same_job_forever(store: SQLStore) -> None:
    [first] = store.submit([fax(idempotency_key="k1")], NOW)
    claimed = claim(store)
    finish(store, claimed[0].job.id, Decision(Status.DELIVERED))
    [again] = store.submit([fax(idempotency_key="k1")], NOW + 86400 * 365)
    assert not again.created
    assert again.job.id == first.job.id
    assert again.job.status is Status.DELIVERED
    assert store.counts()["delivered"] == 1
    assert sum(store.counts().values()) == 1


def test_idempotency_keys_are_scoped(store: SQLStore) -> None:
    [a] = store.submit([fax(idempotency_key="k")], NOW, scope="key-a")
    [b] = store.submit([fax(idempotency_key="k")], NOW, scope="key-b")
    assert a.job.id != b.job.id


def test_reused_key_with_other_payload_is_a_conflict_and_stores_nothing(
    store: SQLStore,
) -> None:
    store.submit([fax(idempotency_key="k")], NOW)
    other = make_spec(
        Kind.FAX, to="+15005550006", media_url="https://example.org/OTHER.pdf", idempotency_key="k"
    )
    with pytest.raises(IdempotencyConflict) as info:
        store.submit([fax(to="+15005550122"), other], NOW)
    assert info.value.code == "idempotency_conflict"
    assert sum(store.counts().values()) == 1  # the batch was not half-written


# -- claiming -----------------------------------------------------------------------------


def test_one_in_flight_per_group_and_fifo(store: SQLStore) -> None:
    ids = [r.job.id for r in store.submit([fax(), fax(), fax(to="+15005550122")], NOW)]
    first = claim(store)
    assert sorted(c.job.id for c in first) == [ids[0], ids[2]]
    assert claim(store) == []  # both groups busy
    finish(store, ids[0], Decision(Status.DELIVERED))
    assert [c.job.id for c in claim(store)] == [ids[1]]


def test_database_refuses_a_second_in_flight_job_in_a_group(store: SQLStore) -> None:
    ids = [r.job.id for r in store.submit([fax(), fax()], NOW)]
    claim(store)
    with pytest.raises(StoreError, match=r"(?i)unique"), store._write() as c:
        c.execute("UPDATE jobs SET status = 'in_flight' WHERE id = ?", (ids[1],))
    assert store.counts()["in_flight"] == 1


def test_retrying_job_steps_aside(store: SQLStore) -> None:
    a, b = (r.job.id for r in store.submit([fax(), fax()], NOW))
    claim(store)
    finish(store, a, Decision(Status.RETRYING, "busy", run_at=NOW + 600), outcome=Outcome.BUSY)
    assert [c.job.id for c in claim(store, NOW + 1)] == [b]
    finish(store, b, Decision(Status.DELIVERED), NOW + 2)
    assert claim(store, NOW + 3) == []  # a waits out its delay
    assert [c.job.id for c in claim(store, NOW + 600)] == [a]


def test_strict_order_keeps_the_group_waiting(store: SQLStore) -> None:
    a, b = (r.job.id for r in store.submit([fax(strict_order=True), fax()], NOW))
    claim(store)
    finish(store, a, Decision(Status.RETRYING, "busy", run_at=NOW + 600), outcome=Outcome.BUSY)
    assert claim(store, NOW + 1) == []
    assert [c.job.id for c in claim(store, NOW + 600)] == [a]
    finish(store, a, Decision(Status.DELIVERED), NOW + 601)
    assert [c.job.id for c in claim(store, NOW + 602)] == [b]


def test_oldest_head_first_across_groups(store: SQLStore) -> None:
    numbers = [f"+1212555{i:04d}" for i in range(5)]
    ids = [r.job.id for r in store.submit([fax(to=n) for n in numbers], NOW)]
    assert [c.job.id for c in claim(store, limit=3)] == ids[:3]


def test_concurrency_cap(store: SQLStore) -> None:
    store.submit([fax(to=f"+1212555{i:04d}") for i in range(10)], NOW)
    assert len(claim(store, max_concurrency=4)) == 4
    assert claim(store, max_concurrency=4, worker="w2") == []


def test_meter_limits_claims_and_hands_out_spaced_slots(store: SQLStore) -> None:
    store.submit([fax(to=f"+1212555{i:04d}") for i in range(50)], NOW)
    meter = GCRA(rate=10.0, burst=1.0)
    got = claim(store, meter=meter)
    slots = [c.slot for c in got]
    assert len(got) == 10  # one second of slots ahead, at 10/s (with the margin)
    assert slots == sorted(slots)
    assert min(b - a for a, b in itertools.pairwise(slots)) >= 0.1
    assert claim(store, meter=meter) == []  # the lookahead is used up


def test_not_before_and_expiry_at_claim(store: SQLStore) -> None:
    later = datetime.fromtimestamp(NOW + 60, UTC)
    soon = datetime.fromtimestamp(NOW + 10, UTC)
    a = store.submit([fax(not_before=later)], NOW)[0].job.id
    b = store.submit([fax(to="+15005550122", expires_at=soon)], NOW)[0].job.id
    assert claim(store, NOW + 20) == []  # a not yet due, b expired at the claim
    assert store.get_job(b).status is Status.EXPIRED
    assert [c.job.id for c in claim(store, NOW + 60)] == [a]


def test_overdue_jobs_expire_even_behind_a_busy_group(store: SQLStore) -> None:
    soon = datetime.fromtimestamp(NOW + 10, UTC)
    store.submit([fax(), fax(expires_at=soon)], NOW)
    claim(store)
    assert store.expire_overdue(NOW + 11) == 1
    assert store.counts()["expired"] == 1


# -- leases ------------------------------------------------------------------------------


def test_lease_lost_before_sending_requeues(store: SQLStore) -> None:
    [r] = store.submit([fax()], NOW)
    claim(store, lease=30)
    assert store.expire_leases(NOW + 31) == 1
    job = store.get_job(r.job.id)
    assert (job.status, job.reason) == (Status.QUEUED, "lease_lost")


def test_lease_lost_after_sending_is_uncertain_not_resent(store: SQLStore) -> None:
    [r] = store.submit([fax()], NOW)
    claim(store, lease=30)
    assert start(store, r.job.id) == 1
    assert store.heartbeat("w1", NOW + 20, 30, [r.job.id]) == 1
    assert store.expire_leases(NOW + 31) == 0  # the heartbeat kept it
    assert store.expire_leases(NOW + 51) == 1
    job = store.get_job(r.job.id)
    assert (job.status, job.reason) == (Status.UNCERTAIN, "lease_lost")
    assert claim(store, NOW + 60) == []
    assert store.attempts(r.job.id)[0].outcome is Outcome.UNKNOWN


def test_release_requeues_unsent_and_leaves_sent_uncertain(store: SQLStore) -> None:
    a, b = (r.job.id for r in store.submit([fax(), fax(to="+15005550122")], NOW))
    claim(store)
    start(store, a)
    assert store.release_worker("w1", NOW) == 2
    assert (store.get_job(a).status, store.get_job(a).reason) == (
        Status.UNCERTAIN,
        "worker_stopped",
    )
    assert store.get_job(b).status is Status.QUEUED
    assert store.counts()["in_flight"] == 0


# -- finishing, cancel, retry -----------------------------------------------------------


def test_rate_limited_is_not_an_attempt(store: SQLStore) -> None:
    [r] = store.submit([fax()], NOW)
    claim(store)
    finish(
        store,
        r.job.id,
        Decision(Status.QUEUED, "rate_limited", run_at=NOW, count_attempt=False),
        outcome=Outcome.RATE_LIMITED,
    )
    job = store.get_job(r.job.id)
    assert (job.status, job.attempts) == (Status.QUEUED, 0)
    assert store.attempts(r.job.id)[0].counted is False


def test_cancel_waiting_job_at_once(store: SQLStore) -> None:
    [r] = store.submit([fax()], NOW)
    assert store.cancel(r.job.id, NOW).status is Status.CANCELED
    assert claim(store) == []
    with pytest.raises(InvalidTransition):
        store.cancel(r.job.id, NOW)


def test_cancel_in_flight_job_after_its_attempt(store: SQLStore) -> None:
    a, b = (r.job.id for r in store.submit([fax(), fax(to="+15005550122")], NOW))
    claim(store)
    number = start(store, a)  # a is on the wire
    assert number is not None
    assert store.cancel(a, NOW).cancel_requested
    assert store.cancel(b, NOW).status is Status.IN_FLIGHT  # claimed, not yet sent
    assert start(store, b) is None  # so it is never sent
    assert store.get_job(b).status is Status.CANCELED
    [status] = store.write_batch(
        [
            Finish(
                a,
                number,
                AttemptResult(Outcome.BUSY),
                Decision(Status.RETRYING, run_at=NOW + 600),
                NOW,
            )
        ]
    )
    assert status is Status.CANCELED
    assert store.get_job(a).status is Status.CANCELED


def test_retry_requeues_a_dead_letter_with_fresh_attempts(store: SQLStore) -> None:
    [r] = store.submit([fax()], NOW)
    claim(store)
    finish(store, r.job.id, Decision(Status.FAILED, "max_attempts"), outcome=Outcome.BUSY)
    job = store.retry(r.job.id, NOW + 5)
    assert (job.status, job.attempts) == (Status.QUEUED, 0)
    assert [c.job.id for c in claim(store, NOW + 5)] == [r.job.id]
    with pytest.raises(NotFound):
        store.retry(12345, NOW)


def test_stale_finish_is_ignored(store: SQLStore) -> None:
    [r] = store.submit([fax()], NOW)
    claim(store)
    number = start(store, r.job.id)
    assert number is not None
    stale = Finish(
        r.job.id, number + 1, AttemptResult(Outcome.DELIVERED), Decision(Status.DELIVERED), NOW
    )
    assert store.write_batch([stale]) == [None]
    assert store.get_job(r.job.id).status is Status.IN_FLIGHT


def test_every_status_change_has_an_event(store: SQLStore) -> None:
    [r] = store.submit([fax()], NOW)
    claim(store)
    finish(store, r.job.id, Decision(Status.RETRYING, run_at=NOW + 1), outcome=Outcome.BUSY)
    claim(store, NOW + 1)
    finish(store, r.job.id, Decision(Status.DELIVERED), NOW + 2)
    assert [e.type for e in store.events(r.job.id)] == [
        "job.queued",
        "job.in_flight",
        "job.retrying",
        "job.in_flight",
        "job.delivered",
    ]
