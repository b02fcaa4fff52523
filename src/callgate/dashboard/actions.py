"""The dashboard's actions (POST forms) and its sign-in, sign-out and downloads.

Every action checks the session's CSRF token (:func:`~callgate.dashboard.session.check_csrf`),
calls the same service or Gateway operation as the HTTP API, and redirects (303) back to
the page it came from with a message saying what happened; an operation refused (a job
that cannot be retried, a reason missing) is a message too, not an error page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from callgate.batches.export import RESULT_COLUMNS, csv_chunks
from callgate.dashboard.common import back, gateway, secure, templates
from callgate.dashboard.session import (
    COOKIE,
    LIFETIME,
    Viewer,
    check_csrf,
    safe_next,
    same_origin,
    sessions,
    viewer,
)
from callgate.domain import Kind, normalize_number
from callgate.exceptions import CallgateError, ValidationError
from callgate.services import allowlist_entry

router = APIRouter(include_in_schema=False)
Who = Annotated[Viewer, Depends(viewer)]


# -- signing in and out ------------------------------------------------------------------


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(request: Request, next: str | None = None) -> HTMLResponse:
    return _signin(request, safe_next(next), None)


def _signin(request: Request, next_path: str, error: str | None, status: int = 200) -> HTMLResponse:
    response: HTMLResponse = templates.TemplateResponse(
        request,
        "signin.html",
        {"next": next_path, "error": error, "nav": [], "alerts": None},
        status_code=status,
    )
    secure(response)
    return response


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request) -> Response:
    same_origin(request)  # no signing a visitor in from another site
    form = await request.form()
    token = str(form.get("key") or "").strip()
    next_path = safe_next(str(form.get("next") or ""))
    gw = gateway(request)
    if await gw.authenticate(token) is None:
        return _signin(request, next_path, "That key is unknown or revoked.", status=401)
    sid, _ = sessions(request).create(token)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        COOKIE,
        sid,
        max_age=int(LIFETIME),
        path="/dashboard",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/signout")
async def signout(request: Request, who: Who) -> Response:
    form = await request.form()
    check_csrf(request, who, _text(form, "csrf"))
    sessions(request).end(request.cookies.get(COOKIE))
    response = RedirectResponse("/dashboard/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/dashboard", httponly=True, samesite="strict")
    return response


# -- the actions ---------------------------------------------------------------------------


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


async def _act(
    request: Request,
    who: Who,
    to: str,
    run: Callable[[dict[str, str]], Any],
    said: Callable[[Any], str],
) -> Response:
    """Check the form's CSRF token, run ``run(form)`` in one store trip, say what it
    did (or why it could not), and go back to ``to``."""
    form = await request.form()
    check_csrf(request, who, _text(form, "csrf"))
    fields = {k: _text(form, k) for k in form}
    gw = gateway(request)
    try:
        result = await gw.db(run, fields)
    except CallgateError as exc:
        who.say(exc.message, "error")
    else:
        who.say(said(result))
    return back(to)


def _actor(who: Viewer) -> str:
    return f"dashboard: key {who.key.name} ({who.key.id})"


@router.post("/jobs/{job_id}/retry")
async def retry_job(request: Request, who: Who, job_id: int) -> Response:
    gw = gateway(request)
    return await _act(
        request,
        who,
        f"/dashboard/jobs/{job_id}",
        lambda _: gw.retry(job_id),
        lambda job: f"Job {job.id} is {job.status} again, with a fresh attempt budget.",
    )


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(request: Request, who: Who, job_id: int) -> Response:
    gw = gateway(request)
    return await _act(
        request,
        who,
        f"/dashboard/jobs/{job_id}",
        lambda _: gw.cancel(job_id),
        lambda job: (
            f"Job {job.id} will be canceled when its attempt ends."
            if job.cancel_requested and str(job.status) == "in_flight"
            else f"Job {job.id} is {job.status}."
        ),
    )


def _dead_letters(gw: Any, form: dict[str, str]) -> int:
    batch = form.get("batch") or None
    if batch is not None and not batch.isdigit():
        raise ValidationError("batch must be a batch id (a number)", field="batch")
    return int(
        gw.retry_matching(
            statuses=["failed"],
            reason="max_attempts",
            batch_id=None if batch is None else int(batch),
        )
    )


@router.post("/jobs/retry-dead-letters")
async def retry_dead_letters(request: Request, who: Who) -> Response:
    """Queue again every dead letter (failed: attempts exhausted), or a batch's."""
    gw = gateway(request)
    return await _act(
        request,
        who,
        "/dashboard/jobs?status=failed",
        lambda form: _dead_letters(gw, form),
        lambda n: f"{n} dead letter{'s' if n != 1 else ''} queued again.",
    )


@router.post("/batches/{batch_id}/{action}")
async def steer_batch(request: Request, who: Who, batch_id: int, action: str) -> Response:
    gw = gateway(request)
    steer = {"pause": gw.batches.pause, "resume": gw.batches.resume, "cancel": gw.batches.cancel}
    if action not in steer:
        return Response(status_code=404)
    return await _act(
        request,
        who,
        f"/dashboard/batches/{batch_id}",
        lambda _: steer[action](batch_id),
        lambda b: f"Batch {b.id} is {b.status}.",
    )


