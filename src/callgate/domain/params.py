"""Twilio's own parameters of a message and a call, passed through as given.

A job's payload carries them under ``params`` with Twilio's names (``MessagingServiceSid``,
``ContentSid``, ``ValidityPeriod``, ``MachineDetection`` ...); the Twilio adapter hands
them to the SDK's ``create``. The names are those of the SDK's ``messages.create`` and
``calls.create`` (``tests/unit/test_params.py`` reads them from the installed SDK and fails
when the two differ). Some names are callgate's own fields rather than parameters
(:data:`FIELD_NAMES`: ``To`` is the job's number, ``StatusCallback`` its webhook URL ...),
and some callgate must set itself (:data:`RESERVED`: where Twilio posts statuses).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from callgate.domain.jobs import Kind
from callgate.exceptions import ValidationError

#: every parameter of Twilio's create call, per kind
TWILIO_PARAMS: Mapping[Kind, frozenset[str]] = {
    Kind.SMS: frozenset(
        """AddressRetention ApplicationSid Attempt Body ContentRetention ContentSid
        ContentVariables FallbackFrom ForceDelivery From MaxPrice MediaUrl MessageIntent
        MessagingServiceSid PersistentAction ProvideFeedback RiskCheck ScheduleType
        SendAsMms SendAt ShortenUrls SmartEncoded StatusCallback To TrafficType
        ValidityPeriod""".split()  # noqa: SIM905
    ),
    Kind.CALL: frozenset(
        """ApplicationSid AsyncAmd AsyncAmdStatusCallback AsyncAmdStatusCallbackMethod Byoc
        CallReason CallToken CallerId ClientNotificationUrl FallbackMethod FallbackUrl From
        MachineDetection MachineDetectionSilenceTimeout MachineDetectionSpeechEndThreshold
        MachineDetectionSpeechThreshold MachineDetectionTimeout Method Passports Record
        RecordingChannels RecordingConfigurationId RecordingStatusCallback
        RecordingStatusCallbackEvent RecordingStatusCallbackMethod RecordingTrack SendDigits
        SipAuthPassword SipAuthUsername StatusCallback StatusCallbackEvent
        StatusCallbackMethod TimeLimit Timeout To Trim Twiml Url""".split()  # noqa: SIM905
    ),
}
#: Twilio's names that are a job's own fields, and the field each one is
FIELD_NAMES: Mapping[str, str] = {
    "To": "to",
    "From": "from",
    "Body": "body",
    "MediaUrl": "media_url",
    "StatusCallback": "callback_url",
    "Url": "url",
    "Twiml": "twiml",
}
#: what callgate sets itself: Twilio posts an attempt's statuses to callgate, which tells
#: the job's ``callback_url`` (a user's ``StatusCallback``) in its own signed webhooks
RESERVED = frozenset({"StatusCallbackEvent", "StatusCallbackMethod"})


def passed_through(kind: Kind) -> frozenset[str]:
    """The names a ``kind`` job takes under ``params`` (not its fields, not reserved)."""
    return TWILIO_PARAMS.get(kind, frozenset()) - FIELD_NAMES.keys() - RESERVED


def check_params(kind: Kind, params: object, *, field: str = "params") -> dict[str, Any]:
    """``params`` of an SMS or a call: an object of Twilio's parameter names, each a
    text, a number, a boolean or a list of texts; an unknown name is refused with the
    valid ones in the message."""
    if not isinstance(params, Mapping):
        raise ValidationError(f"{field} must be an object", field=field)
    allowed = passed_through(kind)
    out: dict[str, Any] = {}
    for name, value in params.items():
        where = f"{field}.{name}"
        if name in FIELD_NAMES.keys() & TWILIO_PARAMS.get(kind, frozenset()):
            raise ValidationError(
                f"{name} is the job's {FIELD_NAMES[name]!r} field, not a parameter",
                field=where,
                code="unknown_param",
            )
        if name in RESERVED:
            raise ValidationError(
                f"{name} is set by callgate (Twilio reports statuses to callgate, which "
                "sends them to callback_url)",
                field=where,
                code="reserved_param",
            )
        if name not in allowed:
            raise ValidationError(
                f"{name!r} is not a parameter of Twilio's {kind} create call; expected one "
                f"of {', '.join(sorted(allowed))}",
                field=where,
                code="unknown_param",
            )
        out[name] = _value(value, where)
    return out


def _value(value: object, where: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError("a Twilio parameter is a finite number", field=where)
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValidationError(
        "a Twilio parameter is a text, a number, a boolean or a list of texts", field=where
    )
