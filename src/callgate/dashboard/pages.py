"""The dashboard's pages (GET): each reads what it shows in one store trip (``gw.db``)
through the service layer, and renders a template."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from callgate.dashboard.common import gateway, read, render
from callgate.dashboard.plots import Series, breaker_threshold, line_plot
from callgate.dashboard.session import Viewer, viewer
from callgate.domain import RETRYABLE, Kind, Status, normalize_number
from callgate.exceptions import ValidationError
from callgate.gateway import Gateway

router = APIRouter(include_in_schema=False)
Who = Annotated[Viewer, Depends(viewer)]
#: rows per page of the jobs list
JOBS_PAGE = 50


def _overview(gw: Gateway) -> dict[str, Any]:
    data = gw.views.overview()
    return data | {
        "breaker": gw.breaker(),
        "providers": gw.providers(),
    }


def sends_plot(sends: list[int], gw: Gateway) -> Any:
    policy = gw.guard.rules.breaker
    n = len(sends)
    threshold = breaker_threshold(sends, policy)
    series = [Series("sends per minute", [(i, float(v)) for i, v in enumerate(sends)])]
    if policy.enabled:
        series.append(
            Series("breaker threshold", [(i, v) for i, v in enumerate(threshold)], dashed=True)
        )
    hours = n // 60
    ticks = [(n - 60 * h, f"-{h} h" if h else "now") for h in range(hours, -1, -6)]
    return line_plot(
        series,
        title=f"Sends per minute over the last {hours} hours, with the breaker's threshold",
        x_label="time",
        y_label="sends/min",
        x_ticks=ticks,
        x_range=(0, max(n - 1, 1)),
    )


@router.get("", response_class=HTMLResponse)
async def overview(request: Request, who: Who) -> HTMLResponse:
    gw = gateway(request)
    data = await read(request, _overview, gw)
    by_status: Counter[str] = Counter()
    table: dict[str, dict[str, int]] = {}
    for status, kind, n in data["active"]:
        by_status[status] += n
        table.setdefault(status, {})[kind] = n
    outcomes: dict[str, dict[str, int]] = {}
    for kind, outcome, n in data["outcomes"]:
        outcomes.setdefault(outcome, {})[kind] = n
    sends = data["sends_per_minute"]
    return render(
        request,
        who,
        "overview.html",
        data
        | {
            "kinds": [str(k) for k in Kind],
            "table": table,
            "by_status": by_status,
            "outcomes": outcomes,
            "plot": sends_plot(sends, gw),
            "last_minute": sends[-1] if sends else 0,
            "peak": max(sends, default=0),
            "total_sends": sum(sends),
        },
    )


@router.get("/lines", response_class=HTMLResponse)
async def lines(
    request: Request,
    who: Who,
    number: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    gw = gateway(request)
    found = await read(request, gw.views.lines, number=(number or "").strip() or None)
    return render(request, who, "lines.html", {"lines": found, "number": number or ""})


def _choice(raw: str | None, allowed: list[str], field: str) -> str | None:
    if not raw:
        return None
    if raw not in allowed:
        raise ValidationError(f"{field} must be one of {', '.join(allowed)}", field=field)
    return raw


@router.get("/jobs", response_class=HTMLResponse)
async def jobs(
    request: Request,
    who: Who,
    status: Annotated[str | None, Query(max_length=20)] = None,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    to: Annotated[str | None, Query(max_length=64)] = None,
    batch: Annotated[str | None, Query(max_length=20)] = None,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    gw = gateway(request)
    statuses, kinds = [str(s) for s in Status], [str(k) for k in Kind]
    filters = {"status": status or "", "kind": kind or "", "to": to or "", "batch": batch or ""}
    found: list[Any] = []
    error = None
    try:
        wanted = _choice(status, statuses, "status")
        batch_id = None
        if batch:
            if not batch.isdigit():
                raise ValidationError("batch must be a batch id (a number)", field="batch")
            batch_id = int(batch)
        number = None
        if to:
            number = normalize_number(to, default_region=gw.settings.default_region, field="to")
        found = await read(
            request,
            gw.jobs.list,
            status=None if wanted is None else Status(wanted),
            kind=_choice(kind, kinds, "kind"),
            to=number,
            batch_id=batch_id,
            limit=JOBS_PAGE,
            before_id=before,
        )
    except ValidationError as exc:
        error = exc.message
    more = found[-1].id if len(found) == JOBS_PAGE else None
    # a list filtered by a kind or a finished status may read much of the history to
    # fill a page: it does not refresh itself (every few seconds), the others do
    costly = bool(kind) or (status in statuses and Status(status).terminal)
    return render(
        request,
        who,
        "jobs.html",
        {
            "live": bool(to) or bool(batch) or not costly,
            "jobs": found,
            "filters": filters,
            "statuses": statuses,
            "kinds": kinds,
            "error": error,
            "more": more,
        },
    )


def _job(gw: Gateway, job_id: int) -> dict[str, Any]:
    job = gw.jobs.get(job_id)
    return {
        "job": job,
        "can_retry": job.status in RETRYABLE,
        "can_cancel": not job.status.terminal and not job.cancel_requested,
        "attempts": gw.jobs.attempts(job_id),
        "events": gw.jobs.events(job_id),
        "audit": gw.jobs.audit(job_id),
        "deliveries": gw.deliveries.list(job_id=job_id, limit=100),
    }


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job(request: Request, who: Who, job_id: int) -> HTMLResponse:
    gw = gateway(request)
    return render(request, who, "job.html", await read(request, _job, gw, job_id))


@router.get("/batches", response_class=HTMLResponse)
async def batches(
    request: Request, who: Who, before: Annotated[int | None, Query(ge=1)] = None
) -> HTMLResponse:
    gw = gateway(request)
    found = await read(request, gw.views.batches, limit=50, before_id=before)
    for b in found:
        rows = b["queued_rows"]
        b["done"] = rows - b["active"]
        b["percent"] = round(100 * b["done"] / rows) if rows else 100
    more = found[-1]["id"] if len(found) == 50 else None
    return render(request, who, "batches.html", {"batches": found, "more": more})


def _batch(gw: Gateway, batch_id: int) -> dict[str, Any]:
    batch = gw.batches.get(batch_id)
    step, rates = gw.views.batch_rate(batch)
    return {"batch": batch, "step": step, "rates": rates, "errors": gw.batches.errors(batch_id)}


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
async def batch(request: Request, who: Who, batch_id: int) -> HTMLResponse:
    gw = gateway(request)
    data = await read(request, _batch, gw, batch_id)
    b = data["batch"]
    finished = sum(n for s, n in b.counts.items() if Status(s).terminal)
    total = b.queued_rows
    rates: list[tuple[float, float]] = data["rates"]
    series = [Series("achieved calls per second", rates)]
    if b.rate:
        end = rates[-1][0] if rates else 1.0
        series.append(Series("declared rate", [(0.0, b.rate), (end, b.rate)], dashed=True))
    span = rates[-1][0] if rates else 1.0
    ticks = [(span * f, f"{span * f:.0f} s") for f in (0, 0.5, 1)]
    plot = line_plot(
        series,
        title=f"Batch {b.id}: achieved rate against the declared rate, per {data['step']} s",
        x_label="since submitted",
        y_label="calls/s",
        x_ticks=ticks,
        x_range=(0, max(span, 1.0)),
    )
    context = data | {
        "finished": finished,
        "total": total,
        "percent": round(100 * finished / total) if total else 100,
        "plot": plot,
    }
    return render(request, who, "batch.html", context)


def _breaker(gw: Gateway) -> dict[str, Any]:
    return {
        "breaker": gw.breaker(),
        "allowlist": gw.guardrails.allowlist(),
        "configured": sorted(gw.guard.rules.allowlist.entries),
        "suppressions": gw.guardrails.suppressions(),
        "environment": gw.settings.environment,
    }


@router.get("/breaker", response_class=HTMLResponse)
async def breaker(request: Request, who: Who) -> HTMLResponse:
    gw = gateway(request)
    data = await read(request, _breaker, gw)
    return render(request, who, "breaker.html", data | {"kinds": [str(k) for k in Kind]})


def _webhooks(gw: Gateway) -> dict[str, Any]:
    failed = gw.deliveries.list(status="failed", limit=200)
    stopped = gw.deliveries.list(status="stopped", limit=50)
    pending = gw.deliveries.list(status="pending", limit=200)
    endpoints: dict[str, dict[str, Any]] = {}
    for d in [*failed, *stopped, *(p for p in pending if p.attempts > 0 and p.last_error)]:
        e = endpoints.setdefault(
            d.url, {"url": d.url, "failed": 0, "retrying": 0, "stopped": 0, "last_error": None}
        )
        e[{"failed": "failed", "stopped": "stopped"}.get(d.status, "retrying")] += 1
        e["last_error"] = e["last_error"] or d.last_error or f"HTTP {d.last_status_code}"
    return {
        "failed": failed,
        "stopped": stopped,
        "pending": len(pending),
        "endpoints": sorted(endpoints.values(), key=lambda e: -e["failed"]),
    }


@router.get("/webhooks", response_class=HTMLResponse)
async def webhooks(request: Request, who: Who) -> HTMLResponse:
    gw = gateway(request)
    return render(request, who, "webhooks.html", await read(request, _webhooks, gw))
