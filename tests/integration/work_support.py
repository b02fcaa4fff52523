"""Measuring the *work* a store call does, not its time: a history of finished jobs must
not make a hot query do more of it.

:func:`measure` wraps a store while a block runs and records, per SQL statement:

* on SQLite, the virtual machine steps it took (``set_progress_handler``): the count of
  rows and index entries it visited, exact and the same on every run;
* on PostgreSQL, the shared buffers its plan touched (hit + read), from ``EXPLAIN
  (ANALYZE, BUFFERS)`` of that very statement with that very data, run inside a
  savepoint that is rolled back before the statement itself runs.

The history itself is written by :func:`callgate.store.sql_history.write_history`.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from callgate.store.parts import Store

#: statements compared by their shape: literal numbers and parameter lists folded
_FOLD = re.compile(r"\s+")


@dataclass
class Work:
    """What the statements run inside :func:`measure` did."""

    unit: str  # "vm steps" (SQLite) or "buffers" (PostgreSQL)
    by_statement: Counter[str] = field(default_factory=Counter)
    plans: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_statement.values())

    def add(self, sql: str, work: int, plan: str = "") -> None:
        key = _FOLD.sub(" ", sql).strip()[:160]
        self.by_statement[key] += work
        if plan:
            self.plans.setdefault(key, plan)

    def report(self, other: Work | None = None) -> str:
        """The statements, most work first (beside ``other``'s, when given)."""
        lines = []
        for sql, n in self.by_statement.most_common():
            was = f" (was {other.by_statement.get(sql, 0)})" if other is not None else ""
            lines.append(f"{n:>9} {self.unit}{was}: {sql}")
            if sql in self.plans:
                lines.append("          plan: " + self.plans[sql])
        return "\n".join(lines)


@contextmanager
def measure(store: Store) -> Iterator[Work]:
    """Record the work of every statement ``store`` runs inside the block."""
    if hasattr(store, "_conn"):
        with _sqlite(store) as work:
            yield work
    else:
        with _postgres(store) as work:
            yield work


# -- SQLite ---------------------------------------------------------------------------


class _CountingConnection:
    """An sqlite3 connection that counts each statement's VM steps."""

    def __init__(self, conn: sqlite3.Connection, work: Work) -> None:
        self._conn, self._work = conn, work
        self._steps = 0

    def _tick(self) -> int:
        self._steps += 1
        return 0

    def _run(self, sql: str, call: Any) -> Any:
        self._steps = 0
        self._conn.set_progress_handler(self._tick, 1)
        try:
            cursor = call()
            rows = cursor.fetchall()  # the steps of reading the rows too
        finally:
            self._conn.set_progress_handler(None, 1)
        if not sql.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            self._work.add(sql, self._steps)
        return _Rows(rows, cursor.rowcount)

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self._run(sql, lambda: self._conn.execute(sql, params))

    def executemany(self, sql: str, params: Any) -> Any:
        return self._run(sql, lambda: self._conn.executemany(sql, params))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _Rows:
    """A finished cursor's rows."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows, self.rowcount = rows, rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return list(self._rows)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


@contextmanager
def _sqlite(store: Any) -> Iterator[Work]:
    work = Work("vm steps")
    real = store._conn
    store._conn = _CountingConnection(real, work)
    try:
        yield work
    finally:
        store._conn = real


def sqlite_plan(store: Any, sql: str, params: Any) -> str:
    """``EXPLAIN QUERY PLAN`` of ``sql``, one line."""
    rows = store._read("EXPLAIN QUERY PLAN " + sql, params)
    return " | ".join(str(r[-1]) for r in rows)


# -- PostgreSQL -----------------------------------------------------------------------


def _buffers(plan: dict[str, Any]) -> int:
    return int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0))


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


def _shape(plan: dict[str, Any]) -> str:
    """The plan's scans, e.g. ``Index Scan jobs_api_heads on jobs``."""
    out = []
    for node in _nodes(plan):
        if "Scan" in node["Node Type"]:
            index, table = node.get("Index Name", ""), node.get("Relation Name", "")
            out.append(f"{node['Node Type']} {index} on {table}")
    return "; ".join(out)


def _explain(conn: Any, sql: str, params: Any) -> tuple[int, str]:
    """Buffers and scans of ``sql`` run once with ``params`` (its effects rolled back)."""
    conn.execute("SAVEPOINT callgate_work")
    try:
        row = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params).fetchone()
    finally:
        conn.execute("ROLLBACK TO SAVEPOINT callgate_work")
    doc = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    plan = doc[0]["Plan"]
    return _buffers(plan), _shape(plan)


@contextmanager
def _postgres(store: Any) -> Iterator[Work]:
    from callgate.store import postgres

    work = Work("buffers")
    conn_type = postgres._PgConn
    real_execute, real_many = conn_type.execute, conn_type.executemany
    real_read = store._read

    def execute(self: Any, sql: str, params: Any = (), /) -> Any:
        translated = postgres.to_psycopg(sql)
        if self._c.info.transaction_status != 0 or self._pipeline is not None:
            n, plan = _explain(self._c, translated, params)
            work.add(sql, n, plan)
        return real_execute(self, sql, params)

    def executemany(self, sql: str, params: Any, /) -> Any:
        params = list(params)
        for one in params:
            n, plan = _explain(self._c, postgres.to_psycopg(sql), one)
            work.add(sql, n, plan)
        return real_many(self, sql, params)

    def read(sql: str, params: Any = ()) -> list[Any]:
        with store._pool.connection() as conn, conn.transaction():
            n, plan = _explain(conn, postgres.to_psycopg(sql), params)
        work.add(sql, n, plan)
        return list(real_read(sql, params))

    conn_type.execute, conn_type.executemany = execute, executemany  # type: ignore[method-assign]
    store._read = read
    try:
        yield work
    finally:
        conn_type.execute, conn_type.executemany = real_execute, real_many  # type: ignore[method-assign]
        del store._read
