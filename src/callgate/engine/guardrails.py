"""Guardrails: the rules that refuse or hold a job before it reaches the provider.

Pure decisions, no I/O: the allowlist outside production, the suppression list,
per-recipient caps, quiet hours in the recipient's local time, and the anomaly breaker.
The caller gathers the facts (from the store) and the time (from the injected clock);
each rule answers ``None`` (send) or a :class:`~callgate.domain.Decision` that says
``blocked`` or ``held`` (until when) with a stable reason code and a sentence.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone

from callgate.domain import Decision, Job, Kind, Status
from callgate.exceptions import ConfigurationError
from callgate.policies import Allowlist, Cap, QuietWindow
from callgate.store.base import SendCounts

log = logging.getLogger("callgate.guardrails")


class GuardReason:
    """Stable reason codes of the guardrails (on the job, its events and webhooks)."""

    NOT_ALLOWLISTED = "not_allowlisted"
    SUPPRESSED = "suppressed"
    OVER_CAP = "over_cap"
    QUIET_HOURS = "quiet_hours"
    BREAKER_OPEN = "breaker_open"


#: held jobs with these reasons go back to the queue by themselves when ``run_at`` comes
RELEASABLE = (GuardReason.OVER_CAP, GuardReason.QUIET_HOURS)


# -- the allowlist ---------------------------------------------------------------------


def not_allowlisted(number: str, environment: str) -> Decision:
    return Decision(
        Status.BLOCKED,
        GuardReason.NOT_ALLOWLISTED,
        f"{number} is not on the allowlist, and outside production (environment "
        f"{environment}) only allowlisted numbers may be contacted",
    )


def suppressed(number: str, kind: Kind, why: str | None) -> Decision:
    because = f" ({why})" if why else ""
    return Decision(
        Status.BLOCKED,
        GuardReason.SUPPRESSED,
        f"{number} is on the suppression list for {kind}{because}",
    )


# -- caps ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CapUse:
    """Other jobs to one number, of one kind, that reached the provider in the window."""

    count: int
    oldest: float | None  # when the oldest of them first did (unix seconds)


def over_cap(
    number: str,
    kind: Kind,
    cap: Cap,
    use: CapUse,
    now: float,
    *,
    block: bool,
    same: bool = False,
) -> Decision | None:
    """``None`` while under the cap; else held until the oldest counted job leaves the
    window (or blocked, when so configured). ``same``: the cap on identical jobs (the
    same content to the same number)."""
    if use.count < cap.limit:
        return None
    if same:
        detail = (
            f"{number} already got this very {kind} {use.count} time(s) within {cap}, "
            f"the cap on identical {kind} jobs"
        )
    else:
        detail = (
            f"{number} already got {use.count} {kind} job(s) within {cap}, "
            f"the per-recipient cap for {kind}"
        )
    if block:
        return Decision(Status.BLOCKED, GuardReason.OVER_CAP, detail)
    until = (use.oldest if use.oldest is not None else now) + cap.window
    until = max(until, now + 1.0)
    return Decision(
        Status.HELD,
        GuardReason.OVER_CAP,
        f"{detail}; held until {_utc(until)}",
        run_at=until,
    )


# -- quiet hours -----------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def zone_for(number: str, default: str) -> str:
    """The IANA time zone of a number's region; ``default`` when it has no single one."""
    try:
        zones = pn_timezone.time_zones_for_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return default
    if len(zones) == 1 and zones[0] != pn_timezone.UNKNOWN_TIMEZONE:
        return str(zones[0])
    return default


@functools.lru_cache(maxsize=1024)
def load_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"{name!r} is not an IANA time zone", field="default_timezone"
        ) from None


