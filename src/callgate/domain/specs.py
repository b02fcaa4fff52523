"""Turning a request into a :class:`~callgate.domain.jobs.JobSpec`: numbers in E.164, URLs,
rates, labels, each kind's payload, the number a provider request contacts.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

from callgate.domain.jobs import MAX_TIME, MIN_TIME, JobSpec, Kind
from callgate.domain.params import check_params
from callgate.exceptions import ValidationError

# -- construction and validation -------------------------------------------------------


#: what a phone number may be written with: an ASCII ``+`` and ASCII digits, and the
#: separators people type between them (space, ``-``, ``.``, parentheses). Letters
#: (``+1500555ABCD``), extensions (``;ext=12``, ``x12``), other scripts' digits and
#: anything else are refused: the digits called are exactly the digits written.
NUMBER_PATTERN = r"^\+?[0-9 ().\-]{1,40}$"
_NUMBER_TEXT = re.compile(r"\+?[0-9 ().\-]{1,40}", re.ASCII)
_SEPARATORS = str.maketrans("", "", " ().-")
#: ids are 64-bit signed integers in both stores: anything past this cannot exist
MAX_ID = 2**63 - 1
#: the provider APIs the built-in adapters call for ``request`` jobs (docs/providers.md):
#: the HTTP API takes these; in process, any plain name (an adapter of your own's)
REQUEST_APIS = ("lookup", "verify", "studio", "raw")
_API_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}", re.ASCII)
#: the most attempts a job may be given
MAX_ATTEMPTS = 100
#: the calls per second a batch (or the meter) may be given: finite, within these bounds
MIN_RATE = 0.001
MAX_RATE = 10_000.0


def normalize_number(raw: object, *, field: str = "to", default_region: str | None = None) -> str:
    """Parse a phone number and return it in E.164; raise ``invalid_phone_number`` if bad.

    The one rule for every number from outside (API, CLI, batch rows): ``+`` and ASCII
    digits (separators allowed, see :data:`NUMBER_PATTERN`); without ``+`` only with a
    ``default_region``."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError("a phone number is required", field=field, code="missing_field")
    digits = raw.translate(_SEPARATORS)
    if not _NUMBER_TEXT.fullmatch(raw) or "+" in digits[1:] or not digits.lstrip("+"):
        raise ValidationError(
            f"{raw!r} is not a phone number in E.164 format, like +15551234567",
            field=field,
            code="invalid_phone_number",
        )
    return _e164(digits, field, default_region)


def validate_label(value: str, *, field: str = "name") -> str:
    """A name a person gives (a batch's, an API key's): 1-200 characters, not blank, no
    control characters; raise ``invalid_request`` otherwise."""
    if not value.strip() or len(value) > 200 or any(ord(ch) < 32 for ch in value):
        raise ValidationError(
            f"{field} must be 1-200 characters, not blank, without control characters",
            field=field,
        )
    return value


def validate_rate(raw: object, *, field: str = "rate") -> float:
    """A rate from outside (calls per second): a finite number from :data:`MIN_RATE` to
    :data:`MAX_RATE`; raise ``invalid_request`` (field ``rate``) otherwise (``inf``,
    ``1e400``, ``0``, ``nan``, ``1e-300`` ...)."""
    try:
        if isinstance(raw, bool):
            raise ValueError
        rate = float(raw) if isinstance(raw, int | float | str) else float(str(raw))
    except (ValueError, OverflowError):
        raise ValidationError(
            f"{field} must be a number of calls per second", field=field
        ) from None
    if not (math.isfinite(rate) and MIN_RATE <= rate <= MAX_RATE):
        raise ValidationError(
            f"{field} must be a finite number from {MIN_RATE:g} to {MAX_RATE:g} calls per second",
            field=field,
        )
    return rate


def usable_rate(rate: float | None) -> bool:
    """A stored rate the meter can run at (None: no rate of its own)."""
    return rate is None or (math.isfinite(rate) and MIN_RATE <= rate <= MAX_RATE)


