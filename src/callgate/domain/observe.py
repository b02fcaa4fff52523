"""What the metrics and the alerts read of a running gateway (issue 17): one
:class:`Observation` of the database, the same for every process, and the
:class:`Alert` records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from callgate.domain.times import from_ts, iso


@dataclass(frozen=True, slots=True)
class Observation:
    """The gateway's state now, as the database holds it (each by an indexed query whose
    work does not grow with the history of finished jobs)."""

    now: float
    #: jobs per non-terminal status (queued, in_flight, retrying, held, uncertain)
    jobs: dict[str, int]
    #: the ``run_at`` of the oldest job due and waiting for a claim (None: none waits)
    oldest_due: float | None
    #: the same, of the jobs whose group has nothing in flight (None: none waits so)
    oldest_free: float | None
    #: the latest heartbeat of any worker (None: no worker has beaten)
    last_heartbeat: float | None
    #: jobs that became ``failed`` (dead letters) since ``now - dead_letter_window``
    dead_letters: int
    breaker_open: bool
    #: open provider circuits: name -> (fault, detail)
    providers_down: dict[str, tuple[str | None, str | None]]
    #: running batches: id -> jobs per status
    batches: dict[int, dict[str, int]]
    #: webhook endpoints with a delivery still failing: url -> when the oldest was created
    failing_endpoints: dict[str, float]
    #: open alerts per rule
    alerts_open: dict[str, int] = field(default_factory=dict)

    @property
    def oldest_queued_seconds(self) -> float:
        """How long the oldest job due has waited for a claim (0: none waits)."""
        return 0.0 if self.oldest_due is None else max(0.0, self.now - self.oldest_due)

    @property
    def oldest_free_seconds(self) -> float:
        """How long the oldest job due with nothing ahead of it in its line (its group
        has nothing in flight) has waited: what no claim took (0: none waits so)."""
        return 0.0 if self.oldest_free is None else max(0.0, self.now - self.oldest_free)


@dataclass(frozen=True, slots=True)
class Alert:
    """One raise of an alert rule about a subject (a provider, an endpoint, a batch; ``""``
    for the gateway as a whole), open until ``resolved_at``."""

    id: int
    rule: str
    subject: str
    message: str
    detail: dict[str, Any]
    raised_at: float
    resolved_at: float | None = None

    @property
    def open(self) -> bool:
        return self.resolved_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "subject": self.subject,
            "message": self.message,
            "detail": self.detail,
            "open": self.open,
            "raised_at": iso(from_ts(self.raised_at)),
            "resolved_at": None if self.resolved_at is None else iso(from_ts(self.resolved_at)),
        }
