"""API keys and webhook signing secrets. Mixed into :class:`~callgate.store.sql.SQLStore`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from callgate.domain import (
    ApiKey,
    from_ts,
    to_datetime,
)
from callgate.exceptions import Unauthorized
from callgate.store.sql_tx import Conn, SQLParts


def key_is_live(c: Conn, scope: str) -> None:
    """Refuse a write for an API key revoked meanwhile, in the write's own transaction:
    the API's key look-ups are cached for a moment (see
    :meth:`callgate.gateway.Gateway.authenticate`), a revocation stops the key's
    submits at once. A scope that names no key (a script's) is not checked."""
    row = c.execute("SELECT revoked_at FROM api_keys WHERE id = ?", (scope,)).fetchone()
    if row is not None and row[0] is not None:
        raise Unauthorized("unknown or revoked API key")


class SQLKeys(SQLParts):
    """Mixed into :class:`~callgate.store.sql.SQLStore`."""

    # -- API keys and webhook secrets ---------------------------------------------------

    def add_api_key(
        self, key_id: str, name: str, token_hash: str, prefix: str, now: float
    ) -> ApiKey:
        with self._write() as c:
            c.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL)",
                (key_id, name, token_hash, prefix, now),
            )
        return ApiKey(key_id, name, prefix, from_ts(now))

    def api_key_by_hash(self, token_hash: str) -> ApiKey | None:
        rows = self._read(
            "SELECT id, name, prefix, created_at, revoked_at FROM api_keys "
            "WHERE token_hash = ? AND revoked_at IS NULL",
            (token_hash,),
        )
        return _api_key(rows[0]) if rows else None

    def api_keys(self) -> list[ApiKey]:
        rows = self._read(
            "SELECT id, name, prefix, created_at, revoked_at FROM api_keys ORDER BY created_at"
        )
        return [_api_key(r) for r in rows]

    def revoke_api_key(self, key_id: str, now: float) -> bool:
        with self._write() as c:
            cur = c.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now, key_id),
            )
            return int(cur.rowcount) == 1

    def webhook_secrets(self) -> list[str]:
        return [r[0] for r in self._read("SELECT secret FROM webhook_secrets ORDER BY id")]

    def add_webhook_secret(self, secret: str, now: float) -> None:
        with self._write() as c:
            c.execute(
                "INSERT INTO webhook_secrets (secret, created_at) VALUES (?, ?)", (secret, now)
            )


def _api_key(row: Sequence[Any]) -> ApiKey:
    return ApiKey(row[0], row[1], row[2], from_ts(row[3]), to_datetime(row[4]))


#: (if an attempt may have reached the provider, else if nothing was sent)
