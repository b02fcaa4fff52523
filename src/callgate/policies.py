"""Policies as plain values: what the settings say and the engine applies — retry
policies per kind, the allowlist, caps, quiet windows. Both :mod:`callgate.config` (which
parses them) and the engine (which enforces them) import this module; it imports only
the domain.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from callgate.domain import Kind

# -- retrying --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KindPolicy:
    max_attempts: int
    retry_delay: float  # after busy / no_answer / line_failed
    jitter: float = 0.1  # ± fraction on retry_delay
    backoff_base: float = 5.0  # provider_error: base × 2^(n-1), ± backoff_jitter
    backoff_max: float = 600.0
    backoff_jitter: float = 0.2


DEFAULTS: Mapping[Kind, KindPolicy] = {
    Kind.FAX: KindPolicy(max_attempts=20, retry_delay=600.0),
    Kind.SMS: KindPolicy(max_attempts=5, retry_delay=60.0),
    Kind.CALL: KindPolicy(max_attempts=3, retry_delay=300.0),
    Kind.REQUEST: KindPolicy(max_attempts=5, retry_delay=30.0),
}


# -- the allowlist ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Allowlist:
    """E.164 numbers or shell-style patterns (``+1202555*``; ``*`` allows every number,
    an explicit choice for load tests). Used only outside production."""

    entries: frozenset[str] = frozenset()

    def allows(self, number: str) -> bool:
        if number in self.entries:
            return True
        return any(_is_pattern(e) and fnmatch.fnmatchcase(number, e) for e in self.entries)

    def with_(self, more: Iterable[str]) -> Allowlist:
        return Allowlist(self.entries | frozenset(more))


def _is_pattern(entry: str) -> bool:
    return any(ch in entry for ch in "*?[")


# -- caps ------------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CAP = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")


@dataclass(frozen=True, slots=True)
class Cap:
    """At most ``limit`` jobs that reached the provider per ``window`` seconds (a job
    counts once, from its first attempt: a retry is not a new message)."""

    limit: int
    window: float

    @classmethod
    def parse(cls, text: str) -> Cap:
        """``"3/24h"``, ``"20/1d"``, ``"1/30m"``, ``"5/h"``."""
        found = _CAP.match(text)
        if found is None:
            raise ValueError(f"{text!r} is not a cap like '3/24h' (units s, m, h, d)")
        count, size, unit = found.groups()
        window = int(size or 1) * _UNITS[unit]
        if window <= 0:
            raise ValueError(f"{text!r}: a cap's window must be longer than zero")
        return cls(int(count), float(window))

    def __str__(self) -> str:
        for unit in ("h", "m"):
            if self.window % _UNITS[unit] == 0:
                return f"{self.limit}/{int(self.window // _UNITS[unit])}{unit}"
        return f"{self.limit}/{int(self.window)}s"


# -- quiet hours -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuietWindow:
    """Local times between ``start`` and ``end`` (``21:00-08:00`` spans midnight)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietWindow:
        try:
            a, b = (part.strip() for part in text.split("-"))
            start, end = time.fromisoformat(a), time.fromisoformat(b)
        except ValueError:
            raise ValueError(f"{text!r} is not a window like '21:00-08:00'") from None
        if start == end:
            raise ValueError(f"{text!r}: start and end are the same")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def ends_after(self, local: datetime) -> datetime:
        """The end of the quiet window ``local`` is in (a local, aware datetime)."""
        day = local.date()
        if self.start > self.end and local.timetz().replace(tzinfo=None) >= self.start:
            day += timedelta(days=1)
        return datetime.combine(day, self.end).replace(tzinfo=local.tzinfo)
