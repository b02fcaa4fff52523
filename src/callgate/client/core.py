"""What the synchronous and the asynchronous client share: the result types, each API
call as a request (:class:`_Call`) built once, and the reading of each answer (errors by
the API's ``code``). :mod:`.sync` and :mod:`.aio` only send the calls.
"""

from __future__ import annotations

from collections.abc import (
    Callable,
    Collection,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypedDict

import httpx

from callgate.domain import TERMINAL, AttemptState, Kind, Outcome, Status
from callgate.exceptions import (
    ApiUnavailable,
    CallgateError,
    IdempotencyConflict,
    InvalidTransition,
    NotFound,
    StoreError,
    Unauthorized,
    ValidationError,
    WaitTimeout,
)

USER_AGENT = "callgate-python-client"
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


# -- options -----------------------------------------------------------------------------


class RequestOptions(TypedDict, total=False):
    """Optional fields of ``POST /v1/requests`` (``None`` values are left out)."""

    callback_url: str | None
    #: sent as the ``Idempotency-Key`` header: same key, same job, forever
    idempotency_key: str | None
    not_before: datetime | None
    expires_at: datetime | None
    max_attempts: int | None
    metadata: Mapping[str, Any] | None


class SubmitOptions(RequestOptions, total=False):
    """Optional fields of a fax, a message or a call (``None`` values are left out)."""

    #: the sender number, sent as ``from``
    from_: str | None
    strict_order: bool | None


_REQUEST_OPTIONS = RequestOptions.__required_keys__ | RequestOptions.__optional_keys__
_SUBMIT_OPTIONS = SubmitOptions.__required_keys__ | SubmitOptions.__optional_keys__


# -- results -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteJob:
    """A job as the API shows it (``JobOut``)."""

    id: int
    kind: Kind
    to: str | None
    group_key: str
    status: Status
    attempts: int
    reason: str | None
    detail: str | None
    payload: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime
    run_at: datetime
    not_before: datetime | None
    expires_at: datetime | None
    strict_order: bool
    idempotency_key: str | None
    callback_url: str | None
    metadata: Mapping[str, Any]
    max_attempts: int | None
    cancel_requested: bool
    provider_ref: str | None
    links: Mapping[str, str] = field(default_factory=dict)
    #: True when a submit returned the job an earlier request with this idempotency key
    #: made (``Idempotent-Replayed: true``); nothing new was queued
    replayed: bool = False

    @property
    def terminal(self) -> bool:
        return self.status.terminal


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteAttempt:
    """One try of a job against the provider."""

    number: int
    state: AttemptState
    started_at: datetime
    ended_at: datetime | None
    outcome: Outcome | None
    provider_ref: str | None
    error_code: str | None
    error_message: str | None
    counted: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteEvent:
    """A state change of a job (what its webhooks announce)."""

    id: int
    job_id: int
    type: str
    status: Status
    created_at: datetime
    reason: str | None
    detail: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteJobDetail(RemoteJob):
    """A job with its attempts and events (``GET /v1/jobs/{id}``)."""

    attempt_log: tuple[RemoteAttempt, ...] = ()
    events: tuple[RemoteEvent, ...] = ()


def terminal(job: RemoteJob) -> bool:
    """The default ``until`` of ``wait_for``: delivered, failed, canceled, expired, blocked."""
    return job.status in TERMINAL


# -- building requests and reading answers (shared by both clients) ----------------------


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, str | int] | None = None
    headers: dict[str, str] | None = None


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _submit_call(
    path: str, fields: Mapping[str, Any], options: Mapping[str, Any], allowed: frozenset[str]
) -> _Call:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"unexpected option(s): {', '.join(unknown)}")
    body = {name: _wire(value) for name, value in fields.items() if value is not None}
    headers: dict[str, str] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name == "idempotency_key":
            headers["Idempotency-Key"] = str(value)
        else:
            body["from" if name == "from_" else name] = _wire(value)
    return _Call("POST", path, json=body, headers=headers or None)


def _list_params(
    status: Status | str | None,
    to: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    page_size: int,
) -> dict[str, str | int]:
    params: dict[str, str | int] = {"limit": page_size}
    if status is not None:
        params["status"] = str(status)
    if to is not None:
        params["to"] = to
    if created_after is not None:
        params["created_after"] = created_after.isoformat()
    if created_before is not None:
        params["created_before"] = created_before.isoformat()
    return params


