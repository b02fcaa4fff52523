"""The alert rules, each on its own, as a pure function of one observation of the
database (:func:`callgate.engine.alerts.evaluate`), with the product's default thresholds."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from callgate.config import Settings
from callgate.domain import Observation
from callgate.engine.alerts import (
    BATCH_ERRORS,
    DEAD_LETTERS,
    NO_WORKER,
    OLDEST_QUEUED,
    PROVIDER_DOWN,
    WEBHOOK_FAILING,
    AlertPolicy,
    evaluate,
)
from callgate.engine.audit import Redactor
from callgate.services import alert_policy

NOW = 1_800_000_000.0


def quiet(**changes: Any) -> Observation:
    """A gateway with nothing wrong: a worker that just beat, nothing waiting."""
    base = Observation(
        now=NOW,
        jobs={"queued": 0, "in_flight": 0, "retrying": 0, "held": 0, "uncertain": 0},
        oldest_due=None,
        oldest_free=None,
        last_heartbeat=NOW - 5,
        dead_letters=0,
        breaker_open=False,
        providers_down={},
        batches={},
        failing_endpoints={},
    )
    return replace(base, **changes)


@pytest.fixture
def policy() -> AlertPolicy:
    """The defaults, as the settings give them."""
    return alert_policy(Settings(database_url="sqlite:///:memory:"))


def test_the_defaults_are_those_of_the_issue(policy: AlertPolicy) -> None:
    assert policy.queued_minutes == 15
    assert policy.heartbeat_seconds == 60
    assert policy.beat_interval == 10  # lease 30 s / 3
    assert policy.webhook_failing_minutes == 60
    assert policy.dead_letters == 10
    assert policy.batch_error_percent == 10


def test_nothing_wrong_raises_nothing(policy: AlertPolicy) -> None:
    assert evaluate(policy, quiet()) == {}


def test_the_oldest_queued_job_past_15_minutes(policy: AlertPolicy) -> None:
    assert evaluate(policy, quiet(oldest_due=NOW - 14 * 60, oldest_free=NOW - 14 * 60)) == {}
    firing = evaluate(policy, quiet(oldest_due=NOW - 16 * 60, oldest_free=NOW - 16 * 60))
    assert list(firing) == [(OLDEST_QUEUED, "")]
    alert = firing[(OLDEST_QUEUED, "")]
    assert alert.detail == {"value": 960.0, "threshold": 900.0}
    assert "16 min" in alert.message


def test_a_long_line_of_faxes_to_one_number_is_not_stuck(policy: AlertPolicy) -> None:
    # the oldest job has waited an hour behind its number's fax in flight; every job
    # whose line is free was taken at once
    assert evaluate(policy, quiet(oldest_due=NOW - 3600, oldest_free=None)) == {}
    assert evaluate(policy, quiet(oldest_due=NOW - 3600, oldest_free=NOW - 2)) == {}


def test_no_heartbeat_for_60_seconds_while_jobs_wait(policy: AlertPolicy) -> None:
    # jobs wait, the last beat was 61 s ago
    firing = evaluate(policy, quiet(oldest_due=NOW - 1, last_heartbeat=NOW - 61))
    assert list(firing) == [(NO_WORKER, "")]
    # a worker that beat 59 s ago is alive
    assert evaluate(policy, quiet(oldest_due=NOW - 1, last_heartbeat=NOW - 59)) == {}
    # no heartbeat at all, but nothing waits: no alert
    assert evaluate(policy, quiet(last_heartbeat=None)) == {}
    # no worker ever beat: the alert once the oldest job has waited 60 s
    assert evaluate(policy, quiet(oldest_due=NOW - 30, last_heartbeat=None)) == {}
    assert list(evaluate(policy, quiet(oldest_due=NOW - 61, last_heartbeat=None))) == [
        (NO_WORKER, "")
    ]


def test_a_long_lease_beats_less_often_and_is_not_late_for_it() -> None:
    policy = alert_policy(Settings(database_url="sqlite:///:memory:", lease=300))
    assert evaluate(policy, quiet(oldest_due=NOW - 1, last_heartbeat=NOW - 150)) == {}
    assert list(evaluate(policy, quiet(oldest_due=NOW - 1, last_heartbeat=NOW - 201))) == [
        (NO_WORKER, "")
    ]


def test_dead_letters_above_the_threshold_in_an_hour(policy: AlertPolicy) -> None:
    assert evaluate(policy, quiet(dead_letters=10)) == {}
    firing = evaluate(policy, quiet(dead_letters=11))
    assert firing[(DEAD_LETTERS, "")].detail == {"value": 11, "threshold": 10}


def test_a_provider_down_per_provider(policy: AlertPolicy) -> None:
    firing = evaluate(
        policy, quiet(providers_down={"twilio": ("auth", "20003"), "telnyx": ("outage", None)})
    )
    assert sorted(firing) == [(PROVIDER_DOWN, "telnyx"), (PROVIDER_DOWN, "twilio")]
    assert firing[(PROVIDER_DOWN, "twilio")].detail == {"fault": "auth", "detail": "20003"}


def test_a_webhook_endpoint_failing_for_over_an_hour(policy: AlertPolicy) -> None:
    url = "https://hooks.example.com/cg"
    assert evaluate(policy, quiet(failing_endpoints={url: NOW - 3500})) == {}
    firing = evaluate(policy, quiet(failing_endpoints={url: NOW - 3700}))
    assert list(firing) == [(WEBHOOK_FAILING, url)]


def test_an_endpoint_alert_never_shows_a_credential(policy: AlertPolicy) -> None:
    url = "https://user:s3cretpass@hooks.example.com/cg?token=abcdef123"
    redactor = Redactor.of(["s3cretpass"], mask_pii=False)
    firing = evaluate(policy, quiet(failing_endpoints={url: NOW - 7200}), redactor)
    [alert] = firing.values()
    text = repr(alert)
    assert "s3cretpass" not in text
    assert "abcdef123" not in text
    assert "hooks.example.com" in alert.subject


def test_a_batch_error_rate_above_10_percent(policy: AlertPolicy) -> None:
    ok = {"delivered": 90, "failed": 10, "queued": 500}
    assert evaluate(policy, quiet(batches={7: ok})) == {}
    bad = {"delivered": 80, "failed": 15, "blocked": 5, "queued": 500}
    firing = evaluate(policy, quiet(batches={7: ok, 8: bad}))
    assert list(firing) == [(BATCH_ERRORS, "8")]
    assert firing[(BATCH_ERRORS, "8")].detail["value"] == 20.0


def test_a_batch_is_not_judged_on_its_first_rows(policy: AlertPolicy) -> None:
    # 3 of the first 5 rows failed: too few finished rows to call it a bad batch
    assert evaluate(policy, quiet(batches={9: {"delivered": 2, "failed": 3}})) == {}
    many = {"delivered": 8, "failed": 12}
    assert list(evaluate(policy, quiet(batches={9: many}))) == [(BATCH_ERRORS, "9")]


def test_the_thresholds_follow_the_settings() -> None:
    settings = Settings(
        database_url="sqlite:///:memory:",
        alert_queued_minutes=5,
        alert_dead_letters=0,
        alert_batch_error_percent=50,
    )
    policy = alert_policy(settings)
    seen = quiet(
        oldest_due=NOW - 301,
        oldest_free=NOW - 301,
        dead_letters=1,
        batches={1: {"delivered": 15, "failed": 10}},
    )
    assert sorted(evaluate(policy, seen)) == [(DEAD_LETTERS, ""), (OLDEST_QUEUED, "")]
