"""``/v1/batches``: accept a CSV or JSON file of jobs, report its invalid rows, export
its results (one row per input row)."""

from __future__ import annotations

import tempfile
from typing import IO, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from callgate.api.json_route import BoundedJsonRoute
from callgate.api.models import BatchId, ErrorOut
from callgate.batches import (
    ERROR_COLUMNS,
    RESULT_COLUMNS,
    BatchRejected,
    batch_name,
    csv_chunks,
    jsonl_chunks,
)
from callgate.domain import MAX_RATE, MIN_RATE, Batch, validate_rate
from callgate.exceptions import ValidationError
from callgate.gateway import Gateway

router = APIRouter(tags=["batches"], route_class=BoundedJsonRoute)
PAGE = 1000
SPOOL = 8 * 1024 * 1024  # bytes of an upload kept in memory before it goes to disk
FORM_FIELDS = ("kind", "rate", "name", "strict", "format")

#: a row of a JSON batch: an object; anything else is an invalid row (reported with its
#: line), not a reason to refuse the whole batch
ROW: dict[str, Any] = {
    "description": "a row: an object of columns (anything else is an invalid row)"
}

#: the upload's options, as form fields or query parameters
UPLOAD_OPTIONS: dict[str, dict[str, Any]] = {
    "kind": {"type": "string", "enum": ["sms", "call", "fax", "request"]},
    "rate": {"type": "number", "minimum": MIN_RATE, "maximum": MAX_RATE},
    "name": {"type": "string", "maxLength": 200},
    "strict": {"type": "boolean"},
    "format": {"type": "string", "enum": ["csv", "json", "jsonl"]},
}
UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}, **UPLOAD_OPTIONS},
            }
        },
        "application/json": {
            "schema": {
                "description": '{"messages": [{...}, ...]} or an array of rows; options '
                "as query parameters",
                "oneOf": [
                    {"type": "array", "items": ROW},
                    {
                        "type": "object",
                        "required": ["messages"],
                        "properties": {"messages": {"type": "array", "items": ROW}},
                    },
                ],
            }
        },
        "text/csv": {"schema": {"type": "string"}},
    },
}


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such batch"}}
_TEXT = {"schema": {"type": "string"}}
ERRORS_OK: dict[int | str, dict[str, Any]] = NOT_FOUND | {
    200: {
        "description": "JSON pages, or the whole report as CSV",
        "content": {"application/json": {}, "text/csv": _TEXT},
    }
}
RESULTS_OK: dict[int | str, dict[str, Any]] = NOT_FOUND | {
    200: {
        "description": "One row per input row",
        "content": {"text/csv": _TEXT, "application/x-ndjson": _TEXT},
    }
}


def batch_out(batch: Batch) -> dict[str, Any]:
    base = f"/v1/batches/{batch.id}"
    return batch.to_dict() | {
        "links": {"self": base, "errors": f"{base}/errors", "results": f"{base}/results"}
    }


def _gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


async def _spool_body(request: Request) -> IO[bytes]:
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(SPOOL)  # noqa: SIM115 (closed by caller)
    async for chunk in request.stream():
        await run_in_threadpool(spool.write, chunk)
    spool.seek(0)
    return spool


