"""The guardrails' decisions, pure: allowlist, caps, quiet hours, breaker."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any
from unittest.mock import ANY

import pytest

from callgate.domain import Job, Kind, Status
from callgate.engine.guardrails import (
    Allowlist,
    BreakerPolicy,
    BreakerRule,
    BreakerState,
    Cap,
    CapUse,
    GuardFacts,
    Guardrails,
    GuardReason,
    QuietWindow,
    over_cap,
    quiet_hours,
    zone_for,
)
from callgate.store.base import SendCounts

NYC, HONOLULU = "+12125550123", "+18085550123"


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def job(to: str | None = NYC, kind: Kind = Kind.SMS) -> Job:
    now = datetime(2027, 1, 14, tzinfo=UTC)
    return Job(1, kind, to, to or "g", Status.IN_FLIGHT, {}, 0, None, now, now, now)


def test_allowlist_numbers_and_patterns() -> None:
    allow = Allowlist(frozenset({"+12125550123", "+1808555*"}))
    assert allow.allows("+12125550123")
    assert allow.allows("+18085550199")
    assert not allow.allows("+12125550124")
    assert Allowlist(frozenset({"*"})).allows("+33123456789")
    assert not Allowlist().allows("+12125550123")


@pytest.mark.parametrize(
    ("text", "limit", "window"),
    [("3/24h", 3, 86400), ("20/1d", 20, 86400), ("1/30m", 1, 1800), ("5/h", 5, 3600)],
)
def test_caps_parse(text: str, limit: int, window: float) -> None:
    cap = Cap.parse(text)
    assert (cap.limit, cap.window) == (limit, window)
    assert Cap.parse(str(cap)) == cap


@pytest.mark.parametrize("text", ["3", "3/24", "x/24h", "3/0h", "3/24w"])
def test_bad_caps_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="cap"):
        Cap.parse(text)


def test_over_cap_holds_until_the_oldest_attempt_leaves_the_window() -> None:
    cap, now = Cap.parse("3/24h"), ts("2027-01-14T12:00:00")
    assert over_cap(NYC, Kind.SMS, cap, CapUse(2, now - 100), now, block=False) is None
    held = over_cap(NYC, Kind.SMS, cap, CapUse(3, now - 3600), now, block=False)
    assert held is not None
    assert held.status is Status.HELD
    assert held.reason == GuardReason.OVER_CAP
    assert held.run_at == now - 3600 + 86400
    assert "3/24h" in (held.detail or "")
    blocked = over_cap(NYC, Kind.SMS, cap, CapUse(3, now - 3600), now, block=True)
    assert blocked is not None
    assert blocked.status is Status.BLOCKED


def test_time_zones_come_from_the_numbers_region() -> None:
    assert zone_for(NYC, "UTC") == "America/New_York"
    assert zone_for(HONOLULU, "UTC") == "Pacific/Honolulu"
    # a toll-free number has no single zone: the configured default
    assert zone_for("+18005550123", "Europe/Paris") == "Europe/Paris"


def test_quiet_hours_in_the_recipients_local_time() -> None:
    window = QuietWindow.parse("21:00-08:00")
    now = ts("2027-01-15T03:00:00")  # 22:00 in New York, 17:00 in Honolulu
    held = quiet_hours(NYC, Kind.SMS, window, now, "UTC")
    assert held is not None
    assert held.reason == GuardReason.QUIET_HOURS
    assert held.run_at == ts("2027-01-15T13:00:00")  # 08:00 EST
    assert quiet_hours(HONOLULU, Kind.SMS, window, now, "UTC") is None
    later = ts("2027-01-15T08:00:00")  # 03:00 in New York, 22:00 in Honolulu
    held = quiet_hours(HONOLULU, Kind.SMS, window, later, "UTC")
    assert held is not None
    assert held.run_at == ts("2027-01-15T18:00:00")
    assert quiet_hours(NYC, Kind.SMS, window, ts("2027-01-15T13:00:00"), "UTC") is None


def test_quiet_window_within_a_day() -> None:
    window = QuietWindow.parse("12:00-14:00")
    assert window.contains(datetime(2027, 1, 1, 13).time())
    assert not window.contains(datetime(2027, 1, 1, 14).time())
    with pytest.raises(ValueError, match="window"):
        QuietWindow.parse("9pm-8am")


def counts(
    unintended: int, baseline_total: int = 0, *, batch: int = 0, age: float | None = 1e9
) -> SendCounts:
    """Send counts as the store gives them; ``age``: seconds of history before now."""
    return SendCounts(
        unintended + batch, unintended, baseline_total, None if age is None else NOW - age
    )


NOW = 1_800_000_000.0


def test_breaker_baseline_rule_with_its_floor() -> None:
    policy = BreakerPolicy(factor=10, baseline_minutes=15, min_per_minute=60, baseline_floor=30)
    check = functools.partial(policy.check, now=NOW)
    assert check(counts(59)) is None  # below min_per_minute
    assert check(counts(300)) is None  # a quiet quarter hour counts as 30 a minute, not 0
    rule, why = check(counts(301)) or ("", "")
    assert rule == BreakerRule.BASELINE
    assert "10×" in why
    assert "at least 30" in why  # it says the floor was used
    assert check(counts(1000, 15 * 200)) is None  # 5× a busy baseline
    assert check(counts(2001, 15 * 200)) == (BreakerRule.BASELINE, ANY)
    assert check(counts(0, 15 * 200, batch=50_000)) is None  # a batch's sends are intended


def test_breaker_waits_for_a_baseline_before_its_ratio_applies() -> None:
    policy = BreakerPolicy(factor=10, baseline_minutes=15, account_rate=10.0)
    young = 15 * 60  # a new deployment: less than a baseline and a minute of history
    assert policy.check(counts(600, age=young), NOW) is None  # within 10/s
    assert policy.check(counts(600, age=None), NOW) is None  # no history at all
    rule, why = policy.check(counts(601, age=young), NOW) or ("", "")
    assert rule == BreakerRule.WARMUP
    assert "configured rate of 600 per minute" in why
    unlimited = BreakerPolicy(account_rate=None)
    assert unlimited.check(counts(100_000, age=young), NOW) is None
    assert policy.check(counts(601, age=16 * 60), NOW) == (BreakerRule.BASELINE, ANY)


def test_breaker_ceiling_counts_every_send() -> None:
    ceiling = BreakerPolicy(ceiling=500)
    assert ceiling.check(counts(0, batch=501), NOW) == (BreakerRule.CEILING, ANY)
    assert ceiling.check(counts(0, batch=500), NOW) is None
    # after a reset only the ceiling applies for a while
    assert ceiling.check(counts(499, age=1e9), NOW, ratio=False) is None
    assert BreakerPolicy(enabled=False).check(counts(10_000), NOW) is None


def rules(**kw: Any) -> Guardrails:
    return Guardrails(**kw)


def test_outside_production_only_allowlisted_numbers() -> None:
    dev = rules(environment="development", allowlist=Allowlist(frozenset({NYC})))
    assert dev.refusal(job(NYC), GuardFacts()) is None
    refused = dev.refusal(job(HONOLULU), GuardFacts())
    assert refused is not None
    assert refused.reason == GuardReason.NOT_ALLOWLISTED
    assert refused.status is Status.BLOCKED
    assert "allowlist" in (refused.detail or "")
    assert dev.refusal(job(HONOLULU), GuardFacts(allowlisted=True)) is None  # stored list
    assert rules(environment="production").refusal(job(HONOLULU), GuardFacts()) is None


def test_suppressed_numbers_are_blocked_in_every_environment() -> None:
    prod = rules(environment="production")
    refused = prod.refusal(job(), GuardFacts(is_suppressed=True, suppressed="unsubscribed"))
    assert refused is not None
    assert refused.reason == GuardReason.SUPPRESSED
    assert "unsubscribed" in (refused.detail or "")


def test_at_send_the_breaker_comes_first_and_keeps_the_job_queued() -> None:
    prod = rules(environment="production")
    decision = prod.at_send(job(), GuardFacts(breaker=BreakerState(True, detail="x")), 0.0)
    assert decision is not None
    assert decision.status is Status.QUEUED
    assert decision.reason == GuardReason.BREAKER_OPEN


# -- the audit log's redaction ------------------------------------------------------------


def test_redactor_removes_credentials_by_value_field_and_url() -> None:
    from callgate.engine.audit import REDACTED, Redactor
    from callgate.providers.audit import Exchange

    r = Redactor.of(["s3cret-token", None, ""], mask_pii=False)
    ex = Exchange(
        "POST",
        "https://AC1:s3cret-token@api.example/2010/Messages.json?api_key=abc123",
        201,
        "To=%2B12125550123&Body=hi&AuthToken=zzz",
        '{"sid": "SM1", "token": "t0ps3cret", "echo": "s3cret-token"}',
        0.1,
    )
    out = r.exchange(ex)
    for text in (out.url, out.request, out.response):
        assert text is not None
        assert "s3cret-token" not in text
    assert "abc123" not in out.url
    assert "zzz" not in (out.request or "")
    assert "t0ps3cret" not in (out.response or "")
    assert REDACTED in out.url
    assert "%2B12125550123" in (out.request or "")  # numbers kept without mask_pii


def test_redactor_masks_numbers_and_content_with_mask_pii() -> None:
    from callgate.engine.audit import Redactor

    r = Redactor(mask_pii=True)
    text = r.text("To=%2B12125550123&Body=Your+ballot&From=%2B15005550006") or ""
    assert "12125550123" not in text
    assert "ballot" not in text
    assert text.endswith("…06")
    body = r.text('{"to": "+12125550123", "text": "Your ballot", "id": 7}') or ""
    assert "Your ballot" not in body
    assert "12125550123" not in body
    assert '"id": 7' in body


def test_the_simulators_numbers_keep_no_quiet_hours_in_development() -> None:
    from tests.factories import in_flight_job

    night = datetime(2026, 12, 2, 3, 0, tzinfo=UTC).timestamp()  # 03:00 UTC, 22:00 in New York
    window = {Kind.SMS: QuietWindow.parse("21:00-08:00")}
    dev = Guardrails(environment="development", quiet=window, default_timezone="UTC")
    staging = Guardrails(environment="staging", quiet=window, default_timezone="UTC")
    facts = GuardFacts(breaker=BreakerState(False), allowlisted=True)
    job = in_flight_job("+15005550006", Kind.SMS)
    assert dev.at_send(job, facts, night) is None  # fictional: nobody's night to protect
    held = staging.at_send(job, facts, night)
    assert held is not None
    assert held.reason == "quiet_hours"
    # a real number in development still keeps its quiet hours
    assert dev.at_send(in_flight_job("+12125550100", Kind.SMS), facts, night) is not None
