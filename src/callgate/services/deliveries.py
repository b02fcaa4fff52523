"""Webhook deliveries (the outbox's side a person sees) and the signing secrets."""

from __future__ import annotations

import builtins

from callgate.config import Settings
from callgate.domain import Delivery
from callgate.services.base import Service
from callgate.store.parts import DeliveriesStore


class DeliveriesService(Service[DeliveriesStore]):
    def list(
        self,
        *,
        status: str | None = None,
        job_id: int | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> builtins.list[Delivery]:
        """Deliveries, newest first (``status="failed"``: the dead letters)."""
        return self._store.list_deliveries(
            status=status, job_id=job_id, limit=limit, before_id=before_id
        )

    def get(self, delivery_id: int) -> Delivery | None:
        return self._store.delivery(delivery_id)

    def replay(self, *, delivery_id: int | None = None, since: float | None = None) -> int:
        """Send again one delivery, or every failed or stopped one created since
        ``since``; how many (0: the one is still pending)."""
        if delivery_id is not None:
            n = self._store.replay_deliveries(self._clock.now(), delivery_id=delivery_id)
        else:
            n = self._store.replay_deliveries(self._clock.now(), since=since)
        self._changed()
        return n

    def secrets(self, settings: Settings) -> builtins.list[str]:
        """The active signing secrets (one is generated if none is configured)."""
        from callgate.webhooks.sender import active_secrets

        return active_secrets(settings, self._store, self._clock.now())
