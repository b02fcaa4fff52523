"""How the settings become the engine's parts: the meter, the guardrails, a worker's
configuration (the :class:`~callgate.gateway.Gateway` wires them)."""

from __future__ import annotations

from callgate.config import Settings
from callgate.domain import Kind
from callgate.engine.guardrails import (
    SIMULATOR_NUMBERS,
    Allowlist,
    BreakerPolicy,
    Cap,
    Guardrails,
    QuietWindow,
)
from callgate.engine.meter import GCRA
from callgate.engine.reconcile import ReconcileConfig
from callgate.engine.worker import BatchThrottle, WorkerConfig


def make_meter(settings: Settings) -> GCRA:
    return GCRA(
        rate=settings.rate or None,
        burst=settings.burst,
        decrease=settings.aimd_decrease,
        increase=settings.aimd_increase,
    )


def make_guardrails(settings: Settings) -> Guardrails:
    """The guardrails the settings describe (see docs/guardrails.md)."""
    entries = set(settings.allowlist)
    if settings.environment == "development":
        entries.add(SIMULATOR_NUMBERS)
    caps = {k: Cap.parse(v) for k in Kind if (v := getattr(settings.caps, str(k)))}
    same = {k: Cap.parse(v) for k in Kind if (v := getattr(settings.caps, f"{k}_duplicates"))}
    quiet = {k: QuietWindow.parse(v) for k in Kind if (v := getattr(settings.quiet_hours, str(k)))}
    return Guardrails(
        environment=settings.environment,
        allowlist=Allowlist(frozenset(entries)),
        caps=caps,
        same=same,
        cap_blocks=settings.caps.over == "block",
        quiet=quiet,
        default_timezone=settings.default_timezone,
        breaker=BreakerPolicy(**settings.breaker.model_dump(), account_rate=settings.rate or None),
    )


def worker_config(settings: Settings) -> WorkerConfig:
    return WorkerConfig(
        lease=settings.lease,
        max_concurrency=settings.max_concurrency,
        claim_batch=settings.claim_batch,
        idle_poll=settings.idle_poll,
        sweep_interval=settings.sweep_interval,
        shutdown_grace=settings.shutdown_grace,
        poll_initial=settings.poll_initial,
        poll_max=settings.poll_max,
        track_timeout=settings.track_timeout,
        reconcile=ReconcileConfig(
            interval=settings.reconcile_interval,
            pad=settings.reconcile_pad,
            retry_delay=settings.reconcile_retry_delay,
            give_up_after=settings.reconcile_give_up,
        )
        if settings.reconcile_interval > 0
        else None,
        batch_throttle=BatchThrottle(
            after=settings.batch_rules.throttle_after,
            window=settings.batch_rules.throttle_window,
            factor=settings.batch_rules.throttle_factor,
        )
        if settings.batch_rules.lower_rate_on_429
        else None,
    )
