"""Alerts (issue 17): rules over one :class:`~callgate.domain.Observation` of the database,
evaluated now and then by every ``serve`` and ``worker`` process on the injected clock.

Each alert is about a rule and a subject (a provider, an endpoint, a batch; ``""`` for the
gateway as a whole). It raises once, when its rule starts to hold, and resolves once,
when it stops: the store keeps at most one open per rule and subject, so of several
processes evaluating alike one raises it (``alert.raised`` system webhook, an error log
line) and one resolves it (``alert.resolved``, an info line). Rules and their settings
(``CALLGATE_ALERT_*``) are in docs/operations.md#alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from callgate.clock import Clock
from callgate.domain import Alert, Observation
from callgate.engine.audit import Redactor
from callgate.exceptions import StoreError
from callgate.store.offload import StoreCalls
from callgate.store.parts_observe import ObservePart

log = logging.getLogger("callgate.alerts")

OLDEST_QUEUED = "oldest_queued"
NO_WORKER = "no_worker"
DEAD_LETTERS = "dead_letters"
PROVIDER_DOWN = "provider_down"
WEBHOOK_FAILING = "webhook_failing"
BATCH_ERRORS = "batch_errors"
RULES = (OLDEST_QUEUED, NO_WORKER, DEAD_LETTERS, PROVIDER_DOWN, WEBHOOK_FAILING, BATCH_ERRORS)
#: a batch's rows that count as errors, and those that count as done
BATCH_ERROR_STATUSES = ("failed", "blocked", "expired")
BATCH_DONE_STATUSES = ("delivered", *BATCH_ERROR_STATUSES)
#: seconds between prunings of the heartbeat rows of workers long gone
PRUNE_EVERY = 3600.0


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """The rules' thresholds (``CALLGATE_ALERT_*``)."""

    queued_minutes: float = 15.0
    heartbeat_seconds: float = 60.0
    #: how often workers beat (lease / 3): a heartbeat is late after two beats at least
    beat_interval: float = 10.0
    dead_letters: int = 10
    dead_letter_window: float = 3600.0
    webhook_failing_minutes: float = 60.0
    batch_error_percent: float = 10.0
    batch_min_rows: int = 20


@dataclass(frozen=True, slots=True)
class Firing:
    """A rule that holds now, about one subject."""

    rule: str
    subject: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.subject)


def evaluate(
    policy: AlertPolicy, seen: Observation, redactor: Redactor | None = None
) -> dict[tuple[str, str], Firing]:
    """The alerts that should be open given ``seen`` (a pure function)."""
    redactor = redactor or Redactor()
    found = [
        *_queue(policy, seen),
        *_dead_letters(policy, seen),
        *_providers(seen, redactor),
        *_endpoints(policy, seen, redactor),
        *_batches(policy, seen),
    ]
    return {f.key: f for f in found}


def _queue(policy: AlertPolicy, seen: Observation) -> list[Firing]:
    out = []
    # a job behind its number's fax in flight is serialised, not stuck: only a job whose
    # line is free and that no claim took counts (a day of faxes to one office is fine)
    stuck = seen.oldest_free_seconds
    limit = policy.queued_minutes * 60
    if seen.oldest_free is not None and stuck > limit:
        out.append(
            Firing(
                OLDEST_QUEUED,
                "",
                f"the oldest job due with a free line has waited {stuck / 60:.0f} min for a "
                f"worker (threshold {policy.queued_minutes:g} min)",
                {"value": round(stuck, 1), "threshold": limit},
            )
        )
    waited = seen.oldest_queued_seconds
    late_after = max(policy.heartbeat_seconds, 2 * policy.beat_interval)
    if seen.oldest_due is not None:
        silent = seen.now - seen.last_heartbeat if seen.last_heartbeat is not None else waited
        if silent > late_after:
            out.append(
                Firing(
                    NO_WORKER,
                    "",
                    f"jobs are waiting and no worker has sent a heartbeat for {silent:.0f} s",
                    {"value": round(silent, 1), "threshold": late_after},
                )
            )
    return out


def _dead_letters(policy: AlertPolicy, seen: Observation) -> list[Firing]:
    if seen.dead_letters <= policy.dead_letters:
        return []
    minutes = policy.dead_letter_window / 60
    return [
        Firing(
            DEAD_LETTERS,
            "",
            f"{seen.dead_letters} jobs failed for good within {minutes:g} min "
            f"(threshold {policy.dead_letters})",
            {"value": seen.dead_letters, "threshold": policy.dead_letters},
        )
    ]


