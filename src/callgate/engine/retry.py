"""What follows an attempt: retry policies per job kind and outcome (DESIGN, *Outcomes*)."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from callgate.domain import AttemptResult, Decision, Job, Kind, Outcome, Reason, Status
from callgate.policies import DEFAULTS, KindPolicy

__all__ = ["DEFAULTS", "MAX_RETRY_AFTER", "KindPolicy", "RetryPolicy"]

EXPECTED = frozenset({Outcome.BUSY, Outcome.NO_ANSWER, Outcome.LINE_FAILED})
#: the longest a provider's Retry-After may hold a job back (seconds)
MAX_RETRY_AFTER = 86400.0


def _wait(retry_after: float | None) -> float:
    """A provider's Retry-After as a delay: a value the engine cannot use (``nan``,
    ``inf``, negative) is no wait at all; a long one is capped at a day."""
    if retry_after is None or not math.isfinite(retry_after) or retry_after < 0:
        return 0.0
    return min(retry_after, MAX_RETRY_AFTER)


class RetryPolicy:
    def __init__(
        self, policies: Mapping[Kind, KindPolicy] = DEFAULTS, *, rng: random.Random | None = None
    ) -> None:
        self.policies = dict(policies)
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"RetryPolicy({self.policies!r})"

    def _jittered(self, delay: float, fraction: float) -> float:
        return delay * self._rng.uniform(1.0 - fraction, 1.0 + fraction)

    def decide(self, job: Job, attempts: int, result: AttemptResult, now: float) -> Decision:
        """``attempts``: counted attempts including this one."""
        outcome = result.outcome
        why = _describe(result)
        if outcome is Outcome.DELIVERED:
            return Decision(Status.DELIVERED)
        if outcome is Outcome.CANCELED:
            return Decision(Status.CANCELED, Reason.CANCELED, f"the provider canceled it: {why}")
        if outcome is Outcome.PERMANENT:
            return Decision(Status.FAILED, Reason.PERMANENT, why)
        if outcome is Outcome.RATE_LIMITED:
            wait = _wait(result.retry_after)
            return Decision(
                Status.QUEUED, "rate_limited", why, run_at=now + wait, count_attempt=False
            )
        if outcome is None or outcome is Outcome.UNKNOWN:
            return Decision(Status.UNCERTAIN, "unknown_outcome", why)
        policy = self.policies[job.kind]
        limit = job.max_attempts or policy.max_attempts
        if attempts >= limit:
            return Decision(
                Status.FAILED,
                Reason.MAX_ATTEMPTS,
                f"failed after {attempts} attempts; last attempt: {why}",
            )
        if outcome in EXPECTED:
            delay = self._jittered(policy.retry_delay, policy.jitter)
        else:
            base = min(policy.backoff_max, policy.backoff_base * 2 ** (attempts - 1))
            delay = self._jittered(base, policy.backoff_jitter)
        return Decision(
            Status.RETRYING,
            str(outcome),
            f"attempt {attempts} of {limit}: {why}; next try in {delay:.0f} s",
            run_at=now + delay,
        )


def _describe(result: AttemptResult) -> str:
    text = str(result.outcome) if result.outcome else "no outcome"
    if result.error_code:
        text += f" ({result.error_code}"
        text += f": {result.error_message})" if result.error_message else ")"
    elif result.error_message:
        text += f" ({result.error_message})"
    return text
