"""Retry policies per kind and outcome (DESIGN, *Outcomes and what follows*)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from callgate.domain import AttemptResult, Job, Kind, Outcome, Status
from callgate.engine.retry import DEFAULTS, RetryPolicy
from tests.factories import in_flight_job

NOW = 1_000_000.0
T = datetime.fromtimestamp(NOW, UTC)


def job(kind: Kind = Kind.FAX, max_attempts: int | None = None) -> Job:
    return in_flight_job(kind=kind, max_attempts=max_attempts)


@pytest.fixture
def policy() -> RetryPolicy:
    return RetryPolicy(rng=random.Random(1))


def test_defaults() -> None:
    assert (DEFAULTS[Kind.FAX].max_attempts, DEFAULTS[Kind.FAX].retry_delay) == (20, 600.0)


@pytest.mark.parametrize("outcome", [Outcome.BUSY, Outcome.NO_ANSWER, Outcome.LINE_FAILED])
def test_expected_failures_wait_the_kinds_delay(policy: RetryPolicy, outcome: Outcome) -> None:
    delays = []
    for _ in range(200):
        d = policy.decide(job(), 1, AttemptResult(outcome), NOW)
        assert (d.status, d.reason, d.count_attempt) == (Status.RETRYING, str(outcome), True)
        assert d.run_at is not None
        delays.append(d.run_at - NOW)
    assert 540 <= min(delays) < 560
    assert 640 < max(delays) <= 660


def test_attempts_exhausted_is_a_dead_letter(policy: RetryPolicy) -> None:
    d = policy.decide(job(), 20, AttemptResult(Outcome.BUSY), NOW)
    assert (d.status, d.reason) == (Status.FAILED, "max_attempts")
    assert "20 attempts" in (d.detail or "")
    assert policy.decide(job(max_attempts=2), 2, AttemptResult(Outcome.BUSY), NOW).status is (
        Status.FAILED
    )


def test_provider_errors_back_off_exponentially(policy: RetryPolicy) -> None:
    for n in range(1, 6):
        d = policy.decide(job(), n, AttemptResult(Outcome.PROVIDER_ERROR), NOW)
        assert d.run_at is not None
        base = min(600.0, 5.0 * 2 ** (n - 1))
        assert base * 0.8 <= d.run_at - NOW <= base * 1.2


def test_rate_limited_is_requeued_uncounted(policy: RetryPolicy) -> None:
    d = policy.decide(job(), 20, AttemptResult(Outcome.RATE_LIMITED, retry_after=3), NOW)
    assert (d.status, d.count_attempt, d.run_at) == (Status.QUEUED, False, NOW + 3)


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Outcome.DELIVERED, Status.DELIVERED),
        (Outcome.PERMANENT, Status.FAILED),
        (Outcome.UNKNOWN, Status.UNCERTAIN),
        (Outcome.CANCELED, Status.CANCELED),
    ],
)
def test_final_outcomes(policy: RetryPolicy, outcome: Outcome, status: Status) -> None:
    assert policy.decide(job(), 1, AttemptResult(outcome), NOW).status is status
