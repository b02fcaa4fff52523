"""A deployment's history must not slow its hot paths: with 100,000 finished jobs in the
tables, one claim of 250 groups (and the other calls a worker makes all day) does no
more work than on an empty history, on both backends, whether the planner's statistics
were taken after the history grew or before it.

Work, not time: SQLite's virtual machine steps and PostgreSQL's buffers per statement
(see :mod:`tests.integration.work_support`), measured for the same workload once on an
empty history and once on a long one.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from callgate.batches import ingest
from callgate.domain import Kind, make_spec
from callgate.engine.meter import GCRA
from callgate.store.parts import Store
from callgate.store.sql_history import write_history as fill_history
from tests.integration.batch_support import claim
from tests.integration.work_support import Work, measure, sqlite_plan

NOW = 1_800_000_000.0
HISTORY = 100_000
GROUPS = 250
#: work allowed beyond the empty history's. Per statement: a constant (a b-tree one level
#: deeper) and up to twice as much again, for where the same rows landed in a bigger heap
#: and for a planner with stale statistics choosing between two plans that are both
#: bounded by the queue, not the history (taking 500 claimed ids by the primary key or by
#: walking the claimable index: 2.4x seen). In all, a quarter more. Work that grows with
#: the history grows with its 100,000 rows: the old lane-head plan did 90x.
SLACK, SHARE, TOTAL_SHARE = 40, 2.0, 0.25


def _number(i: int) -> str:
    return f"+1212555{i:04d}"


def _analyze(store: Any) -> None:
    with store._write() as c:
        c.execute("ANALYZE")


def _no_autovacuum(store: Any, backend: str) -> None:
    """Keep the statistics where the test put them (PostgreSQL would analyze by itself)."""
    if backend == "postgresql":
        with store._write() as c:
            for table in ("jobs", "groups", "attempts", "events"):
                c.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")


def _workload(store: Store) -> int:
    """What a busy gateway has waiting: one job from the API to each of 250 numbers the
    history knows, a running batch whose 250 rows go to 250 more of them, a strict-order
    job waiting behind a later one, and jobs not due yet. Returns the batch's id."""
    specs = [make_spec(Kind.SMS, to=_number(i), body=f"api {i}") for i in range(GROUPS)]
    specs.append(make_spec(Kind.SMS, to=_number(900), body="strict", strict_order=True))
    store.submit(specs, NOW - 60)
    later = [make_spec(Kind.SMS, to=_number(950 + i), body="tomorrow") for i in range(20)]
    store.submit(later, NOW + 86_400)  # run_at tomorrow: groups to snooze
    rows = "".join(f"{_number(GROUPS + i)},batch {i}\n" for i in range(GROUPS))
    batch = ingest(store, io.BytesIO(("to,body\n" + rows).encode()), NOW - 30).id
    # groups a claim must snooze (a retry due in an hour; a strict job waiting for its
    # retry ahead of a job that is due) or move to another lane (the API's lane holding
    # a group whose only due job is a batch row, as after its API job was sent)
    retry = [make_spec(Kind.SMS, to=_number(960 + i), body="busy") for i in range(10)]
    retry.append(make_spec(Kind.SMS, to=_number(901), body="first", strict_order=True))
    waiting = [r.job.id for r in store.submit(retry, NOW - 50)]
    store.submit([make_spec(Kind.SMS, to=_number(901), body="second")], NOW - 40)
    with store._write() as c:  # type: ignore[attr-defined]
        c.execute(
            f"UPDATE jobs SET status = 'retrying', run_at = ? "
            f"WHERE id IN ({', '.join(map(str, waiting))})",
            (NOW + 3600,),
        )
        moved = ", ".join(f"'{_number(GROUPS + i)}'" for i in range(10))
        c.execute(f"UPDATE groups SET lane = 0 WHERE group_key IN ({moved})")
    return batch


