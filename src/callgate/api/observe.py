"""Seeing a running gateway (issue 17): ``GET /metrics`` (Prometheus, open unless
``CALLGATE_METRICS_TOKEN`` is set) and ``GET /v1/alerts``. The metrics alone, for
``callgate worker --metrics-port``: :func:`callgate.api.app.metrics_app`."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from callgate.api.errors import ERRORS, ApiError
from callgate.api.json_route import BoundedJsonRoute
from callgate.api.models import Cursor
from callgate.gateway import Gateway
from callgate.metrics import CONTENT_TYPE

router = APIRouter(tags=["alerts"], route_class=BoundedJsonRoute)
metrics_router = APIRouter(tags=["health"])


class AlertOut(BaseModel):
    id: int
    rule: str = Field(description="the rule that raised it (see docs/operations.md)")
    subject: str = Field(description="a provider, an endpoint, a batch's id; empty: the gateway")
    message: str
    detail: dict[str, Any] = Field(description="the rule's figures: value, threshold, ...")
    open: bool
    raised_at: datetime
    resolved_at: datetime | None


class AlertPage(BaseModel):
    data: list[AlertOut]
    next_cursor: str | None = Field(description="with status=all: the next page's cursor")


@router.get("/alerts", response_model=AlertPage)
async def list_alerts(
    request: Request,
    status: Annotated[
        Literal["open", "all"], Query(description="open: the alerts open now; all: history")
    ] = "all",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Alerts, newest first: those open now, or every one raised and whether it resolved."""
    gw: Gateway = request.app.state.gateway
    before = None if cursor is None else int(cursor)
    found = await gw.db(gw.alerts.list, open_only=status == "open", limit=limit, before_id=before)
    paged = status == "all" and len(found) == limit
    return {
        "data": [a.to_dict() for a in found],
        "next_cursor": str(found[-1].id) if paged else None,
    }


def _authorized(gw: Gateway, header: str) -> bool:
    token = gw.settings.metrics_token
    if token is None:
        return True
    scheme, _, given = header.partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


@metrics_router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE.split(";")[0]: {}}, "description": "Prometheus text"},
        401: ERRORS[401],
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (text exposition format). Open, unless ``CALLGATE_METRICS_TOKEN``
    is set: then ``Authorization: Bearer <that token>`` (not an API key)."""
    gw: Gateway = request.app.state.gateway
    if not _authorized(gw, request.headers.get("authorization", "")):
        raise ApiError(401, "unauthorized", "the metrics token is required: Authorization: Bearer")
    accept = request.headers.get("accept", "")
    body, content_type = await gw.db(gw.metrics.exposition, accept)
    return Response(body, headers={"Content-Type": content_type})
