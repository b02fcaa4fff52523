"""The Provider protocol: send a job, look up an attempt's status, find attempts again."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple, Protocol, runtime_checkable

from callgate.domain import AttemptResult, Fault, Job
from callgate.exceptions import ProviderError

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


def http_fault(status: int | None) -> Fault | None:
    """What an HTTP error status says of the provider itself, whatever the vendor: 401
    (credentials refused) → auth, 403 → access, 5xx or no answer → outage."""
    if status == 401:
        return Fault.AUTH
    if status == 403:
        return Fault.ACCESS
    if status is None or status >= 500:
        return Fault.OUTAGE
    return None


class Found(NamedTuple):
    """One record the provider holds for a job's number: its reference and status."""

    ref: str
    result: AttemptResult


class CannotReconcile(ProviderError):
    """The provider cannot list this kind of job: absence cannot be proven."""

    code = "cannot_reconcile"


@runtime_checkable
class Reconciling(Protocol):
    """A provider that can list what it holds for a job's number (reconciliation)."""

    async def find(self, job: Job, since: float, until: float) -> list[Found]:
        """Every record to ``job.to`` of ``job.kind`` created in [since, until] (unix
        seconds), oldest first, with its current status. An empty list proves that no
        attempt reached the provider in that window; :class:`CannotReconcile` when the
        provider cannot tell."""
        ...


class PushedStatuses:
    """Final statuses pushed by verified callbacks, kept for the tracker's next poll.

    ``push`` stores a final result and tells the listener; ``status()`` takes it with
    ``pop`` instead of asking the provider again. Bounded: the oldest are forgotten
    (a callback for an attempt no worker in this process tracks is never popped).
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.listener: StatusListener | None = None
        self._results: OrderedDict[str, AttemptResult] = OrderedDict()

    def __repr__(self) -> str:
        return f"PushedStatuses({len(self._results)} waiting)"

    def push(self, ref: str, result: AttemptResult) -> None:
        if result.outcome is None:
            return  # still under way: nothing for the tracker to act on
        self._results[ref] = result
        self._results.move_to_end(ref)
        while len(self._results) > self.limit:
            self._results.popitem(last=False)
        if self.listener is not None:
            self.listener(ref)

    def pop(self, ref: str) -> AttemptResult | None:
        return self._results.pop(ref, None)
