"""Values from outside that the code must never take as they come (issue 15): the
pieces each edge shares (rates, numbers, JSON limits, DNS, redaction, Retry-After)."""

from __future__ import annotations

import asyncio
import base64
import math
import random
import threading
import time

import pytest

from callgate import jsonlimits, urls
from callgate.domain import AttemptResult, Outcome, normalize_number, usable_rate, validate_rate
from callgate.engine.audit import Redactor, encoded_forms
from callgate.engine.meter import GCRA
from callgate.engine.retry import MAX_RETRY_AFTER, RetryPolicy
from callgate.exceptions import ValidationError
from callgate.providers.twilio_mapping import retry_after
from tests.factories import in_flight_job

POISON = [math.inf, -math.inf, math.nan, 1e-300, 0.0, -1.0, 1e9, "inf", "1e400", "nan", "x", True]


@pytest.mark.parametrize("raw", POISON)
def test_a_poison_rate_is_refused(raw: object) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_rate(raw)
    assert caught.value.field == "rate"


@pytest.mark.parametrize("rate", [0.001, 0.5, 25, 10_000, "2.5"])
def test_a_usable_rate_is_taken(rate: object) -> None:
    assert usable_rate(validate_rate(rate))


@pytest.mark.parametrize("rate", [0.001, 1.0, 10_000.0])
def test_the_meter_runs_at_every_rate_the_edge_lets_in(rate: float) -> None:
    from callgate.store.base import MeterState

    meter = GCRA(rate=1000.0).for_rate(rate)
    state = MeterState(0.0, None, 0.0)
    assert meter.allowance(state, 100.0, 5) >= 1
    assert math.isfinite(meter.max_lateness)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [("+15005550006", "+15005550006"), ("+1 (500) 555-0006", "+15005550006")],
)
def test_plain_numbers(raw: str, e164: str) -> None:
    assert normalize_number(raw) == e164


