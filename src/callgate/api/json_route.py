"""JSON request bodies within :mod:`callgate.jsonlimits`' limits, for every route.

FastAPI reads a JSON body with ``json.loads``: no nesting limit (a deep body costs a
``RecursionError``), and ``NaN``/``1e400`` become floats that cannot be written back as
JSON. :class:`BoundedJsonRoute` (every router's ``route_class``) reads it with
:func:`callgate.jsonlimits.loads` instead, and answers a body beyond the limits with
400 ``too_deep`` / ``invalid_number`` before the route runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from callgate import jsonlimits

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class BoundedJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_bounded_json"):
            self._bounded_json = jsonlimits.loads(await self.body(), field="body")
        return self._bounded_json


def _is_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class BoundedJsonRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if self.body_field is None:  # it reads its body itself (a batch upload, streamed)
            return handler

        async def bounded(request: Request) -> Response:
            request = BoundedJsonRequest(request.scope, request.receive)
            if _is_json(request) and await request.body():
                # beyond a limit: the CallgateError's own 400; not JSON at all (ValueError):
                # FastAPI's own 400 says so
                with contextlib.suppress(ValueError):
                    await request.json()
            return await handler(request)

        return bounded