def _guard_call(action: str, *args: Any) -> _Call:
    """The guardrail requests (``/v1/allowlist``, ``/v1/suppressions``, ``/v1/breaker``)."""
    from urllib.parse import quote

    def body(**fields: Any) -> dict[str, Any]:
        return {k: v for k, v in fields.items() if v is not None}

    if action == "allowlist":
        return _Call("GET", "/v1/allowlist")
    if action == "allowlist_add":
        return _Call("POST", "/v1/allowlist", json=body(number=args[0], note=args[1]))
    if action == "allowlist_remove":
        return _Call("DELETE", f"/v1/allowlist/{quote(args[0], safe='')}")
    if action == "suppressions":
        return _Call("GET", "/v1/suppressions", params=body(number=args[0]) or None)
    if action == "suppress":
        number, kind, reason = args
        return _Call("POST", "/v1/suppressions", json=body(number=number, kind=kind, reason=reason))
    if action == "unsuppress":
        params = body(kind=args[1]) or None
        return _Call("DELETE", f"/v1/suppressions/{quote(args[0], safe='')}", params=params)
    if action == "breaker":
        return _Call("GET", "/v1/breaker")
    return _Call("POST", f"/v1/breaker/{action}", json={"reason": args[0]})


def _doc(response: httpx.Response) -> Any:
    return response.json() if response.content else None


def _job_path(job_id: int, action: str = "") -> str:
    return f"/v1/jobs/{int(job_id)}" + (f"/{action}" if action else "")


def _retry_call(
    status: Sequence[str] | None,
    since: datetime | None,
    reason: str | None,
    batch: int | None,
) -> _Call:
    """``POST /v1/jobs/retry``: every job the filters match."""
    fields: dict[str, Any] = {"status": list(status) if status else None, "since": since}
    fields |= {"reason": reason, "batch": batch}
    body = {k: _wire(v) for k, v in fields.items() if v is not None}
    return _Call("POST", "/v1/jobs/retry", json=body)


def _retried(response: httpx.Response) -> int:
    return int(_json(response)["retried"])


#: error classes by the API's stable ``code``, then by HTTP status
_BY_CODE: dict[str, type[CallgateError]] = {
    "unauthorized": Unauthorized,
    "not_found": NotFound,
    "idempotency_conflict": IdempotencyConflict,
    "invalid_state": InvalidTransition,
    "store_error": StoreError,
}
_BY_STATUS: dict[int, type[CallgateError]] = {
    400: ValidationError,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: InvalidTransition,
    413: ValidationError,
    422: ValidationError,
    502: ApiUnavailable,
    503: ApiUnavailable,
    504: ApiUnavailable,
}


def _error_for(response: httpx.Response) -> CallgateError:
    """The CallgateError for an error response: ``{"error": {"code", "message", "field"}}``."""
    status = response.status_code
    code = message = field_name = None
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message, field_name = error.get("code"), error.get("message"), error.get("field")
    if not isinstance(code, str) or not code:
        code = "api_unavailable" if status in (502, 503, 504) else "http_error"
    if not isinstance(message, str) or not message:
        text = response.text.strip()[:200]
        message = f"HTTP {status} from {response.request.method} {response.request.url.path}"
        message += f": {text}" if text else ""
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status, CallgateError)
    exc = cls(message, field=field_name if isinstance(field_name, str) else None)
    exc.code = code
    exc.http_status = status
    return exc


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise _bad_answer(response, "not JSON") from exc


def _bad_answer(response: httpx.Response, why: str) -> CallgateError:
    exc = CallgateError(
        f"the API's answer to {response.request.method} {response.request.url.path} "
        f"cannot be read ({why})"
    )
    exc.code = "invalid_response"
    exc.http_status = response.status_code
    return exc


def _time(raw: Any) -> datetime:
    if not isinstance(raw, str):
        raise TypeError(f"expected an ISO 8601 time, got {raw!r}")
    return datetime.fromisoformat(raw)


def _opt_time(raw: Any) -> datetime | None:
    return None if raw is None else _time(raw)


