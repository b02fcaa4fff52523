"""The HTTP seam under the twilio SDK: aiohttp with real timeouts, responses recorded.

The SDK's own ``AsyncTwilioHttpClient`` sends no timeout unless each call passes one,
and its errors (``TwilioRestException``) drop the response headers, so a 429's
``Retry-After`` would be lost. :class:`AiohttpTwilioClient` is the default transport;
:class:`RecordingClient` wraps any ``AsyncHttpClient`` (the injection point for tests or
a proxy) and keeps each response in the calling task's :func:`capture` box.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlencode

import aiohttp
from multidict import CIMultiDict
from twilio.http import AsyncHttpClient
from twilio.http.response import Response

from callgate.providers import audit

log = logging.getLogger("callgate.providers.twilio_http")

_box: ContextVar[list[Response] | None] = ContextVar("callgate_twilio_responses", default=None)


@contextlib.contextmanager
def capture() -> Iterator[list[Response]]:
    """Collect the responses of the SDK calls made inside the block (this task only)."""
    box: list[Response] = []
    token = _box.set(box)
    try:
        yield box
    finally:
        _box.reset(token)


def basic_auth(user: str, password: str) -> str:
    """An ``Authorization: Basic`` value (aiohttp's ``BasicAuth`` is deprecated)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _pairs(values: Mapping[str, object] | None) -> list[tuple[str, str]]:
    """Form/query pairs; a list value becomes repeated keys (``MediaUrl``)."""
    pairs: list[tuple[str, str]] = []
    for key, value in (values or {}).items():
        for one in value if isinstance(value, list | tuple) else [value]:
            if one is not None:
                pairs.append((key, str(one)))
    return pairs


class AiohttpTwilioClient(AsyncHttpClient):  # type: ignore[misc]
    """An ``AsyncHttpClient`` on one aiohttp session, created on first use."""

    def __init__(
        self, *, timeout: float = 30.0, session: aiohttp.ClientSession | None = None
    ) -> None:
        super().__init__(log, True, timeout)
        self._session = session
        self._owns_session = session is None

    def __repr__(self) -> str:
        return f"AiohttpTwilioClient(timeout={self.timeout})"

    async def request(
        self,
        method: str,
        uri: str,
        params: Mapping[str, object] | None = None,
        data: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        body = urlencode(_pairs(data)) if data else None
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = basic_auth(*auth)
        async with self._session.request(
            method.upper(),
            uri,
            params=_pairs(params),
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
            allow_redirects=allow_redirects,
        ) as response:
            text = await response.text()
            return Response(response.status, text, CIMultiDict(response.headers))

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None


class RecordingClient(AsyncHttpClient):  # type: ignore[misc]
    """Delegates to ``inner`` and files each response in the current :func:`capture`."""

    def __init__(self, inner: Any) -> None:
        super().__init__(log, True, getattr(inner, "timeout", None))
        self.inner = inner

    def __repr__(self) -> str:
        return f"RecordingClient({self.inner!r})"

    async def request(self, method: str, uri: str, **kwargs: Any) -> Response:
        started = time.perf_counter()
        try:
            response: Response = await self.inner.request(method, uri, **kwargs)
        except Exception as exc:
            self._audit(method, uri, kwargs, None, started, repr(exc))
            raise
        self._audit(method, uri, kwargs, response, started, None)
        box = _box.get()
        if box is not None:
            box.append(response)
        return response

    @staticmethod
    def _audit(
        method: str,
        uri: str,
        kwargs: Mapping[str, Any],
        response: Response | None,
        started: float,
        error: str | None,
    ) -> None:
        params, data = kwargs.get("params"), kwargs.get("data")
        url = uri + ("?" + urlencode(_pairs(params)) if params else "")
        audit.record(
            audit.Exchange(
                method.upper(),
                url,
                None if response is None else int(response.status_code),
                urlencode(_pairs(data)) if data else None,
                None if response is None else str(response.text),
                time.perf_counter() - started,
                error,
            )
        )

    async def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            await close()


def header(response: Response | None, name: str) -> str | None:
    """One header of a recorded response, case-insensitively."""
    if response is None or response.headers is None:
        return None
    headers = response.headers
    value = headers.get(name)
    if value is None and isinstance(headers, Mapping):
        wanted = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == wanted), None)
    return None if value is None else str(value)