def _providers(seen: Observation, redactor: Redactor) -> list[Firing]:
    return [
        Firing(
            PROVIDER_DOWN,
            name,
            f"provider {name} is down ({fault}); its jobs wait without using attempts",
            {"fault": fault, "detail": redactor.optional(detail)},  # what it said, redacted
        )
        for name, (fault, detail) in sorted(seen.providers_down.items())
    ]


def _endpoints(policy: AlertPolicy, seen: Observation, redactor: Redactor) -> list[Firing]:
    limit = policy.webhook_failing_minutes * 60
    out = []
    for url, since in sorted(seen.failing_endpoints.items()):
        failing = seen.now - since
        if failing > limit:
            shown = redactor.url(url)  # never a credential in an alert
            out.append(
                Firing(
                    WEBHOOK_FAILING,
                    shown,
                    f"webhook endpoint {shown} has been failing for {failing / 60:.0f} min",
                    {"value": round(failing, 1), "threshold": limit, "url": shown},
                )
            )
    return out


def _batches(policy: AlertPolicy, seen: Observation) -> list[Firing]:
    out = []
    for batch_id, counts in sorted(seen.batches.items()):
        done = sum(counts.get(s, 0) for s in BATCH_DONE_STATUSES)
        errors = sum(counts.get(s, 0) for s in BATCH_ERROR_STATUSES)
        if done < policy.batch_min_rows:
            continue
        percent = 100.0 * errors / done
        if percent > policy.batch_error_percent:
            out.append(
                Firing(
                    BATCH_ERRORS,
                    str(batch_id),
                    f"batch {batch_id}: {percent:.0f} % of its finished rows failed "
                    f"({errors} of {done}; threshold {policy.batch_error_percent:g} %)",
                    {
                        "batch_id": batch_id,
                        "value": round(percent, 1),
                        "threshold": policy.batch_error_percent,
                        "errors": errors,
                        "done": done,
                    },
                )
            )
    return out


class AlertMonitor:
    """Evaluates the rules every ``interval`` seconds and raises or resolves the alerts
    that changed; ``changed`` is called after either (to wake the webhook sender)."""

    def __init__(
        self,
        store: ObservePart,
        *,
        clock: Clock,
        policy: AlertPolicy,
        interval: float,
        db: StoreCalls,
        redactor: Redactor | None = None,
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.store, self.clock, self.policy, self.interval = store, clock, policy, interval
        self._db, self._redactor, self._changed = db, redactor or Redactor(), changed
        self._stopping: asyncio.Event | None = None
        self._pruned_at: float | None = None

    def __repr__(self) -> str:
        return f"AlertMonitor(every {self.interval:g} s)"

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    async def run(self) -> None:
        self._stopping = asyncio.Event()
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
            if self._stopping.is_set():
                break
            try:
                await self._db(self.check)
            except StoreError as exc:
                log.warning("alerts: could not evaluate the rules: %s", exc)

    def check(self) -> tuple[list[Alert], list[Alert]]:
        """Evaluate now (blocks on the store): the alerts raised and those resolved."""
        now = self.clock.now()
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            self.store.prune_workers(now)  # rows of workers killed a day ago
            self._pruned_at = now
        seen = self.store.observe(now, dead_letter_window=self.policy.dead_letter_window)
        firing = evaluate(self.policy, seen, self._redactor)
        open_now = {(a.rule, a.subject): a for a in self.store.alerts(open_only=True, limit=1000)}
        raised = self._raise([f for key, f in firing.items() if key not in open_now], now)
        resolved = self._resolve([a for key, a in open_now.items() if key not in firing], now)
        if raised or resolved:
            self._changed()
        return raised, resolved

    def _raise(self, firing: Sequence[Firing], now: float) -> list[Alert]:
        out = []
        for f in firing:
            alert = self.store.raise_alert(f.rule, f.subject, f.message, f.detail, now)
            if alert is not None:  # else another process raised it first
                log.error(
                    "alert raised: %s", f.message, extra={"alert": f.rule, "subject": f.subject}
                )
                out.append(alert)
        return out

    def _resolve(self, alerts: Sequence[Alert], now: float) -> list[Alert]:
        out = []
        for a in alerts:
            if a.rule not in RULES:
                continue  # a rule of a newer version: its own processes resolve it
            done = self.store.resolve_alert(a.id, now)
            if done is not None:
                log.info(
                    "alert resolved: %s", a.message, extra={"alert": a.rule, "subject": a.subject}
                )
                out.append(done)
        return out


__all__ = ["RULES", "AlertMonitor", "AlertPolicy", "Firing", "evaluate"]
