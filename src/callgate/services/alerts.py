"""Alerts (issue 17): the open ones and their history for a person (``callgate alerts``,
``GET /v1/alerts``, the dashboard's banner), and the monitor that raises and resolves
them (a background task of ``serve`` and ``worker``: see
:mod:`callgate.engine.alerts`)."""

from __future__ import annotations

import builtins
from collections.abc import Callable

from callgate.clock import Clock
from callgate.config import Settings
from callgate.domain import Alert, Observation
from callgate.engine.alerts import RULES, AlertMonitor, AlertPolicy
from callgate.engine.audit import Redactor
from callgate.services.base import Service
from callgate.store.offload import StoreCalls
from callgate.store.parts_observe import ObservePart


def alert_policy(settings: Settings) -> AlertPolicy:
    """The rules' thresholds the settings describe (``CALLGATE_ALERT_*``)."""
    return AlertPolicy(
        queued_minutes=settings.alert_queued_minutes,
        heartbeat_seconds=settings.alert_heartbeat_seconds,
        beat_interval=settings.lease / 3,
        dead_letters=settings.alert_dead_letters,
        webhook_failing_minutes=settings.alert_webhook_failing_minutes,
        batch_error_percent=settings.alert_batch_error_percent,
        batch_min_rows=settings.alert_batch_min_rows,
    )


class AlertsService(Service[ObservePart]):
    rules = RULES

    def __init__(
        self,
        store: ObservePart,
        clock: Clock,
        changed: Callable[[], None],
        *,
        policy: AlertPolicy,
        redactor: Redactor | None = None,
    ) -> None:
        super().__init__(store, clock, changed)
        self.policy, self._redactor = policy, redactor or Redactor()

    def list(
        self, *, open_only: bool = False, limit: int = 100, before_id: int | None = None
    ) -> builtins.list[Alert]:
        """Open alerts (``open_only``, newest raised first), or every alert raised,
        newest first, ``before_id`` for the next page."""
        return self._store.alerts(open_only=open_only, limit=limit, before_id=before_id)

    def open(self) -> builtins.list[Alert]:
        """The alerts open now (what the dashboard's banner shows)."""
        return self.list(open_only=True, limit=1000)

    def history(self, *, limit: int = 100, before_id: int | None = None) -> builtins.list[Alert]:
        """Every alert raised, open or resolved, newest first."""
        return self.list(limit=limit, before_id=before_id)

    def observe(self) -> Observation:
        """The database's state now (what the gauges and the rules read)."""
        return self._store.observe(
            self._clock.now(), dead_letter_window=self.policy.dead_letter_window
        )

    def monitor(self, db: StoreCalls, interval: float) -> AlertMonitor:
        """A monitor that evaluates the rules every ``interval`` seconds."""
        return AlertMonitor(
            self._store,
            clock=self._clock,
            policy=self.policy,
            interval=interval,
            db=db,
            redactor=self._redactor,
            changed=self._changed,
        )

    def check(self) -> tuple[builtins.list[Alert], builtins.list[Alert]]:
        """Evaluate the rules now (blocks on the store): the alerts raised, those resolved."""
        return self.monitor(StoreCalls(False), 0).check()
