"""The Provider protocol: send a job, look up an attempt's status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from callgate.domain import AttemptResult, Job

#: called with a provider reference when that attempt's status changed (a callback came)
StatusListener = Callable[[str], None]


class Provider(Protocol):
    name: str

    async def send(self, job: Job) -> AttemptResult:
        """Make the request. ``outcome=None`` means accepted and still under way.

        Network and HTTP failures are returned as outcomes (``provider_error``,
        ``rate_limited``), never raised; an exception means the adapter itself broke,
        and the engine treats the attempt as ``unknown``.
        """
        ...

    async def status(self, job: Job, ref: str) -> AttemptResult:
        """The attempt's current status (``outcome=None`` while still under way)."""
        ...

    def set_listener(self, listener: StatusListener | None) -> None:
        """Register who to tell when a status callback arrives (pushed, not polled)."""
        ...

    async def aclose(self) -> None: ...