def _scenario(store: Store, backend: str, history: int, statistics: str) -> tuple[Work, int]:
    """The work of one claim (limit 600) on ``history`` finished jobs, with statistics
    taken ``before`` the history grew or ``after``."""
    _no_autovacuum(store, backend)
    if statistics == "before":
        _analyze(store)
    if history:
        # every other finished job was a row of batch 1: the running batch's own id
        fill_history(store, history, numbers=1000, at=NOW - 30 * 86_400, batch=1)
    if statistics == "after":
        _analyze(store)
    batch = _workload(store)
    assert batch == 1
    with measure(store) as work:
        got = claim(store, NOW, limit=600)
    return work, len(got)


@pytest.fixture
def fresh_store(backend: str, request: pytest.FixtureRequest, tmp_path: Any) -> Callable[[], Store]:
    """A new store on a new database, as many as the test asks for."""
    from tests import pg

    made: list[tuple[Store, str | None]] = []

    def make() -> Store:
        from callgate.store import open_store

        if backend == "sqlite":
            url, dropped = f"sqlite:///{tmp_path}/h{len(made)}.db", None
        else:
            databases: pg.Databases = request.getfixturevalue("pg_databases")
            url = dropped = databases.fresh()
            # a pooled database keeps the dead rows of the tests before (its rows are
            # deleted between tests): their index entries would count as work here
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM")
        s = open_store(url)
        made.append((s, dropped))
        return s

    yield make  # type: ignore[misc]
    for s, url in made:
        if url is not None:
            with s._write() as c:  # type: ignore[attr-defined]
                for table in ("jobs", "groups", "attempts", "events"):
                    c.execute(f"ALTER TABLE {table} RESET (autovacuum_enabled)")
        s.close()
        if url is not None:
            request.getfixturevalue("pg_databases").drop(url)


def _assert_flat(empty: Work, full: Work) -> None:
    report = f"\nwith history:\n{full.report(empty)}"
    if os.environ.get("CALLGATE_SHOW_WORK"):
        print(report)
    for sql, n in full.by_statement.items():
        base = empty.by_statement.get(sql, 0)
        assert n <= base * (1 + SHARE) + SLACK, f"grew with history: {sql}{report}"
    assert full.total <= empty.total * (1 + TOTAL_SHARE) + SLACK * len(full.by_statement), report


@pytest.mark.parametrize("statistics", ["after", "before"])
def test_a_claim_does_no_more_work_on_a_long_history(
    fresh_store: Callable[[], Store], backend: str, statistics: str
) -> None:
    empty, claimed = _scenario(fresh_store(), backend, 0, statistics)
    full, claimed_full = _scenario(fresh_store(), backend, HISTORY, statistics)
    # 250 API jobs, 250 batch rows, the strict job (nothing waits ahead of it: claimable)
    assert claimed == claimed_full == 2 * GROUPS + 1
    _assert_flat(empty, full)


def test_sqlite_heads_use_the_indexes_made_for_them(tmp_path: Any) -> None:
    """SQLite's side of the plans (PostgreSQL's are measured above, buffer by buffer)."""
    from callgate.store.sql_lanes import heads_sql
    from callgate.store.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path / "plans.db"))
    fill_history(store, 1000, numbers=100, at=NOW - 86_400, batch=1)
    _analyze(store)
    params = {"now": NOW, "scan": 64, "skip": 0, "lane": 0}
    api = sqlite_plan(store, heads_sql(0, True), params)
    batch = sqlite_plan(store, heads_sql(1, True), params | {"lane": 1})
    # the head itself: the first entry of its index, found by equality, no sort
    assert "SEARCH j USING INDEX jobs_api_heads (group_key=?)" in api, api
    assert "SEARCH j USING COVERING INDEX jobs_claimable (group_key=? AND batch_id=?)" in batch or (
        "SEARCH j USING INDEX jobs_claimable (group_key=? AND batch_id=?)" in batch
    ), batch
    for plan in (api, batch):
        assert "SEARCH g USING INDEX groups_ready (lane=?)" in plan, plan
        for alias in "jos":
            assert f"SCAN {alias} " not in plan + " ", plan


