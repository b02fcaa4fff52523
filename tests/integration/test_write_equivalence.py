"""The worker's writes have two implementations: row by row in portable SQL
(:class:`callgate.store.sql_tx.SQLTx`, what SQLite runs) and set-based on PostgreSQL
(:class:`callgate.store.postgres_tx.PgBatch`). The same sequence of writes must leave the
same rows through each: here it is applied three ways — SQLite, the portable path on
PostgreSQL, the set-based path on PostgreSQL — and every table the writes touch is
compared (besides the schema-equivalence test in test_store.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from callgate.domain import (
    EXPIRED,
    RELEASED,
    AttemptResult,
    Decision,
    Kind,
    Outcome,
    Status,
    make_spec,
)
from callgate.store import Store, open_store
from callgate.store.base import Abandon, Accepted, Finish, SettleUnsent, StartAttempt, Write
from tests import pg
from tests.integration.batch_support import claim

NOW = 1_800_000_000.0
JOBS = 12

#: the rows compared, without surrogate ids where their order within one statement is
#: the implementation's own (events: compared per job, in id order)
TABLES = {
    "jobs": "SELECT id, status, attempts, attempt_no, reason, detail, run_at, worker_id, "
    "lease_expires_at, provider_ref, updated_at, reached_at FROM jobs ORDER BY id",
    "attempts": "SELECT job_id, number, state, counted, worker_id, started_at, ended_at, "
    "outcome, provider_ref, error_code, error_message FROM attempts ORDER BY job_id, number",
    "events": "SELECT job_id, type, status, reason, detail, created_at, attempts, fanout "
    "FROM events ORDER BY job_id, id",
    "groups": "SELECT group_key, pending, busy, wake_at, lane FROM groups ORDER BY group_key",
}


def _rounds(ids: Sequence[int]) -> Iterator[list[Write]]:
    """Writes as a worker sends them, a group commit at a time: every outcome, a stale
    finish, a job never sent, one released, one expired, a rate-limited attempt."""
    a = list(ids)
    yield [StartAttempt(j, "w1", NOW + 1) for j in a[:10]]
    yield [Accepted(j, 1, f"SM{j:04d}", NOW + 2) for j in a[:6]]
    yield [
        Finish(
            a[0],
            1,
            AttemptResult(Outcome.DELIVERED, f"SM{a[0]:04d}"),
            Decision(Status.DELIVERED),
            NOW + 3,
        ),
        Finish(
            a[1],
            1,
            AttemptResult(Outcome.PERMANENT, f"SM{a[1]:04d}", "21211", "invalid 'To' number"),
            Decision(Status.FAILED, "permanent", "invalid 'To' number"),
            NOW + 3,
        ),
        Finish(
            a[2],
            1,
            AttemptResult(Outcome.BUSY, f"SM{a[2]:04d}"),
            Decision(Status.RETRYING, "busy", "the line was busy", run_at=NOW + 600),
            NOW + 3,
        ),
        Finish(
            a[3],
            1,
            AttemptResult(Outcome.RATE_LIMITED, None, "429", "slow down", retry_after=5.0),
            Decision(Status.RETRYING, "rate_limited", "429", run_at=NOW + 8, count_attempt=False),
            NOW + 3,
        ),
        Abandon(a[6], 1, RELEASED, NOW + 3),
        Abandon(a[7], 1, Decision(Status.QUEUED, "released", "shutdown", run_at=NOW + 3), NOW + 3),
        SettleUnsent(a[10], EXPIRED, NOW + 3),
        SettleUnsent(a[11], Decision(Status.BLOCKED, "suppressed", "on the list"), NOW + 3),
    ]
    yield [
        Finish(
            a[0], 1, AttemptResult(Outcome.DELIVERED), Decision(Status.DELIVERED), NOW + 4
        ),  # stale
        Finish(
            a[4],
            1,
            AttemptResult(Outcome.UNKNOWN, f"SM{a[4]:04d}", "30008", "unknown"),
            Decision(Status.UNCERTAIN, "unknown", "the provider did not say"),
            NOW + 4,
        ),
        Finish(
            a[5],
            1,
            AttemptResult(Outcome.DELIVERED, f"SM{a[5]:04d}"),
            Decision(Status.DELIVERED),
            NOW + 4,
        ),
        Finish(
            a[8], 1, AttemptResult(Outcome.NO_ANSWER), Decision(Status.FAILED, "no_answer"), NOW + 4
        ),
        Finish(a[9], 1, AttemptResult(Outcome.DELIVERED), Decision(Status.DELIVERED), NOW + 4),
    ]


def _prepare(store: Store) -> list[int]:
    specs = [make_spec(Kind.SMS, to=f"+1212555{i:04d}", body=f"hi {i}") for i in range(JOBS)]
    specs.append(make_spec(Kind.SMS, to="+12125550000", body="second to the first number"))
    store.submit(specs, NOW)
    got = claim(store, NOW, limit=JOBS)
    assert len(got) == JOBS
    return sorted(c.job.id for c in got)


def _apply(store: Store, apply: Callable[[Store, list[Write]], list[Any]]) -> dict[str, Any]:
    ids = _prepare(store)
    results = [apply(store, writes) for writes in _rounds(ids)]
    tables = {name: [_norm(r) for r in store._read(sql)] for name, sql in TABLES.items()}  # type: ignore[attr-defined]
    return {"results": results, **tables}


def _norm(row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(round(v, 6) if isinstance(v, float) else v for v in row)


def _batch(store: Store, writes: list[Write]) -> list[Any]:
    return store.write_batch(writes)


def _portable(store: Store, writes: list[Write]) -> list[Any]:
    """The row-by-row path (SQLite's), on whatever backend ``store`` is."""
    from callgate.store.sql_tx import SQLTx

    with store._write() as c:  # type: ignore[attr-defined]
        tx = SQLTx(c, store._locking())  # type: ignore[attr-defined]
        return [tx.apply(w) for w in writes]


@pytest.fixture
def three(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[list[Store]]:
    pg.require()
    databases: pg.Databases = request.getfixturevalue("pg_databases")
    urls = [databases.fresh(), databases.fresh()]
    stores = [open_store(f"sqlite:///{tmp_path}/w.db"), *(open_store(u) for u in urls)]
    yield stores
    for s in stores:
        s.close()
    for u in urls:
        databases.drop(u)


def test_the_portable_and_the_set_based_writes_leave_the_same_rows(three: list[Store]) -> None:
    sqlite, pg_portable, pg_set = three
    on_sqlite = _apply(sqlite, _batch)
    portable = _apply(pg_portable, _portable)
    set_based = _apply(pg_set, _batch)
    assert [type(s).__name__ for s in three] == ["SQLiteStore", "PostgresStore", "PostgresStore"]
    for name in ("results", *TABLES):
        assert portable[name] == on_sqlite[name], name
        assert set_based[name] == portable[name], name
    # the writes did what they say (so the comparison is about something)
    statuses = [row[1] for row in set_based["jobs"]]
    assert statuses.count("delivered") == 3
    assert {"failed", "retrying", "uncertain", "queued", "expired", "blocked"} <= set(statuses)
    assert set_based["results"][3][0] is None  # the stale finish changed nothing
    assert len(set_based["events"]) > 3 * JOBS
    assert len(set_based["attempts"]) == 10
