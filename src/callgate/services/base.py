"""What every service holds: the store, the clock, and how to wake the workers."""

from __future__ import annotations

from collections.abc import Callable

from callgate.clock import Clock
from callgate.store.base import Store


class Service:
    """One group of operations over the store (see :mod:`callgate.services`)."""

    def __init__(self, store: Store, clock: Clock, changed: Callable[[], None]) -> None:
        self._store, self._clock, self._changed = store, clock, changed

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._store!r})"
