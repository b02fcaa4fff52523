"""``/v1``: submit faxes, messages, calls and provider requests; read and steer jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from callgate.api.json_route import BoundedJsonRoute
from callgate.api.models import (
    CallIn,
    Cursor,
    FaxIn,
    IsoTime,
    JobDetail,
    JobId,
    JobOut,
    JobPage,
    MessageIn,
    RequestIn,
    RetriedOut,
    RetryJobsIn,
)
from callgate.domain import REQUEST_APIS, Attempt, Event, Job, Kind, Status, normalize_number
from callgate.exceptions import ValidationError
from callgate.gateway import Gateway

router = APIRouter(tags=["jobs"], route_class=BoundedJsonRoute)
IdemHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Same key, same job, forever (scoped to your API key)",
    ),
]
URL_FIELDS = ("media_url", "callback_url", "url")


def job_out(job: Job) -> dict[str, Any]:
    base = f"/v1/jobs/{job.id}"
    return job.to_dict() | {
        "links": {"self": base, "cancel": f"{base}/cancel", "retry": f"{base}/retry"}
    }


def _gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


async def _submit(request: Request, kind: Kind, body: Any, header_key: str | None) -> JSONResponse:
    gw = _gateway(request)
    fields = body.model_dump(by_alias=True, exclude_none=True)
    if header_key is not None:
        if fields.get("idempotency_key", header_key) != header_key:
            raise ValidationError(
                "the Idempotency-Key header and idempotency_key differ", field="idempotency_key"
            )
        fields["idempotency_key"] = header_key
    for name in URL_FIELDS:
        if name in fields:
            fields[name] = await gw.urls.acheck(fields[name], name)
    result = await gw.submit_async(gw.spec(kind, **fields), scope=request.state.api_key.id)
    headers = {"Location": f"/v1/jobs/{result.job.id}"}
    if not result.created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(job_out(result.job), status_code=202, headers=headers)


ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": JobOut, "description": "Accepted: queued (or the job this key made)"},
    409: {"description": "The idempotency key was used with another request"},
}


@router.post("/faxes", status_code=202, response_model=JobOut, responses=ACCEPTED)
async def send_fax(
    request: Request, body: FaxIn, idempotency_key: IdemHeader = None
) -> JSONResponse:
    """Queue a fax."""
    return await _submit(request, Kind.FAX, body, idempotency_key)


@router.post("/messages", status_code=202, response_model=JobOut, responses=ACCEPTED)
async def send_message(
    request: Request, body: MessageIn, idempotency_key: IdemHeader = None
) -> JSONResponse:
    """Queue an SMS or MMS."""
    return await _submit(request, Kind.SMS, body, idempotency_key)


@router.post("/calls", status_code=202, response_model=JobOut, responses=ACCEPTED)
async def send_call(
    request: Request, body: CallIn, idempotency_key: IdemHeader = None
) -> JSONResponse:
    """Queue a voice call."""
    return await _submit(request, Kind.CALL, body, idempotency_key)


@router.post("/requests", status_code=202, response_model=JobOut, responses=ACCEPTED)
async def send_request(
    request: Request, body: RequestIn, idempotency_key: IdemHeader = None
) -> JSONResponse:
    """Queue a generic provider API request (Lookup, Verify, Studio, ...)."""
    if body.api.strip() and body.api not in REQUEST_APIS:  # exactly as documented
        raise ValidationError(
            f"api must be one of {', '.join(REQUEST_APIS)}", field="api", code="invalid_api"
        )
    return await _submit(request, Kind.REQUEST, body, idempotency_key)


@router.get("/jobs", response_model=JobPage)
async def list_jobs(
    request: Request,
    status: Status | None = None,
    to: Annotated[str | None, Query(max_length=64)] = None,
    created_after: IsoTime | None = None,
    created_before: IsoTime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Jobs, newest first, a page at a time."""
    before = None if cursor is None else int(cursor)
    gw = _gateway(request)
    jobs = await gw.db(
        gw.jobs.list,
        status=status,
        to=None if to is None else normalize_number(to, default_region=gw_region(request)),
        limit=limit,
        before_id=before,
        created_after=None if created_after is None else _utc(created_after, "created_after"),
        created_before=(None if created_before is None else _utc(created_before, "created_before")),
    )
    next_cursor = str(jobs[-1].id) if len(jobs) == limit else None
    return {"data": [job_out(j) for j in jobs], "next_cursor": next_cursor}


def gw_region(request: Request) -> str | None:
    return _gateway(request).settings.default_region


def _utc(value: datetime, field: str) -> float:
    return _aware(value, field).timestamp()


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise ValidationError(f"{field} must carry a time zone", field=field)
    return value


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such job"}}
STEER: dict[int | str, dict[str, Any]] = NOT_FOUND | {
    409: {"description": "The job's status does not allow this"}
}


@router.post("/jobs/retry", response_model=RetriedOut)
async def retry_jobs(request: Request, body: RetryJobsIn) -> dict[str, int]:
    """Queue again every job the filters match, each with a fresh attempt budget (as
    one job's retry): e.g. the jobs that failed while the credentials were wrong. No
    filter at all: 400 ``filter_required``."""
    since = None if body.since is None else _aware(body.since, "since")
    statuses = [body.status] if isinstance(body.status, str) else body.status
    if statuses == []:
        raise ValidationError("status names no status", field="status")
    gw = _gateway(request)
    n = await gw.db(
        gw.retry_matching,
        statuses=statuses or (),
        since=since,
        reason=body.reason,
        batch_id=body.batch,
    )
    return {"retried": n}


@router.api_route(
    "/jobs/retry", methods=["GET", "HEAD", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
async def retry_jobs_other_methods() -> None:
    """``/v1/jobs/retry`` is a path of its own, not a job id: only POST."""
    raise StarletteHTTPException(405, "only POST is allowed here", headers={"Allow": "POST"})


@router.get("/jobs/{job_id}", response_model=JobDetail, responses=NOT_FOUND)
async def get_job(request: Request, job_id: JobId) -> dict[str, Any]:
    """One job with its attempts, events and audit log (provider requests/responses)."""
    gw = _gateway(request)
    job, attempts, events, audit = await gw.db(_detail, gw, job_id)
    return job_out(job) | {
        "attempt_log": [a.to_dict() for a in attempts],
        "events": [e.to_dict() for e in events],
        "audit": [_public(row) for row in audit],
    }


def _detail(
    gw: Gateway, job_id: int
) -> tuple[Job, list[Attempt], list[Event], list[dict[str, Any]]]:
    """A job and what it went through (one trip to a store thread)."""
    jobs = gw.jobs
    return jobs.get(job_id), jobs.attempts(job_id), jobs.events(job_id), jobs.audit(job_id)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "job_id"}


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, responses=STEER)
async def cancel_job(request: Request, job_id: JobId) -> dict[str, Any]:
    """Cancel: at once if waiting; when its attempt ends if in flight."""
    gw = _gateway(request)
    return job_out(await gw.db(gw.cancel, job_id))


@router.post("/jobs/{job_id}/retry", response_model=JobOut, responses=STEER)
async def retry_job(request: Request, job_id: JobId) -> dict[str, Any]:
    """Queue a failed, canceled, held, uncertain or blocked job again."""
    gw = _gateway(request)
    return job_out(await gw.db(gw.retry, job_id))
