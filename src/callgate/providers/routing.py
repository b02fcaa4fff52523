"""Which provider sends each kind of job: the per-kind router and its construction.

:func:`build_provider` reads the ``CALLGATE_PROVIDER_<KIND>`` settings and the vendors'
credentials and returns a :class:`RoutingProvider` that sends each job through the
provider configured for its kind. Without a choice, every kind goes to the simulator,
except in ``production``, where a vendor whose credentials are set is used.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from pydantic import SecretStr

from callgate.clock import Clock
from callgate.domain import AttemptResult, Job, Kind
from callgate.exceptions import ConfigurationError
from callgate.providers.base import (
    CannotReconcile,
    Found,
    Provider,
    Reconciling,
    StatusListener,
)

if TYPE_CHECKING:
    from callgate.config import Settings

log = logging.getLogger("callgate.providers")

PROVIDERS = ("simulator", "twilio", "signalwire", "telnyx")
#: the kinds each provider can send
CAPABLE: Mapping[str, frozenset[Kind]] = {
    "simulator": frozenset(Kind),
    "twilio": frozenset({Kind.SMS, Kind.CALL, Kind.REQUEST}),
    "signalwire": frozenset({Kind.FAX, Kind.SMS, Kind.CALL}),
    "telnyx": frozenset({Kind.FAX}),
}
#: in production without an explicit choice: the first vendor whose credentials are set
PREFERENCE: Mapping[Kind, tuple[str, ...]] = {
    Kind.FAX: ("telnyx", "signalwire"),
    Kind.SMS: ("twilio", "signalwire"),
    Kind.CALL: ("twilio", "signalwire"),
    Kind.REQUEST: ("twilio",),
}
#: settings a provider cannot work without (``from`` only for the kinds that send)
CREDENTIALS: Mapping[str, tuple[str, ...]] = {
    "simulator": (),
    "twilio": ("twilio_account_sid", "twilio_auth_token"),
    "signalwire": ("signalwire_project_id", "signalwire_api_token", "signalwire_space_url"),
    "telnyx": ("telnyx_api_key", "telnyx_connection_id"),
}
SENDER: Mapping[str, str] = {
    "twilio": "twilio_from",
    "signalwire": "signalwire_from",
    "telnyx": "telnyx_from",
}
#: where each vendor posts its status callbacks (under CALLGATE_PUBLIC_URL)
CALLBACK_PATHS: Mapping[str, str] = {
    "twilio": "/provider/twilio/status",
    "signalwire": "/provider/signalwire/status",
    "telnyx": "/provider/telnyx/events",
}


class RoutingProvider:
    """A Provider that sends each job through the provider configured for its kind."""

    name = "routing"

    def __init__(self, routes: Mapping[Kind, Provider]) -> None:
        missing = set(Kind) - set(routes)
        if missing:
            raise ValueError(f"no provider for {sorted(missing)}")
        self.routes = dict(routes)
        self.by_name: dict[str, Provider] = {p.name: p for p in self.routes.values()}

    def __repr__(self) -> str:
        return "RoutingProvider(" + ", ".join(f"{k}={p!r}" for k, p in self.routes.items()) + ")"

    def provider_for(self, kind: Kind | str) -> Provider:
        return self.routes[Kind(kind)]

    async def send(self, job: Job) -> AttemptResult:
        return await self.routes[job.kind].send(job)

    async def status(self, job: Job, ref: str) -> AttemptResult:
        return await self.routes[job.kind].status(job, ref)

    async def find(self, job: Job, since: float, until: float) -> list[Found]:
        """The records of ``job``'s provider for its number (see :class:`Reconciling`)."""
        provider = self.routes[job.kind]
        if not isinstance(provider, Reconciling):
            raise CannotReconcile(f"{provider.name} cannot list {job.kind} jobs")
        return await provider.find(job, since, until)

    def push(self, provider: str, ref: str, result: AttemptResult) -> bool:
        """A verified status callback from ``provider`` about ``ref``: kept for the
        tracker's next poll, which it wakes at once. False if no such provider is in
        use here (the callback is then ignored; polling covers it)."""
        target = self.by_name.get(provider)
        push: Callable[[str, AttemptResult], None] | None = getattr(target, "push", None)
        if push is None:
            return False
        push(ref, result)
        return True

    def set_listener(self, listener: StatusListener | None) -> None:
        for provider in self.by_name.values():
            provider.set_listener(listener)

    async def aclose(self) -> None:
        for provider in self.by_name.values():
            await provider.aclose()


def resolve(settings: Settings, kind: Kind) -> str:
    """The provider for ``kind``: the explicit setting, else the simulator (outside
    production), else the first vendor of :data:`PREFERENCE` with credentials."""
    explicit: str | None = getattr(settings, f"provider_{kind}")
    if explicit:
        return explicit
    if settings.environment == "production":
        for name in PREFERENCE[kind]:
            if not _missing(settings, CREDENTIALS[name]):
                return name
        log.warning(
            "production sends %s jobs to the simulator: set CALLGATE_PROVIDER_%s",
            kind,
            str(kind).upper(),
        )
    return "simulator"


