"""The worker's group commit: every task's writes committed together, each task awaiting
its own (mixed into :class:`~callgate.engine.worker.Worker`)."""

from __future__ import annotations

import asyncio
import logging
import random
from contextvars import Context
from typing import TYPE_CHECKING, Any

from callgate.domain import (
    Job,
)
from callgate.exceptions import StoreError
from callgate.store.base import (
    StartAttempt,
    Write,
)

if TYPE_CHECKING:
    from callgate.engine.worker import Worker

log = logging.getLogger("callgate.worker")


async def _write(self: Worker, write: Write) -> Any:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    self._pending_writes.append((self.redactor.write(write), future))
    # a store on threads takes a second batch while the first commits: an attempt row
    # waits for one commit, not for the one before it as well
    self._flushers = {t for t in self._flushers if not t.done()}  # ended, not yet dropped
    if len(self._flushers) < (2 if self.store.offload else 1):
        # a context of its own: not the job task's that started it (its log fields)
        flush = asyncio.create_task(self._flush(), name="callgate-flush", context=Context())
        self._flushers.add(flush)
    return await future


async def _flush(self: Worker) -> None:
    """Commit what the tasks wrote, in batches; writes that come while a batch is
    committing go into the next one (the slower the commit, the bigger the batch)."""
    await asyncio.sleep(0)  # let every task of this turn add its write first
    while self._pending_writes:
        batch, self._pending_writes = self._pending_writes, []
        try:
            await self._commit(batch)
        except Exception as exc:
            await self._salvage(batch, exc)


async def _salvage(
    self: Worker, batch: list[tuple[Write, asyncio.Future[Any]]], exc: Exception
) -> None:
    """A batch failed: one bad write must not sink the others, so each is tried alone
    -- unless the connection was lost, when the batch may have committed after all:
    then an attempt start is never replayed (that could send twice); it fails, and
    its job's lease settles it. The other writes are safe to repeat."""
    unknown = isinstance(exc, StoreError) and exc.maybe_committed
    if len(batch) == 1:
        _fail(batch[0][1], exc)
        return
    for write, future in batch:
        if unknown and isinstance(write, StartAttempt):
            _fail(future, exc)
            continue
        try:
            await self._commit([(write, future)])
        except Exception as one:
            _fail(future, one)


async def _commit(self: Worker, batch: list[tuple[Write, asyncio.Future[Any]]]) -> None:
    results = await self._db(self.store.write_batch, [write for write, _ in batch])
    for callback in self.on_commit:
        callback()
    for (_, future), result in zip(batch, results, strict=True):
        if not future.done():
            future.set_result(result)


# -- one job ------------------------------------------------------------------------


async def _write_until_done(self: Worker, job: Job, write: Write) -> Any:
    """A write after the request went out must not be lost: while the store is down,
    keep trying (the heartbeat keeps the lease meanwhile). A stop cancels this; the
    job's lease then makes it ``uncertain``, never resent blindly."""
    backoff = Backoff()
    while True:
        try:
            return await self._write(write)
        except StoreError as exc:
            delay = backoff.next()
            log.warning("job %s: recording failed (%s); retrying in %.1f s", job.id, exc, delay)
            await asyncio.sleep(delay)


class Backoff:
    """Exponential delays with jitter for a failing store: 0.1 s doubling to ``cap``."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self.first, self.cap, self._next = first, cap, first

    def next(self) -> float:
        delay = self._next * random.uniform(0.8, 1.2)
        self._next = min(self.cap, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self.first


def _fail(future: asyncio.Future[Any], exc: Exception) -> None:
    log.warning("a write failed: %r", exc)
    if not future.done():
        future.set_exception(exc if isinstance(exc, StoreError) else StoreError(repr(exc)))
