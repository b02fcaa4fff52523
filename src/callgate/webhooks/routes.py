"""``/v1/webhook-deliveries``: list deliveries, replay one, or replay every failure since."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from callgate.api.json_route import BoundedJsonRoute
from callgate.api.models import ID_MAX, Cursor, DeliveryId, IsoTime
from callgate.exceptions import InvalidTransition, NotFound, ValidationError
from callgate.gateway import Gateway

router = APIRouter(tags=["webhooks"], route_class=BoundedJsonRoute)


class DeliveryOut(BaseModel):
    id: int
    event_id: int
    job_id: int
    url: str
    format: Literal["standard", "fax_gateway"]
    status: Literal["pending", "delivered", "failed", "stopped"]
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    data: list[DeliveryOut]
    next_cursor: str | None


class Replayed(BaseModel):
    replayed: int


def _gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


@router.get("/webhook-deliveries", response_model=DeliveryPage)
async def list_deliveries(
    request: Request,
    status: Literal["pending", "delivered", "failed", "stopped"] | None = None,
    job_id: Annotated[int | None, Query(ge=1, le=ID_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Webhook deliveries, newest first; ``status=failed`` lists the dead letters."""
    gw = _gateway(request)
    found = await gw.db(
        gw.deliveries.list,
        status=status,
        job_id=job_id,
        limit=limit,
        before_id=None if cursor is None else int(cursor),
    )
    return {
        "data": [d.to_dict() for d in found],
        "next_cursor": str(found[-1].id) if len(found) == limit else None,
    }


@router.post("/webhook-deliveries/replay", response_model=Replayed)
async def replay_since(request: Request, since: IsoTime) -> dict[str, int]:
    """Send again every failed (or stopped) delivery created since ``since``."""
    if since.tzinfo is None:
        raise ValidationError("since must carry a time zone", field="since")
    gw = _gateway(request)
    replayed = await gw.db(gw.deliveries.replay, since=since.timestamp())
    return {"replayed": replayed}


@router.post(
    "/webhook-deliveries/{delivery_id}/replay",
    response_model=DeliveryOut,
    responses={
        404: {"description": "No such delivery"},
        409: {"description": "The delivery is still pending"},
    },
)
async def replay_one(request: Request, delivery_id: DeliveryId) -> dict[str, Any]:
    """Send one delivery again, whatever became of it."""
    gw = _gateway(request)
    return await gw.db(_replay_one, gw, delivery_id)


def _replay_one(gw: Gateway, delivery_id: int) -> dict[str, Any]:
    found = gw.deliveries.get(delivery_id)
    if found is None:
        raise NotFound(f"no webhook delivery {delivery_id}", field="delivery_id")
    if not gw.deliveries.replay(delivery_id=delivery_id):
        raise InvalidTransition(f"delivery {delivery_id} is still pending")
    replayed = gw.deliveries.get(delivery_id)
    assert replayed is not None
    return replayed.to_dict()