def callback_url(settings: Settings, provider: str) -> str | None:
    """The status-callback URL to give ``provider``, under ``CALLGATE_PUBLIC_URL``."""
    if not settings.public_url:
        return None
    return settings.public_url.rstrip("/") + CALLBACK_PATHS[provider]


def _missing(settings: Settings, names: tuple[str, ...], kind: Kind | None = None) -> list[str]:
    missing = [n for n in names if not getattr(settings, n)]
    # Twilio: an API key and its secret stand in for the auth token, and for SMS a
    # Messaging Service for the sender number
    if settings.twilio_api_key and settings.twilio_api_secret and "twilio_auth_token" in missing:
        missing.remove("twilio_auth_token")
    if kind is Kind.SMS and settings.twilio_messaging_service_sid and "twilio_from" in missing:
        missing.remove("twilio_from")
    return missing


def _text(settings: Settings, name: str) -> str:
    """A required setting's value (a secret's too), or ConfigurationError."""
    value = getattr(settings, name)
    if not value:
        raise ConfigurationError(f"CALLGATE_{name.upper()} is not set", field=name)
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def check(settings: Settings, choices: Mapping[Kind, str]) -> None:
    """Raise ConfigurationError for a provider asked to send what it cannot, or without
    the settings it needs."""
    for kind, name in choices.items():
        if kind not in CAPABLE[name]:
            raise ConfigurationError(
                f"CALLGATE_PROVIDER_{str(kind).upper()} is {name}, which sends no {kind}",
                field=f"provider_{kind}",
            )
        needed = CREDENTIALS[name] + (
            (SENDER[name],) if name in SENDER and kind is not Kind.REQUEST else ()
        )
        for setting in _missing(settings, needed, kind):
            raise ConfigurationError(
                f"{kind} jobs go to {name}, but CALLGATE_{setting.upper()} is not set",
                field=setting,
            )


def build_provider(
    settings: Settings, clock: Clock, *, rng: random.Random | None = None
) -> RoutingProvider:
    """The router for these settings (one instance per provider, shared by its kinds)."""
    choices = {kind: resolve(settings, kind) for kind in Kind}
    check(settings, choices)
    made: dict[str, Provider] = {}
    for name in dict.fromkeys(choices.values()):
        made[name] = FACTORIES[name](settings, clock, rng)
    return RoutingProvider({kind: made[name] for kind, name in choices.items()})


def _simulator(settings: Settings, clock: Clock, rng: random.Random | None) -> Provider:
    from callgate.providers.simulator import Simulator

    return Simulator(
        clock,
        latency=settings.simulator_latency,
        latency_jitter=settings.simulator_latency_jitter,
        fax_duration=settings.simulator_fax_duration,
        log_path=settings.simulator_log,
        mix=settings.simulator_mix,
        rng=rng or random.Random(settings.simulator_seed),
    )


def _twilio(settings: Settings, clock: Clock, rng: random.Random | None) -> Provider:
    from callgate.providers.twilio import TwilioProvider

    key = settings.twilio_api_key and settings.twilio_api_secret
    return TwilioProvider(
        account_sid=_text(settings, "twilio_account_sid"),
        auth_token=None if key else _text(settings, "twilio_auth_token"),
        api_key=settings.twilio_api_key if key else None,
        api_secret=_text(settings, "twilio_api_secret") if key else None,
        from_number=settings.twilio_from,
        messaging_service_sid=settings.twilio_messaging_service_sid,
        base_url=settings.twilio_base_url,
        status_callback=callback_url(settings, "twilio"),
        accept_sent=settings.twilio_accept_sent,
        timeout=settings.provider_timeout,
        clock=clock,
    )


def _signalwire(settings: Settings, clock: Clock, rng: random.Random | None) -> Provider:
    from callgate.providers.signalwire import SignalWireProvider

    return SignalWireProvider(
        project_id=_text(settings, "signalwire_project_id"),
        api_token=_text(settings, "signalwire_api_token"),
        space_url=_text(settings, "signalwire_space_url"),
        from_number=settings.signalwire_from,
        status_callback=callback_url(settings, "signalwire"),
        accept_sent=settings.twilio_accept_sent,
        timeout=settings.provider_timeout,
        clock=clock,
    )


def _telnyx(settings: Settings, clock: Clock, rng: random.Random | None) -> Provider:
    from callgate.providers.telnyx import TelnyxProvider

    if settings.public_url and not settings.telnyx_public_key:
        log.warning("CALLGATE_TELNYX_PUBLIC_KEY is not set: Telnyx webhooks will be refused")
    return TelnyxProvider(
        api_key=_text(settings, "telnyx_api_key"),
        connection_id=_text(settings, "telnyx_connection_id"),
        from_number=settings.telnyx_from,
        base_url=settings.telnyx_base_url,
        webhook_url=callback_url(settings, "telnyx"),
        timeout=settings.provider_timeout,
        clock=clock,
    )


FACTORIES: Mapping[str, Callable[[Settings, Clock, random.Random | None], Provider]] = {
    "simulator": _simulator,
    "twilio": _twilio,
    "signalwire": _signalwire,
    "telnyx": _telnyx,
}
