"""API keys and webhook signing secrets. Mixed into :class:`~callgate.store.sql.SQLStore`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from callgate.domain import (
    ApiKey,
    from_ts,
    to_datetime,
)
from callgate.store.sql_tx import SQLParts


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