@router.get("/batches/{batch_id}/results.csv")
async def batch_results(request: Request, who: Who, batch_id: int) -> StreamingResponse:
    """The batch's results (the API's CSV export), as a download."""
    gw = gateway(request)
    await gw.db(gw.batches.exists, batch_id)
    rows = gw.batches.all_results(batch_id)  # streamed from a thread (a sync iterator)
    return StreamingResponse(
        csv_chunks(rows, RESULT_COLUMNS),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}-results.csv"'},
    )


def _reason(form: dict[str, str]) -> str:
    reason = form.get("reason", "")
    if not reason:
        raise ValidationError("a reason is required (it is kept in the history)", field="reason")
    return reason


@router.post("/breaker/trip")
async def trip(request: Request, who: Who) -> Response:
    gw = gateway(request)
    return await _act(
        request,
        who,
        "/dashboard/breaker",
        lambda form: gw.trip_breaker(_reason(form), actor=_actor(who)),
        lambda done: "The breaker is open: no new sends." if done else "It was open already.",
    )


@router.post("/breaker/reset")
async def reset(request: Request, who: Who) -> Response:
    gw = gateway(request)
    return await _act(
        request,
        who,
        "/dashboard/breaker",
        lambda form: gw.reset_breaker(_reason(form), actor=_actor(who)),
        lambda done: "The breaker is closed: sending resumes." if done else "It was closed.",
    )


@router.post("/allowlist")
async def allow(request: Request, who: Who) -> Response:
    gw = gateway(request)

    def run(form: dict[str, str]) -> tuple[str, bool]:
        entry = allowlist_entry(form.get("number", ""))
        return entry, gw.guardrails.allow(entry, note=form.get("note") or None)

    return await _act(
        request,
        who,
        "/dashboard/breaker",
        run,
        lambda r: f"{r[0]} is allowlisted." if r[1] else f"{r[0]} was allowlisted already.",
    )


@router.post("/allowlist/remove")
async def disallow(request: Request, who: Who) -> Response:
    gw = gateway(request)

    def run(form: dict[str, str]) -> tuple[str, bool]:
        entry = allowlist_entry(form.get("number", ""))
        return entry, gw.guardrails.disallow(entry)

    return await _act(
        request,
        who,
        "/dashboard/breaker",
        run,
        lambda r: f"{r[0]} is off the allowlist." if r[1] else f"{r[0]} was not on it.",
    )


def _kind(form: dict[str, str]) -> str | None:
    raw = form.get("kind") or ""
    if raw in ("", "all"):
        return None
    if raw not in [str(k) for k in Kind]:
        raise ValidationError("kind must be fax, sms, call, request or all", field="kind")
    return raw


@router.post("/suppressions")
async def suppress(request: Request, who: Who) -> Response:
    gw = gateway(request)

    def run(form: dict[str, str]) -> tuple[str, bool]:
        number = normalize_number(form.get("number", ""), field="number")
        detail = form.get("detail") or f"added by {_actor(who)}"
        return number, gw.guardrails.suppress(number, _kind(form), "manual", detail=detail)

    return await _act(
        request,
        who,
        "/dashboard/breaker",
        run,
        lambda r: f"{r[0]} is suppressed." if r[1] else f"{r[0]} was suppressed already.",
    )


@router.post("/suppressions/remove")
async def unsuppress(request: Request, who: Who) -> Response:
    gw = gateway(request)

    def run(form: dict[str, str]) -> tuple[str, int]:
        number = normalize_number(form.get("number", ""), field="number")
        return number, gw.guardrails.unsuppress(number, _kind(form))

    return await _act(
        request,
        who,
        "/dashboard/breaker",
        run,
        lambda r: f"{r[0]}: suppression lifted." if r[1] else f"{r[0]} was not suppressed.",
    )


@router.post("/webhooks/{delivery_id}/replay")
async def replay(request: Request, who: Who, delivery_id: int) -> Response:
    gw = gateway(request)
    return await _act(
        request,
        who,
        "/dashboard/webhooks",
        lambda _: gw.deliveries.replay(delivery_id=delivery_id),
        lambda n: (
            f"Delivery {delivery_id} will be sent again."
            if n
            else f"Delivery {delivery_id} is still pending (or unknown)."
        ),
    )


@router.post("/webhooks/replay")
async def replay_failed(request: Request, who: Who) -> Response:
    """Send again every failed or stopped delivery of the last ``hours``."""
    gw = gateway(request)

    def run(form: dict[str, str]) -> int:
        hours = form.get("hours") or "24"
        try:
            span = float(hours)
        except ValueError:
            raise ValidationError("hours must be a number", field="hours") from None
        if not 0 < span <= 24 * 90:
            raise ValidationError("hours must be between 0 and 2160", field="hours")
        return int(gw.deliveries.replay(since=gw.clock.now() - span * 3600))

    return await _act(
        request,
        who,
        "/dashboard/webhooks",
        run,
        lambda n: f"{n} deliver{'ies' if n != 1 else 'y'} will be sent again.",
    )
