"""``/v1``: the guardrails a person steers: the allowlist, suppressions, the breaker."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from callgate.api.json_route import BoundedJsonRoute
from callgate.domain import Kind, normalize_number
from callgate.exceptions import NotFound
from callgate.gateway import Gateway
from callgate.services import allowlist_entry

router = APIRouter(tags=["guardrails"], route_class=BoundedJsonRoute)
KindName = Literal["fax", "sms", "call", "request"]


class AllowlistIn(BaseModel):
    number: str = Field(description="E.164, or a pattern like +1202555*")
    note: str | None = None


class AllowlistEntry(BaseModel):
    number: str
    note: str | None
    created_at: str | None


class AllowlistOut(BaseModel):
    environment: str
    enforced: bool = Field(description="false in production (every number may be contacted)")
    configured: list[str] = Field(description="from CALLGATE_ALLOWLIST (read-only here)")
    data: list[AllowlistEntry]


class SuppressionIn(BaseModel):
    number: str
    kind: KindName | None = Field(None, description="omit: every kind")
    reason: str = "manual"
    detail: str | None = None


class SuppressionOut(BaseModel):
    number: str
    kind: KindName | None
    reason: str
    source: str
    detail: str | None
    created_at: str | None


class SuppressionList(BaseModel):
    data: list[SuppressionOut]


class BreakerIn(BaseModel):
    reason: str = Field(min_length=1, description="recorded in the breaker's history")


BREAKER_RULE = "which rule tripped it: baseline, warmup, ceiling or manual (see docs)"


class BreakerEntry(BaseModel):
    action: str
    reason: str | None
    rule: str | None = Field(description=BREAKER_RULE)
    detail: str | None
    by: str | None
    at: str | None


class BreakerOut(BaseModel):
    state: Literal["open", "closed"]
    reason: str | None
    rule: str | None = Field(description=BREAKER_RULE)
    detail: str | None
    changed_at: str | None
    by: str | None
    history: list[BreakerEntry]


class ProviderOut(BaseModel):
    name: str
    kinds: list[KindName] = Field(description="the kinds of job it sends here")
    state: Literal["closed", "open", "half_open"] = Field(
        description="open: no job is sent through it; half_open: a probe is under way"
    )
    fault: Literal["auth", "access", "outage"] | None = Field(description="why it opened")
    detail: str | None = Field(description="what the provider said")
    opened_at: str | None
    probe_at: str | None = Field(description="when the next probe may go (while open)")
    failed_probes: int
    changed_at: str | None
    waiting: int = Field(description="jobs held until it answers (provider_unavailable)")


class ProviderList(BaseModel):
    data: list[ProviderOut]


def _gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def _actor(request: Request) -> str:
    key = getattr(request.state, "api_key", None)
    return f"api key {key.name} ({key.id})" if key is not None else "api"


@router.get("/allowlist", response_model=AllowlistOut)
async def list_allowlist(request: Request) -> dict[str, Any]:
    """The numbers that may be contacted outside production."""
    gw = _gateway(request)
    return {
        "environment": gw.settings.environment,
        "enforced": gw.guard.rules.allowlisting,
        "configured": sorted(gw.guard.rules.allowlist.entries),
        "data": await gw.db(gw.guardrails.allowlist),
    }


ADDED: dict[int | str, dict[str, Any]] = {
    201: {"description": "Added"},
    200: {"description": "It was there already (unchanged)"},
}
GONE: dict[int | str, dict[str, Any]] = {404: {"description": "It was not there"}}


@router.post("/allowlist", response_model=AllowlistEntry, status_code=201, responses=ADDED)
async def add_allowlist(request: Request, body: AllowlistIn) -> Any:
    gw = _gateway(request)
    number = allowlist_entry(body.number)
    created, entry = await gw.db(_allowlist_add, gw, number, body.note)
    return JSONResponse(entry, status_code=201 if created else 200)


def _allowlist_add(gw: Gateway, number: str, note: str | None) -> tuple[bool, dict[str, Any]]:
    created = gw.guardrails.allow(number, note=note)
    return created, gw.guardrails.allowed(number)


@router.delete("/allowlist/{number}", status_code=204, responses=GONE)
async def remove_allowlist(request: Request, number: str) -> None:
    gw = _gateway(request)
    if not await gw.db(gw.guardrails.disallow, allowlist_entry(number)):
        raise NotFound(f"{number} is not on the stored allowlist", field="number")


@router.get("/suppressions", response_model=SuppressionList)
async def list_suppressions(request: Request, number: str | None = None) -> dict[str, Any]:
    """Numbers callgate will not contact (for one kind, or every kind)."""
    gw = _gateway(request)
    wanted = None if number is None else normalize_number(number, field="number")
    return {"data": await gw.db(gw.guardrails.suppressions, wanted)}


@router.post("/suppressions", response_model=SuppressionOut, status_code=201, responses=ADDED)
async def add_suppression(request: Request, body: SuppressionIn) -> Any:
    gw = _gateway(request)
    number = normalize_number(body.number, field="number")
    detail = body.detail or f"added by {_actor(request)}"
    created, entry = await gw.db(_suppress, gw, number, body, detail)
    return JSONResponse(entry, status_code=201 if created else 200)


def _suppress(
    gw: Gateway, number: str, body: SuppressionIn, detail: str
) -> tuple[bool, dict[str, Any]]:
    created = gw.guardrails.suppress(number, body.kind, body.reason, detail=detail)
    return created, gw.guardrails.suppression(number, body.kind)


@router.delete("/suppressions/{number}", status_code=204, responses=GONE)
async def remove_suppression(
    request: Request, number: str, kind: Annotated[KindName | None, Query()] = None
) -> None:
    """Lift a suppression (``kind``: only that one; omitted: every one of the number)."""
    e164 = normalize_number(number, field="number")
    gw = _gateway(request)
    if not await gw.db(gw.guardrails.unsuppress, e164, None if kind is None else str(Kind(kind))):
        raise NotFound(f"{e164} is not suppressed", field="number")


@router.get("/breaker", response_model=BreakerOut)
async def breaker_status(request: Request) -> dict[str, Any]:
    """The anomaly breaker (and kill switch): open means no new sends."""
    gw = _gateway(request)
    return await gw.db(gw.breaker)


@router.post("/breaker/trip", response_model=BreakerOut)
async def breaker_trip(request: Request, body: BreakerIn) -> dict[str, Any]:
    """The kill switch: stop every new send at once (in-flight jobs finish)."""
    gw = _gateway(request)
    await gw.db(gw.trip_breaker, body.reason, actor=_actor(request))
    return await gw.db(gw.breaker)


@router.post("/breaker/reset", response_model=BreakerOut)
async def breaker_reset(request: Request, body: BreakerIn) -> dict[str, Any]:
    """Close the breaker: sending resumes. Only a person does this, with a reason."""
    gw = _gateway(request)
    await gw.db(gw.reset_breaker, body.reason, actor=_actor(request))
    return await gw.db(gw.breaker)


@router.get("/providers", response_model=ProviderList, tags=["providers"])
async def providers(request: Request) -> dict[str, Any]:
    """Each provider this gateway sends through, and its circuit: open while it refuses
    the credentials or fails for every job (its jobs wait without using attempts)."""
    gw = _gateway(request)
    return {"data": await gw.db(gw.providers)}
