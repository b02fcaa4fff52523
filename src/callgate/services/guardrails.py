"""The guardrails a person steers: the stored allowlist, suppressions, the audit log.
(The breaker and the providers' circuits are on the Gateway.)"""

from __future__ import annotations

from typing import Any

from callgate.domain import normalize_number
from callgate.exceptions import ValidationError
from callgate.services.base import Service
from callgate.store.parts import GuardrailsStore


def allowlist_entry(raw: str) -> str:
    """An allowlist entry as stored: a pattern (``+1202555*``) as given, else the number
    in E.164."""
    if any(ch in raw for ch in "*?["):
        if not raw.startswith("+"):
            raise ValidationError("a pattern starts with +, like +1202555*", field="number")
        return raw
    return normalize_number(raw, field="number")


class GuardrailsService(Service[GuardrailsStore]):
    # -- the allowlist
    def allowlist(self) -> list[dict[str, Any]]:
        return self._store.allowlist()

    def allow(self, entry: str, *, note: str | None = None) -> bool:
        """Add ``entry`` (see :func:`allowlist_entry`); False if it was there."""
        added = self._store.allowlist_add(entry, self._clock.now(), note=note)
        self._changed()  # held jobs to it may go now
        return added

    def allowed(self, entry: str) -> dict[str, Any]:
        """The stored entry ``entry``."""
        return next(e for e in self._store.allowlist() if e["number"] == entry)

    def disallow(self, entry: str) -> bool:
        return self._store.allowlist_remove(entry)

    # -- suppressions
    def suppressions(self, number: str | None = None) -> list[dict[str, Any]]:
        return self._store.suppressions(number)

    def suppress(
        self, number: str, kind: str | None, reason: str, *, detail: str | None = None
    ) -> bool:
        """Never contact ``number`` (for ``kind``, or ``all``); False if it was already."""
        return self._store.suppress(number, kind, reason, self._clock.now(), detail=detail)

    def suppression(self, number: str, kind: str | None) -> dict[str, Any]:
        """The stored suppression of ``number`` for ``kind`` (``None``: every kind)."""
        return next(e for e in self._store.suppressions(number) if e["kind"] == kind)

    def unsuppress(self, number: str, kind: str | None = None) -> int:
        lifted = self._store.unsuppress(number, kind)
        self._changed()
        return lifted

    def inbound_sms(self, number: str, action: str | None, event: dict[str, Any]) -> None:
        """Record an inbound SMS (see :meth:`callgate.store.parts.GuardrailsPart.inbound_sms`)."""
        self._store.inbound_sms(number, action, event, self._clock.now())
        self._changed()

    # -- the audit log
    def audit_since(self, since: float, *, after_id: int = 0, limit: int = 1000) -> list[Any]:
        """Provider exchanges from ``since`` on, oldest first, after row ``after_id``."""
        return self._store.audit(since=since, after_id=after_id, limit=limit)

    def prune_audit(self, days: float) -> int:
        """Delete audit rows older than ``days``; how many."""
        return self._store.prune_audit(self._clock.now() - days * 86400)