def _options(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("kind", "name", "format"):
        if values.get(name) not in (None, ""):
            out[name] = str(values[name])
    if "name" in out:
        out["name"] = batch_name(out["name"])
    for name in ("kind", "format"):  # each checked where it is given, even if overridden
        allowed = UPLOAD_OPTIONS[name]["enum"]
        if name in out and out[name] not in allowed:
            raise ValidationError(f"{name} must be one of {', '.join(allowed)}", field=name)
    if values.get("rate") not in (None, ""):
        out["rate"] = validate_rate(values["rate"])
    strict = str(values.get("strict") or "false").strip().lower()
    if strict not in ("true", "false"):
        raise ValidationError("strict must be true or false", field="strict")
    out["strict"] = strict == "true"
    return out


@router.post(
    "/batches",
    status_code=202,
    openapi_extra={
        "requestBody": UPLOAD_BODY,
        "parameters": [
            {"name": n, "in": "query", "required": False, "schema": UPLOAD_OPTIONS[n]}
            for n in ("kind", "rate", "name", "strict", "format")
        ],
    },
    responses={
        202: {"description": "Accepted: the valid rows are queued"},
        400: {
            "model": ErrorOut,
            "description": "Not a batch file, or a strict batch with an invalid row "
            "(then also invalid_rows and the first errors beside error)",
        },
    },
)
async def submit_batch(request: Request) -> JSONResponse:
    """Submit a batch: a multipart upload (``file`` plus form fields ``kind``, ``rate``,
    ``name``, ``strict``), or the file itself as the body (CSV, JSON or JSON Lines) with
    the options as query parameters. Invalid rows are reported, not queued; ``strict``
    rejects the whole batch on one invalid row."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=len(FORM_FIELDS) + 1)
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ValidationError(
                    "the upload needs a file field", field="file", code="missing_field"
                )
            fields = {k: v for k in FORM_FIELDS if (v := form.get(k)) is not None}
            query = dict(request.query_params)
            _options(query)  # bad query parameters are refused even if the form overrides them
            options = _options(query | fields)
            return await _accept(request, upload.file, upload.filename, options)
        finally:
            await form.close()
    stream = await _spool_body(request)
    try:
        options = _options(dict(request.query_params))
        formats = {"application/json": "json", "text/csv": "csv"}
        formats |= {"application/x-ndjson": "jsonl", "application/jsonl": "jsonl"}
        if content_type in formats:
            options.setdefault("format", formats[content_type])
        return await _accept(request, stream, None, options)
    finally:
        stream.close()


async def _accept(
    request: Request, stream: IO[bytes], filename: str | None, options: dict[str, Any]
) -> JSONResponse:
    gw = _gateway(request)
    try:
        batch = await run_in_threadpool(
            lambda: gw.submit_batch(
                stream,
                kind=options.get("kind"),
                fmt=options.get("format"),
                filename=filename,
                name=options.get("name"),
                rate=options.get("rate"),
                strict=options["strict"],
                scope=request.state.api_key.id,
            )
        )
    except BatchRejected as exc:
        body = {
            "error": exc.to_dict(),
            "invalid_rows": exc.total,
            "errors": [e.to_dict() for e in exc.errors],  # the first STRICT_REPORT of them
        }
        return JSONResponse(body, status_code=400)
    return JSONResponse(
        batch_out(batch), status_code=202, headers={"Location": f"/v1/batches/{batch.id}"}
    )


@router.get("/batches/{batch_id}", responses=NOT_FOUND)
async def get_batch(request: Request, batch_id: BatchId) -> dict[str, Any]:
    """A batch: its rows, the counts of its jobs per status."""
    gw = _gateway(request)
    return batch_out(await gw.db(gw.batches.get, batch_id))


@router.get("/batches/{batch_id}/errors", responses=ERRORS_OK)
async def batch_errors(
    request: Request,
    batch_id: BatchId,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
    cursor: Annotated[int, Query(ge=0, le=2**31, description="next_cursor of the last page")] = 0,
) -> Any:
    """The rows that were not queued (invalid or duplicate), with line, column and reason;
    JSON pages, or the whole report as CSV."""
    gw = _gateway(request)
    await gw.db(gw.batches.exists, batch_id)
    if format == "csv":  # streamed from a thread (a sync iterator)
        rows = gw.batches.all_errors(batch_id)
        return StreamingResponse(csv_chunks(rows, ERROR_COLUMNS), media_type="text/csv")
    page = await gw.db(gw.batches.errors, batch_id, after_line=cursor, limit=PAGE)
    return {
        "data": [e.to_dict() for e in page],
        "next_cursor": str(page[-1].line) if len(page) == PAGE else None,
    }


@router.get("/batches/{batch_id}/results", responses=RESULTS_OK, response_class=StreamingResponse)
async def batch_results(
    request: Request,
    batch_id: BatchId,
    format: Annotated[Literal["csv", "jsonl"], Query()] = "csv",
) -> StreamingResponse:
    """One row per input row: line, job id, status, provider SID, error code and message,
    attempts (``invalid``/``duplicate`` for a row that is not a job of its own)."""
    gw = _gateway(request)
    await gw.db(gw.batches.exists, batch_id)
    rows = gw.batches.all_results(batch_id)  # streamed from a thread (a sync iterator)
    if format == "jsonl":
        return StreamingResponse(
            jsonl_chunks(rows, RESULT_COLUMNS), media_type="application/x-ndjson"
        )
    return StreamingResponse(csv_chunks(rows, RESULT_COLUMNS), media_type="text/csv")


STEER: dict[int | str, dict[str, Any]] = NOT_FOUND | {
    409: {"description": "The batch's status does not allow this"}
}


@router.post("/batches/{batch_id}/pause", responses=STEER)
async def pause_batch(request: Request, batch_id: BatchId) -> dict[str, Any]:
    """Hold the batch's queued jobs (``held``, reason ``batch_paused``); in-flight ones finish."""
    gw = _gateway(request)
    return batch_out(await gw.db(gw.batches.pause, batch_id))


@router.post("/batches/{batch_id}/resume", responses=STEER)
async def resume_batch(request: Request, batch_id: BatchId) -> dict[str, Any]:
    """Queue the jobs a pause held again."""
    gw = _gateway(request)
    return batch_out(await gw.db(gw.batches.resume, batch_id))


@router.post("/batches/{batch_id}/cancel", responses=STEER)
async def cancel_batch(request: Request, batch_id: BatchId) -> dict[str, Any]:
    """Cancel every job of the batch not yet ended (queued rows become ``canceled``)."""
    gw = _gateway(request)
    return batch_out(await gw.db(gw.batches.cancel, batch_id))
