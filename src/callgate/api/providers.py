"""Provider status callbacks: ``POST /provider/twilio/status``, ``/provider/signalwire/status``
and ``/provider/telnyx/events``.

No API key here: each vendor authenticates by its signature (see
:mod:`callgate.providers.callbacks`). A verified status goes to
``gateway.provider_status(provider, ref, result)``; a forged, tampered or replayed one is
answered 403 (``forbidden``) and goes nowhere. The URL a signature covers is the one
the vendor called: ``CALLGATE_PUBLIC_URL`` + path (+ query) when set (behind a proxy),
else the request's own URL.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any

from fastapi import APIRouter, Request, Response

from callgate.api.errors import error_response
from callgate.domain import AttemptResult
from callgate.providers.callbacks import (
    CallbackRejected,
    StatusUpdate,
    parse_signalwire_status,
    parse_telnyx_event,
    parse_twilio_status,
)

log = logging.getLogger("callgate.api.providers")

router = APIRouter(tags=["provider callbacks"], include_in_schema=False)


def signed_url(request: Request) -> str:
    """The URL the provider called, as it signed it."""
    public = getattr(request.app.state.gateway.settings, "public_url", None)
    if not public:
        return str(request.url)
    url = public.rstrip("/") + request.url.path
    return f"{url}?{request.url.query}" if request.url.query else url


def _secret(settings: Any, *names: str) -> str | None:
    for name in names:
        value = getattr(settings, name, None)
        if value:
            return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)
    return None


def _refused(provider: str, exc: CallbackRejected) -> Response:
    log.warning("refused a %s status callback: %s", provider, exc.message)
    return error_response(exc.status, exc.code, exc.message, exc.field)


def _not_configured(provider: str, setting: str, header: str) -> Response:
    message = f"{provider} callbacks cannot be verified: CALLGATE_{setting.upper()} is not set"
    log.warning("refused a %s status callback: %s", provider, message)
    return error_response(403, "forbidden", message, header)


async def _hand_over(request: Request, provider: str, update: StatusUpdate) -> None:
    result: AttemptResult = update.result
    done = request.app.state.gateway.provider_status(provider, update.ref, result)
    if inspect.isawaitable(done):
        await done


@router.post("/provider/twilio/status", status_code=204)
async def twilio_status(request: Request) -> Response:
    """A Twilio Message or Call status callback (``X-Twilio-Signature``)."""
    settings = request.app.state.gateway.settings
    token = _secret(settings, "twilio_auth_token")
    if token is None:
        return _not_configured("twilio", "twilio_auth_token", "x-twilio-signature")
    try:
        update = parse_twilio_status(
            signed_url(request),
            request.headers,
            await request.body(),
            auth_token=token,
            accept_sent=bool(getattr(settings, "twilio_accept_sent", False)),
        )
    except CallbackRejected as exc:
        return _refused("twilio", exc)
    await _hand_over(request, "twilio", update)
    return Response(status_code=204)


@router.post("/provider/signalwire/status", status_code=204)
async def signalwire_status(request: Request) -> Response:
    """A SignalWire Fax, Message or Call status callback (signed with the Signing Key;
    the API token is tried when no signing key is configured)."""
    settings = request.app.state.gateway.settings
    key = _secret(settings, "signalwire_signing_key", "signalwire_api_token")
    if key is None:
        return _not_configured("signalwire", "signalwire_signing_key", "x-signalwire-signature")
    try:
        update = parse_signalwire_status(
            signed_url(request),
            request.headers,
            await request.body(),
            signing_key=key,
            accept_sent=bool(getattr(settings, "twilio_accept_sent", False)),
        )
    except CallbackRejected as exc:
        return _refused("signalwire", exc)
    await _hand_over(request, "signalwire", update)
    return Response(status_code=204)


@router.post("/provider/telnyx/events")
async def telnyx_events(request: Request) -> Response:
    """A Telnyx fax webhook (``telnyx-signature-ed25519``, ``telnyx-timestamp``)."""
    gateway = request.app.state.gateway
    public_key = getattr(gateway.settings, "telnyx_public_key", None)
    if not public_key:
        return _not_configured("telnyx", "telnyx_public_key", "telnyx-signature-ed25519")
    clock = getattr(gateway, "clock", None)
    try:
        update = parse_telnyx_event(
            request.headers,
            await request.body(),
            public_key=public_key,
            now=clock.now() if clock is not None else time.time(),
            tolerance=float(getattr(gateway.settings, "telnyx_webhook_tolerance", 300.0)),
        )
    except CallbackRejected as exc:
        return _refused("telnyx", exc)
    await _hand_over(request, "telnyx", update)
    return Response(status_code=200, content=b"{}", media_type="application/json")
