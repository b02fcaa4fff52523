"""Drop-in for vote/fax_gateway users: its queue message in, its callbacks out.

``POST /compat/fax-gateway/faxes`` takes ``{"fax_id", "to", "pdf_url", "callback_url"}``;
``fax_id`` is the idempotency key. The job's webhooks go to ``callback_url`` in that
project's format (see :mod:`callgate.webhooks.formats`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from callgate.api.jobs import job_out
from callgate.api.json_route import BoundedJsonRoute
from callgate.api.models import FaxGatewayIn, JobOut
from callgate.domain import Kind
from callgate.gateway import Gateway

router = APIRouter(tags=["compat"], route_class=BoundedJsonRoute)
COMPAT = "fax_gateway"


@router.post(
    "/faxes",
    status_code=202,
    response_model=JobOut,
    responses={409: {"description": "fax_id reused for another fax"}},
)
async def fax_gateway_fax(request: Request, body: FaxGatewayIn) -> JSONResponse:
    """Queue a fax from a vote/fax_gateway queue message."""
    gw: Gateway = request.app.state.gateway

    fields: dict[str, Any] = {
        "to": body.to,
        "media_url": await gw.urls.acheck(body.pdf_url, "pdf_url"),
        "idempotency_key": body.fax_id,
        "metadata": {"compat": COMPAT, "fax_id": body.fax_id},
    }
    if body.callback_url is not None:
        fields["callback_url"] = await gw.urls.acheck(body.callback_url, "callback_url")
    result = await gw.submit_async(gw.spec(Kind.FAX, **fields), scope=request.state.api_key.id)
    return JSONResponse(job_out(result.job), status_code=202)