def quiet_hours(
    number: str, kind: Kind, window: QuietWindow, now: float, default_zone: str
) -> Decision | None:
    """Held until the window ends if ``now`` is inside it in the recipient's local time."""
    zone_name = zone_for(number, default_zone)
    local = datetime.fromtimestamp(now, load_zone(zone_name))
    if not window.contains(local.time()):
        return None
    until = window.ends_after(local).timestamp()
    return Decision(
        Status.HELD,
        GuardReason.QUIET_HOURS,
        f"it is {local:%H:%M} for {number} ({zone_name}), inside the quiet hours "
        f"{window} for {kind}; held until {local.fromtimestamp(until, local.tzinfo):%H:%M} "
        "local time",
        run_at=until,
    )


# -- the anomaly breaker ---------------------------------------------------------------


class BreakerRule:
    """Which rule tripped the breaker (``rule`` in ``breaker.tripped`` and the API)."""

    BASELINE = "baseline"  # unintended sends far above the trailing baseline
    WARMUP = "warmup"  # a new deployment sending faster than its configured rate
    CEILING = "ceiling"  # every send together above the absolute ceiling
    MANUAL = "manual"  # a person: the kill switch


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """The anomaly breaker. Sends of a batch are intended (a person declared them, at
    the batch's rate or the account's): only the others, *unintended* sends, are weighed
    against the baseline. It trips when

    * ``ceiling``: all sends of the last minute exceed the absolute ceiling;
    * ``baseline``: unintended sends of the last minute are at least ``min_per_minute``
      and exceed ``factor`` × the baseline: the mean per minute of unintended sends over
      the ``baseline_minutes`` before it, never taken as less than ``baseline_floor``
      (a quiet hour is not a baseline of zero);
    * ``warmup``: until the database holds a whole baseline of history, the baseline rule
      waits, and only unintended sends above the configured account rate (``account_rate``
      per second, ``None``: unlimited) trip it: a first campaign or a first busy minute
      within the rate is not an anomaly.
    """

    enabled: bool = True
    factor: float = 10.0
    ceiling: int | None = None
    baseline_minutes: int = 15
    min_per_minute: int = 60
    baseline_floor: float = 30.0
    account_rate: float | None = None

    def trip_level(self, baseline_per_minute: float) -> float:
        """About the sends per minute above which it trips, given the mean per minute of
        the baseline: ``factor`` × that mean (never taken as less than
        ``baseline_floor``), at least ``min_per_minute``, at most the ceiling (the line
        the dashboard draws under the sends)."""
        level = max(
            float(self.min_per_minute), self.factor * max(self.baseline_floor, baseline_per_minute)
        )
        return level if self.ceiling is None else min(level, float(self.ceiling))

    def check(
        self, counts: SendCounts, now: float, *, ratio: bool = True
    ) -> tuple[str, str] | None:
        """(rule, why it trips) or ``None``. Without ``ratio`` (for a while after a person
        reset it, having accepted the current rate) only the ceiling applies."""
        if not self.enabled:
            return None
        last = counts.last_minute
        if self.ceiling is not None and last > self.ceiling:
            why = f"{last} sends in the last minute, above the ceiling of {self.ceiling} per minute"
            return BreakerRule.CEILING, why
        if not ratio:
            return None
        unintended = counts.unintended
        history = 60.0 * (self.baseline_minutes + 1)
        if counts.first_at is None or now - counts.first_at < history:
            limit = None if self.account_rate is None else self.account_rate * 60
            if limit is not None and unintended > limit and unintended >= self.min_per_minute:
                return BreakerRule.WARMUP, (
                    f"{unintended} sends not of a batch in the last minute, above the "
                    f"configured rate of {limit:g} per minute, before a baseline is known"
                )
            return None
        seen = counts.baseline / self.baseline_minutes
        baseline = max(seen, self.baseline_floor)
        if unintended >= self.min_per_minute and unintended > self.factor * baseline:
            return BreakerRule.BASELINE, (
                f"{unintended} sends not of a batch in the last minute, more than "
                f"{self.factor:g}× the trailing baseline of {seen:.1f} per minute"
                + (f" (counted as at least {self.baseline_floor:g})" if seen < baseline else "")
            )
        return None