@functools.lru_cache(maxsize=65536)
def _e164(raw: str, field: str, default_region: str | None) -> str:
    """Parsing is the costly part of a submit and destinations repeat: remember them
    (errors are not cached; they raise every time)."""
    try:
        parsed = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(
            f"{raw!r} is not a phone number in E.164 format, like +15551234567",
            field=field,
            code="invalid_phone_number",
        ) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationError(
            f"{raw!r} is not a valid phone number", field=field, code="invalid_phone_number"
        )
    e164: str = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return e164


def validate_url(raw: object, *, field: str) -> str:
    """Return ``raw`` if it is an absolute http(s) URL; raise ``invalid_url`` otherwise."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError(f"{field} is required", field=field, code="missing_field")
    try:
        parts = urlsplit(raw.strip())
        _ = parts.port  # raises ValueError for a port that is not a number in range
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise ValidationError(f"{raw!r} is not an http(s) URL", field=field, code="invalid_url")
    return raw.strip()


def _require_text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{field} is required", field=field, code="missing_field")
    return value


def _payload_for(kind: Kind, fields: Mapping[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if fields.get("from") is not None:
        payload["from"] = normalize_number(fields["from"], field="from")
    if kind is Kind.REQUEST:
        return _request_payload(payload, fields)
    params = fields.get("params") or {}
    given = params if isinstance(params, Mapping) else {}
    if kind is Kind.FAX:
        payload["media_url"] = validate_url(fields.get("media_url"), field="media_url")
        if params:
            raise ValidationError("a fax takes no Twilio parameters", field="params")
    elif kind is Kind.SMS:
        _sms_payload(payload, fields, template="ContentSid" in given)
    else:
        _call_payload(payload, fields, application="ApplicationSid" in given)
    if params:
        payload["params"] = check_params(kind, params)
    return payload


def _sms_payload(payload: dict[str, Any], fields: Mapping[str, Any], *, template: bool) -> None:
    if fields.get("body") is None and fields.get("media_url") is None and not template:
        raise ValidationError(
            "an SMS needs a body, a media_url or a ContentSid", field="body", code="missing_field"
        )
    if fields.get("body") is not None:
        payload["body"] = _require_text(fields["body"], "body")
    if fields.get("media_url") is not None:
        payload["media_url"] = validate_url(fields["media_url"], field="media_url")


def _call_payload(payload: dict[str, Any], fields: Mapping[str, Any], *, application: bool) -> None:
    twiml, url = fields.get("twiml"), fields.get("url")
    if [twiml is not None, url is not None, application].count(True) != 1:
        raise ValidationError(
            "a call needs exactly one of twiml, url or an ApplicationSid",
            field="twiml",
            code="missing_field",
        )
    if twiml is not None:
        payload["twiml"] = _require_text(twiml, "twiml")
    elif url is not None:
        payload["url"] = validate_url(url, field="url")


def _request_payload(payload: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    payload["api"] = _require_text(fields.get("api"), "api").strip().lower()
    if not _API_NAME.fullmatch(payload["api"]):
        raise ValidationError(
            f"api must be a name like {', '.join(REQUEST_APIS)}",
            field="api",
            code="invalid_api",
        )
    payload["method"] = _require_text(fields.get("method", "POST"), "method").upper()
    params = fields.get("params", {})
    if not isinstance(params, Mapping):
        raise ValidationError("params must be an object", field="params")
    payload["params"] = dict(params)
    return payload


#: where each kind of request names the number it is about (Twilio's parameter names)
REQUEST_NUMBER_FIELDS: Mapping[str, tuple[str, ...]] = {
    "lookup": ("PhoneNumber", "To"),
    "verify": ("To",),
    "studio": ("To",),
}
#: the only requests that contact nobody (a read): the others need a number to check
READS = frozenset({"lookup"})
#: raw requests to these resources contact someone (a message, a call, a verification)
CONTACT_RESOURCES = frozenset(
    {"Messages", "Calls", "Verifications", "Executions", "Notifications", "Participants", "Faxes"}
)


def request_number(payload: Mapping[str, Any]) -> tuple[str, object] | None:
    """(field, value) of the number a request's params name, if they name one."""
    api = str(payload.get("api", "")).lower()
    params = payload.get("params") or {}
    if api == "raw":
        inner = params.get("params")
        if isinstance(inner, Mapping) and "To" in inner:
            return "params.params.To", inner["To"]
        return None
    for name in REQUEST_NUMBER_FIELDS.get(api, ("To",)):
        if name in params:
            return f"params.{name}", params[name]
    return None