@pytest.mark.parametrize(
    "raw",
    ["+1500555ABCD", "+15005550187;ext=12", "+１５００５５５０００６", "+١٥٠٠٥٥٥٠٠٠٦", "+", "++1"],
)
def test_numbers_that_are_not_plain(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_number(raw)
    assert caught.value.code == "invalid_phone_number"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("[" * 33 + "]" * 33, "too_deep"),
        ('{"a":' * 40 + "1" + "}" * 40, "too_deep"),
        ("[1e400]", "invalid_number"),
        ("[NaN]", "invalid_number"),
        ("[-Infinity]", "invalid_number"),
        ("[" + "1" * 30 + "]", "invalid_number"),
    ],
)
def test_json_beyond_the_limits(text: str, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        jsonlimits.loads(text)
    assert caught.value.code == code


def test_json_within_the_limits_and_brackets_inside_strings() -> None:
    assert jsonlimits.loads("[" * 32 + "]" * 32) is not None
    text = '{"a": "' + "[" * 1000 + '", "b": [1.5, -2, 9223372036854775807]}'
    assert jsonlimits.loads(text)["b"] == [1.5, -2, 2**63 - 1]


def test_dns_answers_are_remembered_and_a_stuck_lookup_times_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    release = threading.Event()

    def resolve(host: str) -> list[str]:
        calls.append(host)
        if host == "stuck.example":
            release.wait(5.0)
        return ["93.184.215.14"]

    monkeypatch.setattr(urls, "resolve", resolve)
    now = [0.0]
    dns = urls.DnsCache(timeout=0.05, ttl=60.0, now=lambda: now[0])
    try:
        assert dns.lookup("a.example") == ["93.184.215.14"]
        assert asyncio.run(dns.alookup("a.example")) == ["93.184.215.14"]
        assert calls == ["a.example"]
        now[0] = 61.0  # the answer has aged out
        dns.lookup("a.example")
        assert calls == ["a.example", "a.example"]
        with pytest.raises(TimeoutError):
            dns.lookup("stuck.example")
        with pytest.raises(TimeoutError):  # remembered: not asked again
            asyncio.run(dns.alookup("stuck.example"))
        assert calls.count("stuck.example") == 1
    finally:
        release.set()


def test_the_dns_cache_is_bounded() -> None:
    dns = urls.DnsCache(size=3)
    for n in range(10):
        dns._remember(f"h{n}.example", ["93.184.215.14"])
    assert list(dns._known) == ["h7.example", "h8.example", "h9.example"]


SECRET = "Tok3n-s3cr3t-value"


@pytest.mark.parametrize("prefix", ["", "A", "AB", "ACxyz:", "user:"])
def test_a_secret_is_found_in_base64_at_any_alignment(prefix: str) -> None:
    redactor = Redactor.of([SECRET], mask_pii=False)
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode((prefix + SECRET).encode()).decode()
        text = redactor.secret_text(f"echo: {encoded}")
        for form in encoded_forms(SECRET):
            assert form not in text
        assert "[redacted]" in text


def test_authorization_headers_are_redacted_whoever_they_belong_to() -> None:
    redactor = Redactor()
    text = redactor.secret_text("Authorization: Basic QUMxMjM6YWJjZGVm; Bearer eyJ0eXAi.x1")
    assert text == "Authorization: Basic [redacted]; Bearer [redacted]"
    assert redactor.secret_text("basic authentication failed") == "basic authentication failed"


@pytest.mark.parametrize("value", [math.inf, math.nan, -5.0, 1e12])
def test_a_retry_after_the_engine_cannot_use_is_no_wait_or_a_day(value: float) -> None:
    policy = RetryPolicy(rng=random.Random(1))
    result = AttemptResult(Outcome.RATE_LIMITED, retry_after=value)
    decision = policy.decide(in_flight_job(), 1, result, 1000.0)
    assert decision.run_at is not None
    assert 1000.0 <= decision.run_at <= 1000.0 + MAX_RETRY_AFTER


@pytest.mark.parametrize("header", ["²", "９", "9" * 400])
def test_a_retry_after_header_of_odd_digits(header: str) -> None:
    wait = retry_after(header, time.time())
    assert wait is None or (math.isfinite(wait) and wait <= 86400)


EMBEDDED_LOOPBACK = [
    "[64:ff9b::7f00:1]",  # NAT64
    "[64:ff9b:1::7f00:1]",  # NAT64, local use
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::ffff:0:7f00:1]",  # SIIT
    "[2002:7f00:1::]",  # 6to4
    "[::127.0.0.1]",  # IPv4-compatible (deprecated)
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo, client 127.0.0.1
    "[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
]
MULTICAST = ["224.0.0.1", "239.1.2.3", "[ff02::1]", "[ff0e::1]"]


@pytest.mark.parametrize("host", EMBEDDED_LOOPBACK + MULTICAST)
@pytest.mark.parametrize("environment", ["staging", "production"])
def test_ipv4_inside_ipv6_and_multicast_are_unsafe(host: str, environment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        urls.check_url(f"http://{host}/x.pdf", field="media_url", environment=environment)
    assert caught.value.code == "unsafe_url"


@pytest.mark.parametrize("host", ["[64:ff9b::808:808]", "8.8.8.8", "[2606:4700::1111]"])
def test_public_addresses_still_pass_in_any_form(host: str) -> None:
    url = f"http://{host}/x.pdf"
    assert urls.check_url(url, field="media_url", environment="production") == url


@pytest.mark.parametrize("api", ["../../etc/passwd", "lookup/../x", "look up", "a" * 40, "1x", ""])
def test_in_process_an_api_is_a_plain_name(api: str) -> None:
    from callgate.domain import make_spec

    with pytest.raises(ValidationError) as caught:
        make_spec("request", api=api)
    assert caught.value.field == "api"


def test_in_process_an_adapter_of_your_own_may_name_its_api() -> None:
    from callgate.domain import make_spec

    spec = make_spec("request", api="noop", to="+15005550006")
    assert spec.payload["api"] == "noop"
