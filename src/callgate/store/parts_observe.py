"""The store's part for observing the gateway: the metrics' gauges, the alerts' facts and
their state (see :mod:`callgate.store.sql_observe`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from callgate.domain import Alert, Observation


class ObservePart(Protocol):
    """What every process reports alike: read from the database, by indexed queries."""

    def observe(self, now: float, *, dead_letter_window: float = 3600.0) -> Observation: ...

    def prune_workers(self, now: float) -> int:
        """Forget the heartbeat rows of workers gone a day without releasing (killed)."""
        ...

    def raise_alert(
        self, rule: str, subject: str, message: str, detail: Mapping[str, Any], now: float
    ) -> Alert | None:
        """Open an alert (and queue ``alert.raised``) unless it is open; None if it was."""
        ...

    def resolve_alert(self, alert_id: int, now: float) -> Alert | None:
        """Close an alert (and queue ``alert.resolved``); None if it was closed already."""
        ...

    def alerts(
        self, *, open_only: bool = False, limit: int = 100, before_id: int | None = None
    ) -> list[Alert]: ...
