"""How the sender POSTs: aiohttp in production, any httpx transport when one is given.

httpx's connection pool costs about a millisecond of CPU per request and more as
concurrency grows (170 requests/s at 50 connections on a 2-core machine); aiohttp does
several thousand. Tests inject an ``httpx.MockTransport`` instead of a network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    text: str  # the start of the body, for the delivery's last_error


class PostFailed(Exception):
    """No answer: the connection failed or timed out."""


class Poster(Protocol):
    async def post(self, url: str, body: str, headers: Mapping[str, str]) -> Answer: ...

    async def __aenter__(self) -> Poster: ...

    async def __aexit__(self, *exc: object) -> None: ...


class AiohttpPoster:
    def __init__(self, *, timeout: float, connections: int) -> None:
        self._timeout, self._connections = timeout, connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AiohttpPoster:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, url: str, body: str, headers: Mapping[str, str]) -> Answer:
        assert self._session is not None
        try:
            async with self._session.post(
                url, data=body.encode(), headers=dict(headers), allow_redirects=False
            ) as response:
                text = (await response.read())[:200].decode(errors="replace")
                return Answer(response.status, dict(response.headers), text)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise PostFailed(f"{type(exc).__name__}: {exc}") from exc


class HttpxPoster:
    def __init__(self, transport: httpx.AsyncBaseTransport, *, timeout: float) -> None:
        self._client = httpx.AsyncClient(
            transport=transport, timeout=timeout, follow_redirects=False
        )

    async def __aenter__(self) -> HttpxPoster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def post(self, url: str, body: str, headers: Mapping[str, str]) -> Answer:
        try:
            response = await self._client.post(url, content=body, headers=dict(headers))
        except httpx.HTTPError as exc:
            raise PostFailed(f"{type(exc).__name__}: {exc}") from exc
        return Answer(response.status_code, response.headers, response.text[:200])