def _job_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": int(doc["id"]),
        "kind": Kind(doc["kind"]),
        "to": doc.get("to"),
        "group_key": doc["group_key"],
        "status": Status(doc["status"]),
        "attempts": int(doc["attempts"]),
        "reason": doc.get("reason"),
        "detail": doc.get("detail"),
        "payload": dict(doc.get("payload") or {}),
        "created_at": _time(doc["created_at"]),
        "updated_at": _time(doc["updated_at"]),
        "run_at": _time(doc["run_at"]),
        "not_before": _opt_time(doc.get("not_before")),
        "expires_at": _opt_time(doc.get("expires_at")),
        "strict_order": bool(doc.get("strict_order", False)),
        "idempotency_key": doc.get("idempotency_key"),
        "callback_url": doc.get("callback_url"),
        "metadata": dict(doc.get("metadata") or {}),
        "max_attempts": doc.get("max_attempts"),
        "cancel_requested": bool(doc.get("cancel_requested", False)),
        "provider_ref": doc.get("provider_ref"),
        "links": dict(doc.get("links") or {}),
    }


def _attempt(doc: Mapping[str, Any]) -> RemoteAttempt:
    outcome = doc.get("outcome")
    return RemoteAttempt(
        number=int(doc["number"]),
        state=AttemptState(doc["state"]),
        started_at=_time(doc["started_at"]),
        ended_at=_opt_time(doc.get("ended_at")),
        outcome=None if outcome is None else Outcome(outcome),
        provider_ref=doc.get("provider_ref"),
        error_code=doc.get("error_code"),
        error_message=doc.get("error_message"),
        counted=bool(doc.get("counted", True)),
    )


def _event(doc: Mapping[str, Any]) -> RemoteEvent:
    return RemoteEvent(
        id=int(doc["id"]),
        job_id=int(doc["job_id"]),
        type=str(doc["type"]),
        status=Status(doc["status"]),
        created_at=_time(doc["created_at"]),
        reason=doc.get("reason"),
        detail=doc.get("detail"),
    )


def _read_job(response: httpx.Response) -> RemoteJob:
    doc = _json(response)
    replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
    try:
        return RemoteJob(**_job_fields(doc), replayed=replayed)
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad_answer(response, f"not a job: {exc!r}") from exc


def _read_detail(response: httpx.Response) -> RemoteJobDetail:
    doc = _json(response)
    try:
        return RemoteJobDetail(
            **_job_fields(doc),
            attempt_log=tuple(_attempt(a) for a in doc.get("attempt_log") or ()),
            events=tuple(_event(e) for e in doc.get("events") or ()),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad_answer(response, f"not a job: {exc!r}") from exc


def _read_page(response: httpx.Response) -> tuple[list[RemoteJob], str | None]:
    doc = _json(response)
    try:
        jobs = [RemoteJob(**_job_fields(j)) for j in doc["data"]]
        cursor = doc.get("next_cursor")
        return jobs, None if cursor is None else str(cursor)
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad_answer(response, f"not a page of jobs: {exc!r}") from exc


def _done_when(
    until: Callable[[RemoteJob], bool] | Collection[Status | str],
) -> Callable[[RemoteJob], bool]:
    if callable(until):
        return until
    wanted = frozenset(Status(s) for s in until)
    return lambda job: job.status in wanted


def _timed_out(job: RemoteJob, timeout: float) -> WaitTimeout:
    return WaitTimeout(f"job {job.id} is still {job.status} after {timeout:g} s")


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}


def _unreachable(base_url: httpx.URL, exc: httpx.HTTPError) -> ApiUnavailable:
    return ApiUnavailable(f"cannot reach callgate at {base_url}: {type(exc).__name__}: {exc}")


# -- the clients -------------------------------------------------------------------------


#: uploads have no read timeout: a large file takes a while to be accepted
UPLOAD = httpx.Timeout(10.0, read=None, write=None)


def _batch_form(
    kind: str | None, rate: float | None, name: str | None, strict: bool
) -> dict[str, str]:
    form = {"strict": "true" if strict else "false"}
    return form | {k: str(v) for k, v in (("kind", kind), ("rate", rate), ("name", name)) if v}


def _batch_call(
    batch_id: int, action: str = "", params: dict[str, str | int] | None = None
) -> _Call:
    """GET the batch (or its ``errors`` page), or POST ``pause``/``resume``/``cancel``."""
    path = f"/v1/batches/{int(batch_id)}" + (f"/{action}" if action else "")
    method = "GET" if action in ("", "errors") else "POST"
    return _Call(method, path, params=params)