def breaker_open(detail: str | None) -> Decision:
    """A claimed job put back in the queue, unsent, because the breaker is open."""
    return Decision(
        Status.QUEUED,
        GuardReason.BREAKER_OPEN,
        f"not sent: the breaker is open ({detail or 'tripped'}); it stays queued until a "
        "person resets the breaker",
    )


@dataclass(frozen=True, slots=True)
class BreakerState:
    open: bool
    reason: str | None = None
    detail: str | None = None
    changed_at: float | None = None
    by: str | None = None
    rule: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "state": "open" if self.open else "closed",
            "reason": self.reason,
            "rule": self.rule,
            "detail": self.detail,
            "changed_at": _utc(self.changed_at) if self.changed_at is not None else None,
            "by": self.by,
        }


# -- all together ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GuardFacts:
    """What the store knows about one job's number at one instant."""

    allowlisted: bool = False  # on the stored allowlist (the configured one is separate)
    suppressed: str | None = None  # why, when the number is suppressed for this kind
    is_suppressed: bool = False
    cap_use: CapUse = CapUse(0, None)
    same_use: CapUse = CapUse(0, None)  # jobs with this job's very content
    breaker: BreakerState = BreakerState(False)


@dataclass(frozen=True, slots=True)
class Guardrails:
    """The configured rules; :meth:`at_submit` and :meth:`at_send` decide."""

    environment: str = "development"
    allowlist: Allowlist = field(default_factory=Allowlist)
    caps: Mapping[Kind, Cap] = field(default_factory=dict)
    #: caps on identical jobs: the same content to the same number (a runaway duplicate)
    same: Mapping[Kind, Cap] = field(default_factory=dict)
    cap_blocks: bool = False
    quiet: Mapping[Kind, QuietWindow] = field(default_factory=dict)
    default_timezone: str = "UTC"
    breaker: BreakerPolicy = BreakerPolicy()

    @property
    def allowlisting(self) -> bool:
        return self.environment != "production"

    def refusal(self, job: Job, facts: GuardFacts) -> Decision | None:
        """Blocked (not allowlisted, suppressed) or ``None``: checked at submit and send."""
        if job.to is None:
            return None  # a provider request to no number (a Lookup by other means)
        if self.allowlisting and not (facts.allowlisted or self.allowlist.allows(job.to)):
            return not_allowlisted(job.to, self.environment)
        if facts.is_suppressed:
            return suppressed(job.to, job.kind, facts.suppressed)
        return None

    def fictional(self, number: str) -> bool:
        """The simulator's test numbers in development: no person answers them, so the
        rules that protect people (quiet hours, caps) do not apply to them."""
        return self.environment == "development" and fnmatch.fnmatchcase(number, SIMULATOR_NUMBERS)

    def at_send(self, job: Job, facts: GuardFacts, now: float) -> Decision | None:
        """The last word before a request goes out (fail closed)."""
        if facts.breaker.open:
            return breaker_open(facts.breaker.detail)
        refused = self.refusal(job, facts)
        if refused is not None or job.to is None or self.fictional(job.to):
            return refused
        window = self.quiet.get(job.kind)
        if window is not None:
            held = quiet_hours(job.to, job.kind, window, now, self.default_timezone)
            if held is not None:
                return held
        capped = ((self.caps, facts.cap_use, False), (self.same, facts.same_use, True))
        for caps, use, same in capped:
            cap = caps.get(job.kind)
            over = cap and over_cap(
                job.to, job.kind, cap, use, now, block=self.cap_blocks, same=same
            )
            if over:
                return over
        return None


SIMULATOR_NUMBERS = "+1500555????"


def _utc(ts: float) -> str:
    from callgate.domain import from_ts, iso

    return iso(from_ts(ts)) or ""


__all__ = [
    "RELEASABLE",
    "SIMULATOR_NUMBERS",
    "Allowlist",
    "BreakerPolicy",
    "BreakerRule",
    "BreakerState",
    "Cap",
    "CapUse",
    "GuardFacts",
    "GuardReason",
    "Guardrails",
    "QuietWindow",
    "breaker_open",
    "over_cap",
    "quiet_hours",
    "zone_for",
]
