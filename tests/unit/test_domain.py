"""Validation at submit: numbers to E.164, required fields per kind, clear error codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import callgate
from callgate.domain import Kind, Status, make_spec, normalize_number, parse_time
from callgate.exceptions import ValidationError

PDF = "https://example.org/a.pdf"


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+1 (212) 555-0100", "+12125550100"),
        ("+15005550006", "+15005550006"),
        ("+49 30 123456", "+4930123456"),
    ],
)
def test_numbers_are_normalised_to_e164(raw: str, e164: str) -> None:
    assert normalize_number(raw) == e164


def test_national_number_needs_a_default_region() -> None:
    with pytest.raises(ValidationError) as info:
        normalize_number("212 555 0100")
    assert (info.value.code, info.value.field) == ("invalid_phone_number", "to")
    assert normalize_number("212 555 0100", default_region="US") == "+12125550100"


@pytest.mark.parametrize("raw", ["12345", "+999", "+1 212 555", "hello", ""])
def test_invalid_numbers_are_refused(raw: str) -> None:
    with pytest.raises(ValidationError) as info:
        make_spec(Kind.SMS, to=raw, body="hi")
    assert info.value.field == "to"
    assert info.value.code in ("invalid_phone_number", "missing_field")


@pytest.mark.parametrize(
    ("kind", "fields", "code", "field"),
    [
        (Kind.FAX, {}, "missing_field", "media_url"),
        (Kind.FAX, {"media_url": "ftp://x/a.pdf"}, "invalid_url", "media_url"),
        (Kind.FAX, {"media_url": "file:///etc/passwd"}, "invalid_url", "media_url"),
        (Kind.SMS, {}, "missing_field", "body"),
        (Kind.SMS, {"body": "   "}, "missing_field", "body"),
        (Kind.CALL, {}, "missing_field", "twiml"),
        (Kind.CALL, {"twiml": "<Response/>", "url": "https://x.org"}, "missing_field", "twiml"),
        (Kind.REQUEST, {}, "missing_field", "api"),
    ],
)
def test_required_fields_per_kind(kind: Kind, fields: dict, code: str, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError) as info:
        make_spec(kind, to="+15005550006", **fields)
    assert (info.value.code, info.value.field) == (code, field)


def test_kinds_build_their_payloads() -> None:
    assert make_spec(Kind.FAX, to="+15005550006", media_url=PDF).payload == {"media_url": PDF}
    call = make_spec(Kind.CALL, to="+15005550006", twiml="<Response/>")
    assert call.payload == {"twiml": "<Response/>"}
    req = make_spec(Kind.REQUEST, api="lookup", method="get", params={"Type": "carrier"})
    assert (req.to, req.payload["method"]) == (None, "GET")


def test_unknown_kind_and_bad_windows() -> None:
    with pytest.raises(ValidationError, match="unknown kind"):
        make_spec("telegram", to="+15005550006")
    now = datetime.now(UTC)
    with pytest.raises(ValidationError) as info:
        make_spec(
            Kind.SMS,
            to="+15005550006",
            body="x",
            not_before=now,
            expires_at=now - timedelta(seconds=1),
        )
    assert info.value.field == "expires_at"
    with pytest.raises(ValidationError, match="time zone"):
        make_spec(Kind.SMS, to="+15005550006", body="x", not_before=datetime(2030, 1, 1))


def test_fingerprint_tells_requests_apart() -> None:
    a = make_spec(Kind.SMS, to="+15005550006", body="hi", idempotency_key="k")
    b = make_spec(Kind.SMS, to="+1 500 555 0006", body="hi", idempotency_key="k")
    c = make_spec(Kind.SMS, to="+15005550006", body="hello", idempotency_key="k")
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_parse_time() -> None:
    assert parse_time("2030-01-01T00:00:00", field="x").tzinfo is UTC
    with pytest.raises(ValidationError) as info:
        parse_time("tomorrow", field="not_before")
    assert (info.value.code, info.value.field) == ("invalid_time", "not_before")


def test_terminal_statuses() -> None:
    assert {s for s in Status if s.terminal} == {
        Status.DELIVERED,
        Status.FAILED,
        Status.CANCELED,
        Status.EXPIRED,
        Status.BLOCKED,
    }


def test_public_api_is_sorted_and_complete() -> None:
    assert callgate.__all__ == sorted(callgate.__all__)
    for name in callgate.__all__:
        assert hasattr(callgate, name)
