"""Provider circuits in portable SQL: one row per provider that has ever failed, the jobs
that wait for it (``held``, reason ``provider_unavailable``), and the ``provider.down`` /
``provider.up`` events written in the transaction of the change they report.

The decisions (when a circuit opens, when it probes, when it closes) are the engine's
(:mod:`callgate.engine.health`); this part stores them. Mixed into
:class:`~callgate.store.sql.SQLStore`.
"""

from __future__ import annotations

from collections.abc import Sequence

from callgate.domain import Decision, Status, from_ts, iso
from callgate.store.base import Circuit
from callgate.store.sql_outbox import add_system_webhook
from callgate.store.sql_tx import SQLParts, move_matching

#: the held jobs of ``kinds`` waiting for their provider
WAITING_SQL = "status = 'held' AND reason = 'provider_unavailable' AND kind IN ({kinds})"


def _kinds(kinds: Sequence[str]) -> str:
    return ", ".join(f"'{k}'" for k in sorted(kinds))  # Kind values: no quoting needed


CIRCUIT_COLUMNS = "name, open, fault, detail, opened_at, probe_at, probes, probe_job, changed_at"


class SQLCircuits(SQLParts):
    """Mixed into :class:`~callgate.store.sql.SQLStore`."""

    def circuits(self) -> list[Circuit]:
        """Every provider's stored circuit (a provider that never failed has none)."""
        rows = self._read(f"SELECT {CIRCUIT_COLUMNS} FROM provider_circuits ORDER BY name")
        return [
            Circuit(r[0], bool(r[1]), r[2], r[3], r[4], r[5], int(r[6]), r[7], r[8]) for r in rows
        ]

    def open_circuit(
        self,
        name: str,
        now: float,
        *,
        fault: str,
        detail: str,
        probe_at: float,
        kinds: Sequence[str],
    ) -> bool:
        """Open ``name``'s circuit; True if it was closed (then ``provider.down`` is
        written with the change)."""
        with self._write() as c:
            c.execute(
                "INSERT INTO provider_circuits (name, open, changed_at) VALUES (?, 0, ?) "
                "ON CONFLICT DO NOTHING",
                (name, now),
            )
            row = c.execute(
                f"SELECT open FROM provider_circuits WHERE name = ?{self._locking()}", (name,)
            ).fetchone()
            if row[0]:
                return False
            c.execute(
                "UPDATE provider_circuits SET open = 1, fault = ?, detail = ?, opened_at = ?, "
                "probe_at = ?, probes = 0, probe_job = NULL, changed_at = ? WHERE name = ?",
                (fault, detail, now, probe_at, now, name),
            )
            data = {"provider": name, "kinds": sorted(kinds), "fault": fault, "detail": detail}
            add_system_webhook(c, "provider.down", data | {"at": iso(from_ts(now))}, now)
            return True

    def take_probe(self, name: str, job_id: int, now: float, next_probe_at: float) -> bool:
        """Let ``job_id`` be the probe of an open circuit whose probe is due; the next
        probe may go at ``next_probe_at`` (if this one never reports back, say)."""
        with self._write() as c:
            cur = c.execute(
                "UPDATE provider_circuits SET probe_job = ?, probe_at = ?, changed_at = ? "
                "WHERE name = ? AND open = 1 AND probe_at <= ?",
                (job_id, next_probe_at, now, name, now),
            )
            return int(cur.rowcount) == 1

    def probe_failed(self, name: str, job_id: int, now: float, next_probe_at: float) -> None:
        """The probe ``job_id`` failed alike: the circuit stays open, probes back off."""
        with self._write() as c:
            c.execute(
                "UPDATE provider_circuits SET probes = probes + 1, probe_job = NULL, "
                "probe_at = ?, changed_at = ? WHERE name = ? AND open = 1 AND probe_job = ?",
                (next_probe_at, now, name, job_id),
            )

    def probe_now(self, names: Sequence[str], now: float) -> int:
        """Make the next probe of these open circuits due now (a restart may have fixed
        the credentials); how many there were."""
        if not names:
            return 0
        with self._write() as c:
            marks = ", ".join("?" * len(names))
            cur = c.execute(
                f"UPDATE provider_circuits SET probe_at = ?, probe_job = NULL "
                f"WHERE open = 1 AND name IN ({marks})",
                (now, *names),
            )
            return int(cur.rowcount)

    def close_circuit(self, name: str, now: float, *, kinds: Sequence[str], detail: str) -> bool:
        """The provider answered again: close its circuit; True if it was open (then
        ``provider.up`` is written with the change)."""
        with self._write() as c:
            row = c.execute(
                f"SELECT open, opened_at FROM provider_circuits WHERE name = ?{self._locking()}",
                (name,),
            ).fetchone()
            if row is None or not row[0]:
                return False
            c.execute(
                "UPDATE provider_circuits SET open = 0, probe_job = NULL, changed_at = ? "
                "WHERE name = ?",
                (now, name),
            )
            data = {"provider": name, "kinds": sorted(kinds), "detail": detail}
            down = None if row[1] is None else round(now - float(row[1]), 3)
            add_system_webhook(
                c, "provider.up", data | {"down_seconds": down, "at": iso(from_ts(now))}, now
            )
            return True

    def hold_for_provider(self, kinds: Sequence[str], decision: Decision, now: float) -> int:
        """Hold the queued jobs of ``kinds`` (their provider is down): they wait, and use
        no attempt, until it answers again."""
        where = f"status IN ('queued', 'retrying') AND kind IN ({_kinds(kinds)})"
        return len(move_matching(self, where, (), now, decision))

    def release_for_provider(
        self, kinds: Sequence[str], now: float, *, limit: int | None = None
    ) -> int:
        """Queue again the jobs of ``kinds`` that wait for their provider, oldest first (a
        retry delay still counts: ``run_at`` is kept); ``limit``: one, for a probe."""
        where = WAITING_SQL.format(kinds=_kinds(kinds))
        released = Decision(Status.QUEUED, "provider_available", "the provider answers again")
        return len(move_matching(self, where, (), now, released, limit=limit))

    def waiting_for_provider(self, kinds: Sequence[str]) -> int:
        """How many jobs of ``kinds`` wait for their provider."""
        where = WAITING_SQL.format(kinds=_kinds(kinds))
        return int(self._read(f"SELECT count(*) FROM jobs WHERE {where}")[0][0])


__all__ = ["Circuit", "SQLCircuits"]
