"""The audit seam: each provider HTTP exchange (method, URL, status, bodies, duration)
is filed in the calling task's :func:`capture` box, which the worker stores per attempt
(credentials redacted there, see :mod:`callgate.engine.audit`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True, slots=True)
class Exchange:
    method: str
    url: str
    status: int | None
    request: str | None
    response: str | None
    duration: float
    error: str | None = None


_box: ContextVar[list[Exchange] | None] = ContextVar("callgate_audit", default=None)


@contextlib.contextmanager
def capture() -> Iterator[list[Exchange]]:
    """Collect the exchanges made inside the block (this task only)."""
    box: list[Exchange] = []
    token = _box.set(box)
    try:
        yield box
    finally:
        _box.reset(token)


def record(exchange: Exchange) -> None:
    box = _box.get()
    if box is not None:
        box.append(exchange)


def _text(raw: bytes | str | None) -> str | None:
    if raw is None:
        return None
    return raw if isinstance(raw, str) else raw.decode("utf-8", "replace")


async def _on_response(response: httpx.Response) -> None:
    await response.aread()
    request = response.request
    started = request.extensions.get("callgate_started")
    duration = time.perf_counter() - started if isinstance(started, float) else 0.0
    record(
        Exchange(
            request.method,
            str(request.url),
            response.status_code,
            _text(request.content),
            _text(response.content),
            duration,
        )
    )


async def _on_request(request: httpx.Request) -> None:
    request.extensions["callgate_started"] = time.perf_counter()


def audited(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Make ``client`` file its exchanges in the audit box (idempotent)."""
    hooks: dict[str, list[Any]] = client.event_hooks
    if _on_response not in hooks.get("response", []):
        client.event_hooks = {
            "request": [*hooks.get("request", []), _on_request],
            "response": [*hooks.get("response", []), _on_response],
        }
    return client