def test_the_other_hot_calls_do_no_more_work_on_a_long_history(
    fresh_store: Callable[[], Store], backend: str
) -> None:
    """What a worker and the API do besides claiming, on both histories."""

    def calls(store: Store) -> Work:
        _no_autovacuum(store, backend)
        _workload(store)
        got = claim(store, NOW, limit=10)
        meter = GCRA(rate=10.0)
        with measure(store) as work:
            store.next_wakeup(NOW, meter)
            store.reserve_slots(NOW, meter, 5)
            store.reserve_slots(NOW, meter, 5, batch_id=1)
            store.heartbeat("w1", NOW + 1, 600.0, [c.job.id for c in got])
            store.expire_leases(NOW + 1)
            store.expire_overdue(NOW + 1)
            store.active_count()
            store.number_facts(_number(3), "sms", NOW - 86_400, job_id=got[0].job.id)
        return work

    empty = calls(fresh_store())
    full_store = fresh_store()
    fill_history(full_store, HISTORY, numbers=1000, at=NOW - 30 * 86_400, batch=1)
    _analyze(full_store)
    _assert_flat(empty, calls(full_store))


def test_the_dashboard_reads_do_no_more_work_on_a_long_history(
    fresh_store: Callable[[], Store], backend: str
) -> None:
    """What the dashboard reads on every refresh (the overview, the lines, the batches),
    on both histories: bounded by the work waiting and the last day, not by the
    finished jobs (whose attempts are a month old here)."""

    def reads(store: Store) -> Work:
        _no_autovacuum(store, backend)
        batch = _workload(store)
        claim(store, NOW, limit=10)  # some jobs in flight
        with measure(store) as work:
            assert len(store.line_queues(limit=200)) == 200
            store.line_queues(number=_number(3)[:-1], limit=200)
            assert store.active_counts()
            assert store.oldest_queued_at() is not None
            store.sends_by_minute(NOW - 86_400)
            store.outcomes_since(NOW - 900)
            assert store.list_batches(limit=50)[0]["active"] > 0
            store.batch_sends(batch, NOW - 60, NOW, 1)
        return work

    empty = reads(fresh_store())
    full_store = fresh_store()
    fill_history(full_store, HISTORY, numbers=1000, at=NOW - 30 * 86_400, batch=1)
    _analyze(full_store)
    _assert_flat(empty, reads(full_store))


def test_the_gauges_and_the_alerts_reads_do_no_more_work_on_a_long_history(
    fresh_store: Callable[[], Store], backend: str
) -> None:
    """What every scrape of /metrics and every evaluation of the alert rules reads (jobs
    per non-terminal status, the oldest waiting job, the dead letters of the hour, the
    running batches, failing endpoints, open alerts), and the workers' heartbeat rows."""

    def calls(store: Store) -> Work:
        _no_autovacuum(store, backend)
        _workload(store)
        claim(store, NOW, limit=10)
        store.raise_alert("oldest_queued", "", "waiting", {}, NOW)
        with measure(store) as work:
            seen = store.observe(NOW)
            store.alerts(open_only=True)
            store.heartbeat("w1", NOW + 1, 600.0, [])
            store.prune_workers(NOW + 1)
        assert seen.jobs["queued"] > 0
        assert seen.oldest_due is not None
        assert list(seen.batches) == [1]
        assert seen.alerts_open == {"oldest_queued": 1}
        return work

    empty = calls(fresh_store())
    full_store = fresh_store()
    # a year's history has failed jobs too (every tenth): none of them within the hour
    fill_history(full_store, HISTORY, numbers=1000, at=NOW - 30 * 86_400, batch=None)
    with full_store._write() as c:  # type: ignore[attr-defined]
        for i in range(2000):  # alerts long resolved
            c.execute(
                "INSERT INTO alerts (rule, subject, detail, raised_at, resolved_at) "
                "VALUES ('dead_letters', ?, '{}', ?, ?)",
                (str(i), NOW - 86_400, NOW - 86_000),
            )
    _analyze(full_store)
    _assert_flat(empty, calls(full_store))