def contacts_someone(payload: Mapping[str, Any]) -> bool:
    """Whether a request reaches a person (so the guardrails must see its number): every
    one but a read (a Lookup, a raw GET or DELETE) and raw requests to resources that
    contact nobody."""
    api = str(payload.get("api", "")).lower()
    if api in READS:
        return False
    if api != "raw":
        return True
    params = payload.get("params") or {}
    method = str(params.get("method") or payload.get("method") or "GET").upper()
    if method in ("GET", "DELETE"):
        return False
    segments = str(params.get("path") or "").split("/")
    return any(seg.removesuffix(".json") in CONTACT_RESOURCES for seg in segments)


def _request_to(
    payload: Mapping[str, Any], to: str | None, default_region: str | None
) -> str | None:
    """The number a request job is checked and serialised as: ``to``, or the one its
    params name (the two must agree); a request that contacts someone needs one."""
    named = request_number(payload)
    if named is not None:
        field, value = named
        number = normalize_number(value, field=field, default_region=default_region)
        if to is not None and number != to:
            raise ValidationError(
                f"to ({to}) and {field} ({number}) name different numbers", field=field
            )
        to = number
    if to is None and contacts_someone(payload):
        raise ValidationError(
            f"a {payload.get('api')} request contacts someone: give its number in to (or "
            "params.To), so that the allowlist, suppressions, caps and quiet hours see it",
            field="to",
            code="missing_field",
        )
    return to


def make_spec(
    kind: Kind | str,
    *,
    to: str | None = None,
    group_key: str | None = None,
    not_before: datetime | None = None,
    expires_at: datetime | None = None,
    strict_order: bool = False,
    idempotency_key: str | None = None,
    callback_url: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    max_attempts: int | None = None,
    default_region: str | None = None,
    now: float | None = None,
    **fields: Any,
) -> JobSpec:
    """Validate a request and return its :class:`JobSpec`; nothing is stored here.

    ``fields`` are the kind's own: ``media_url`` (fax), ``body``/``media_url`` (sms),
    ``twiml`` or ``url`` (call), ``api``/``method``/``params`` (request), and ``from``.
    Given ``now`` (unix seconds), an ``expires_at`` that has already passed is refused.
    """
    try:
        kind = Kind(kind)
    except ValueError:
        raise ValidationError(
            f"unknown kind {kind!r}; expected one of {', '.join(Kind)}", field="kind"
        ) from None
    number = None
    if to is not None or kind is not Kind.REQUEST:
        number = normalize_number(to, default_region=default_region)
    payload = _payload_for(kind, fields)
    if kind is Kind.REQUEST:
        number = _request_to(payload, number, default_region)
    for name, value in (("not_before", not_before), ("expires_at", expires_at)):
        if value is not None and value.tzinfo is None:
            raise ValidationError(f"{name} must carry a time zone", field=name)
        if value is not None and not MIN_TIME <= value <= MAX_TIME:
            raise ValidationError(
                f"{name} must be between 1970 and 9999", field=name, code="invalid_time"
            )
    if not_before and expires_at and expires_at <= not_before:
        raise ValidationError("expires_at must be after not_before", field="expires_at")
    if max_attempts is not None and not 1 <= max_attempts <= MAX_ATTEMPTS:
        raise ValidationError(
            f"max_attempts must be from 1 to {MAX_ATTEMPTS}", field="max_attempts"
        )
    if expires_at is not None and now is not None and expires_at.timestamp() <= now:
        raise ValidationError("expires_at is in the past", field="expires_at", code="invalid_time")
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 255):
        raise ValidationError("idempotency_key must be 1-255 characters", field="idempotency_key")
    return JobSpec(
        kind=kind,
        to=number,
        payload=payload,
        group_key=group_key,
        not_before=not_before,
        expires_at=expires_at,
        strict_order=strict_order,
        idempotency_key=idempotency_key,
        callback_url=(
            None if callback_url is None else validate_url(callback_url, field="callback_url")
        ),
        metadata=dict(metadata or {}),
        max_attempts=max_attempts,
    )
