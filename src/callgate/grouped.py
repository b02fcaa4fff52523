"""Store calls from asyncio code, grouped: concurrent submits share one commit (group
commit), concurrent API key look-ups one read.

The HTTP API hands every submit to a :class:`Grouped` of :func:`commit_group`. The
submits that arrive while a commit runs wait for the next one, which stores them all in
one transaction per API key (one round of statements and one flush for the lot, as the
worker commits its writes). Each request still gets its own answer: when a group fails
as a whole (an idempotency key reused for another request, say), its requests are
stored one by one, so a bad request fails alone and the others get what they would have
got by themselves. A request joins the group after the one under way, never the one
under way: what it reads or writes happens after it arrived. The store is called through
the gateway's :class:`~callgate.store.offload.StoreCalls`: on a thread for PostgreSQL,
in place for SQLite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar, Union

from callgate.domain import ApiKey, JobSpec
from callgate.exceptions import StoreError
from callgate.store import Store, SubmitResult
from callgate.store.offload import StoreCalls

I = TypeVar("I")  # noqa: E741 (an item)
R = TypeVar("R")
#: the store's submit of one API key's specs (the gateway's, without waking anyone)
SubmitMany = Callable[[Sequence[JobSpec], str], list[SubmitResult]]


@dataclass(slots=True)
class _Pending(Generic[I, R]):
    item: I
    future: asyncio.Future[R] = field(repr=False)


class Grouped(Generic[I, R]):
    """``await grouped(item)``: ``run`` called on the items of the same moment at once,
    through ``db``; each item's own result (or exception: ``run`` returns, per item,
    a result or the exception that item raises)."""

    def __init__(
        self,
        db: StoreCalls,
        run: Callable[[list[I]], list[R | Exception]],
        *,
        on_done: Callable[[], None] = lambda: None,
        flushers: int = 1,
        name: str = "callgate-group",
    ) -> None:
        self._db = db
        self._run = run
        self._on_done = on_done
        self._max_flushers = flushers
        self._name = name
        self._pending: list[_Pending[I, R]] = []
        self._flushers: set[asyncio.Task[None]] = set()
        #: how many groups ran, and how many items they held (for tests and profiles)
        self.groups = 0
        self.items = 0

    def __repr__(self) -> str:
        return f"Grouped({self._name!r}, pending={len(self._pending)})"

    async def __call__(self, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(item, future))
        # a store on threads takes a second group while the first runs: a request waits
        # for one group, not for the one before it as well (nor for a slow call in it)
        self._flushers = {t for t in self._flushers if not t.done()}
        if len(self._flushers) < self._max_flushers:
            self._flushers.add(asyncio.create_task(self._flush(), name=self._name))
        return await future

    async def _flush(self) -> None:
        """Run what came, in groups: items that come while a group runs go into the next
        one (the slower the store, the bigger the group)."""
        await asyncio.sleep(0)  # let every request of this turn join first
        while self._pending:
            group, self._pending = self._pending, []
            try:
                outcomes = await self._db(self._run, [p.item for p in group])
            except Exception as exc:  # not one of an item's own (the pool is closed)
                outcomes = [exc] * len(group)
            except BaseException:  # cancelled: the loop is going away
                for p in group:
                    p.future.cancel()
                raise
            self.groups += 1
            self.items += len(group)
            self._on_done()
            for p, outcome in zip(group, outcomes, strict=True):
                if p.future.done():  # the request went away meanwhile (a job stays made)
                    continue
                if isinstance(outcome, Exception):
                    p.future.set_exception(outcome)
                else:
                    p.future.set_result(outcome)


# -- submits ----------------------------------------------------------------------------

SubmitOutcome = Union[SubmitResult, Exception]  # noqa: UP007 (a runtime alias)


def commit_group(
    submit_many: SubmitMany, items: Sequence[tuple[JobSpec, str]]
) -> list[SubmitOutcome]:
    """Store ``items`` (spec, scope): one ``submit_many`` per scope; each item's result,
    or the exception that item alone raises."""
    out: list[SubmitOutcome | None] = [None] * len(items)
    by_scope: dict[str, list[int]] = {}
    for i, (_, scope) in enumerate(items):
        by_scope.setdefault(scope, []).append(i)
    for scope, indexes in by_scope.items():
        try:
            stored = submit_many([items[i][0] for i in indexes], scope)
        except Exception as exc:
            # the connection went while committing: the group may be stored, and storing
            # its requests again could make each twice; each gets the error, as alone
            lost = isinstance(exc, StoreError) and exc.maybe_committed
            for i in indexes:
                out[i] = exc if lost or len(indexes) == 1 else _alone(submit_many, items[i])
            continue
        for i, result in zip(indexes, stored, strict=True):
            out[i] = result
    return [o for o in out if o is not None]


def _alone(submit_many: SubmitMany, item: tuple[JobSpec, str]) -> SubmitOutcome:
    try:
        return submit_many([item[0]], item[1])[0]
    except Exception as exc:
        return exc


# -- API key look-ups -------------------------------------------------------------------


def look_up_keys(store: Store, hashes: Sequence[str]) -> list[ApiKey | Exception | None]:
    """The key of each token hash (None: unknown or revoked), one read per distinct hash."""
    found: dict[str, ApiKey | Exception | None] = {}
    for token_hash in hashes:
        if token_hash not in found:
            try:
                found[token_hash] = store.api_key_by_hash(token_hash)
            except Exception as exc:
                found[token_hash] = exc
    return [found[h] for h in hashes]
