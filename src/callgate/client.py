"""Python client for the callgate HTTP API, synchronous and asynchronous, on httpx.

::

    from callgate import Client

    with Client("http://127.0.0.1:8080", api_key) as cg:
        job = cg.send_fax("+15551234567", "https://example.org/ballot.pdf",
                          idempotency_key="ballot-42")
        done = cg.wait_for(job.id, timeout=600)
        print(done.status, done.attempts)

:class:`AsyncClient` has the same methods, as coroutines (``list_jobs`` is an async
iterator). Results are frozen dataclasses (:class:`RemoteJob`, :class:`RemoteJobDetail`)
with times as aware datetimes and statuses as :class:`~callgate.domain.Status`. Errors
are the :class:`~callgate.exceptions.CallgateError` family, picked by the API's error
``code``, carrying that ``code``, the offending ``field`` and the ``http_status``;
a request that cannot reach the API raises
:class:`~callgate.exceptions.ApiUnavailable` (the httpx error is its ``__cause__``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import IO, Any, Literal, TypedDict, Unpack

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

__all__ = [
    "AsyncClient",
    "Client",
    "RemoteAttempt",
    "RemoteEvent",
    "RemoteJob",
    "RemoteJobDetail",
    "RequestOptions",
    "SubmitOptions",
    "terminal",
]

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


class Client:
    """The callgate HTTP API, synchronously.

    ``transport`` is an httpx transport (``httpx.MockTransport`` in tests); ``sleep`` and
    ``monotonic`` are what ``wait_for`` waits and measures time with.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )
        self._sleep = sleep
        self._monotonic = monotonic

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, call: _Call) -> httpx.Response:
        try:
            response = self._http.request(
                call.method, call.path, json=call.json, params=call.params, headers=call.headers
            )
        except httpx.HTTPError as exc:
            raise _unreachable(self._http.base_url, exc) from exc
        if response.is_error:
            raise _error_for(response)
        return response

    # submit

    def send_fax(self, to: str, media_url: str, **options: Unpack[SubmitOptions]) -> RemoteJob:
        """Queue a fax of the PDF at ``media_url``."""
        fields = {"to": to, "media_url": media_url}
        return _read_job(self._send(_submit_call("/v1/faxes", fields, options, _SUBMIT_OPTIONS)))

    def send_sms(
        self,
        to: str,
        body: str | None = None,
        media_url: str | None = None,
        **options: Unpack[SubmitOptions],
    ) -> RemoteJob:
        """Queue an SMS (``body``) or MMS (``media_url``)."""
        fields = {"to": to, "body": body, "media_url": media_url}
        call = _submit_call("/v1/messages", fields, options, _SUBMIT_OPTIONS)
        return _read_job(self._send(call))

    def send_call(
        self,
        to: str,
        twiml: str | None = None,
        url: str | None = None,
        **options: Unpack[SubmitOptions],
    ) -> RemoteJob:
        """Queue a voice call playing ``twiml`` or the TwiML at ``url``."""
        fields = {"to": to, "twiml": twiml, "url": url}
        return _read_job(self._send(_submit_call("/v1/calls", fields, options, _SUBMIT_OPTIONS)))

    def request(
        self,
        api: str,
        method: HttpMethod = "POST",
        params: Mapping[str, Any] | None = None,
        to: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> RemoteJob:
        """Queue a generic provider API request (lookup, verify, studio, ...)."""
        fields = {"api": api, "method": method.upper(), "params": params, "to": to}
        call = _submit_call("/v1/requests", fields, options, _REQUEST_OPTIONS)
        return _read_job(self._send(call))

    # read and steer

    def get_job(self, job_id: int) -> RemoteJobDetail:
        """One job with its attempts and events."""
        return _read_detail(self._send(_Call("GET", _job_path(job_id))))

    def list_jobs(
        self,
        status: Status | str | None = None,
        to: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 100,
    ) -> Iterator[RemoteJob]:
        """Jobs, newest first, fetched a page at a time as the iterator is consumed."""
        params = _list_params(status, to, created_after, created_before, page_size)
        while True:
            jobs, cursor = _read_page(self._send(_Call("GET", "/v1/jobs", params=params)))
            yield from jobs
            if cursor is None or not jobs:
                return
            params = params | {"cursor": cursor}

    def cancel(self, job_id: int) -> RemoteJob:
        """Cancel a job: at once if waiting, when its attempt ends if in flight."""
        return _read_job(self._send(_Call("POST", _job_path(job_id, "cancel"))))

    def retry(self, job_id: int) -> RemoteJob:
        """Queue a failed, canceled, held, uncertain or blocked job again."""
        return _read_job(self._send(_Call("POST", _job_path(job_id, "retry"))))

    def retry_jobs(
        self,
        *,
        status: Sequence[str] | None = None,
        since: datetime | None = None,
        reason: str | None = None,
        batch: int | None = None,
    ) -> int:
        """Queue again every job the filters match (at least one; ``status`` defaults to
        failed); how many."""
        return _retried(self._send(_retry_call(status, since, reason, batch)))

    # -- guardrails (answers as the API's JSON documents) --------------------------------

    def allowlist(self) -> dict[str, Any]:
        """The allowlist: environment, whether enforced, configured and stored entries."""
        doc: dict[str, Any] = _doc(self._send(_guard_call("allowlist")))
        return doc

    def allowlist_add(self, number: str, note: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = _doc(self._send(_guard_call("allowlist_add", number, note)))
        return doc

    def allowlist_remove(self, number: str) -> None:
        self._send(_guard_call("allowlist_remove", number))

    def suppressions(self, number: str | None = None) -> list[dict[str, Any]]:
        doc: dict[str, Any] = _doc(self._send(_guard_call("suppressions", number)))
        return list(doc["data"])

    def suppress(
        self, number: str, kind: str | None = None, reason: str = "manual"
    ) -> dict[str, Any]:
        """Stop contacting ``number`` (for ``kind``, or every kind)."""
        doc: dict[str, Any] = _doc(self._send(_guard_call("suppress", number, kind, reason)))
        return doc

    def unsuppress(self, number: str, kind: str | None = None) -> None:
        self._send(_guard_call("unsuppress", number, kind))

    def breaker(self) -> dict[str, Any]:
        doc: dict[str, Any] = _doc(self._send(_guard_call("breaker")))
        return doc

    def trip_breaker(self, reason: str) -> dict[str, Any]:
        """The kill switch: no new sends until :meth:`reset_breaker`."""
        doc: dict[str, Any] = _doc(self._send(_guard_call("trip", reason)))
        return doc

    def reset_breaker(self, reason: str) -> dict[str, Any]:
        """Resume sending; the reason is recorded."""
        doc: dict[str, Any] = _doc(self._send(_guard_call("reset", reason)))
        return doc

    # batches

    def submit_batch(
        self,
        file: str | os.PathLike[str] | IO[bytes],
        *,
        kind: str | None = None,
        rate: float | None = None,
        name: str | None = None,
        strict: bool = False,
        filename: str | None = None,
    ) -> dict[str, Any]:
        """Upload a batch file (CSV, JSON or JSON Lines); return the batch as accepted.

        A strict batch with an invalid row raises ``ValidationError`` (``batch_rejected``).
        """
        form = _batch_form(kind, rate, name, strict)
        if isinstance(file, str | os.PathLike):
            with open(file, "rb") as stream:
                return self._upload(stream, filename or os.path.basename(file), form)
        return self._upload(file, filename or "batch", form)

    def _upload(self, stream: IO[bytes], filename: str, form: dict[str, str]) -> dict[str, Any]:
        try:  # no read timeout: a large file takes a while to be accepted
            response = self._http.post(
                "/v1/batches", files={"file": (filename, stream)}, data=form, timeout=UPLOAD
            )
        except httpx.HTTPError as exc:
            raise _unreachable(self._http.base_url, exc) from exc
        if response.is_error:
            raise _error_for(response)
        body: dict[str, Any] = _json(response)
        return body

    def get_batch(self, batch_id: int) -> dict[str, Any]:
        """A batch with its counts per status, achieved rate and ETA."""
        body: dict[str, Any] = _json(self._send(_batch_call(batch_id)))
        return body

    def pause_batch(self, batch_id: int) -> dict[str, Any]:
        return self._steer_batch(batch_id, "pause")

    def resume_batch(self, batch_id: int) -> dict[str, Any]:
        return self._steer_batch(batch_id, "resume")

    def cancel_batch(self, batch_id: int) -> dict[str, Any]:
        return self._steer_batch(batch_id, "cancel")

    def _steer_batch(self, batch_id: int, action: str) -> dict[str, Any]:
        body: dict[str, Any] = _json(self._send(_batch_call(batch_id, action)))
        return body

    def batch_errors(self, batch_id: int) -> Iterator[dict[str, Any]]:
        """The batch's rows that were not queued, page by page."""
        params: dict[str, str | int] = {}
        while True:
            page = _json(self._send(_batch_call(batch_id, "errors", params)))
            yield from page["data"]
            if page["next_cursor"] is None:
                return
            params = {"cursor": page["next_cursor"]}

    def batch_results(self, batch_id: int, out: IO[bytes], *, format: str = "csv") -> int:
        """Write the results export (``csv`` or ``jsonl``) to ``out``; return its bytes."""
        path = f"/v1/batches/{int(batch_id)}/results"
        written = 0
        try:
            with self._http.stream("GET", path, params={"format": format}) as response:
                if response.is_error:
                    response.read()
                    raise _error_for(response)
                for chunk in response.iter_bytes():
                    written += out.write(chunk)
        except httpx.HTTPError as exc:
            raise _unreachable(self._http.base_url, exc) from exc
        return written

    def wait_for(
        self,
        job_id: int,
        timeout: float,
        *,
        poll: float = 0.5,
        until: Callable[[RemoteJob], bool] | Collection[Status | str] = terminal,
    ) -> RemoteJobDetail:
        """Poll the job every ``poll`` seconds until ``until`` holds (by default: it is
        terminal) and return it; raise :class:`~callgate.exceptions.WaitTimeout` (a
        ``TimeoutError``) if that takes longer than ``timeout`` seconds."""
        done = _done_when(until)
        deadline = self._monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if done(job):
                return job
            left = deadline - self._monotonic()
            if left <= 0:
                raise _timed_out(job, timeout)
            self._sleep(min(poll, left))


class AsyncClient:
    """The callgate HTTP API, asynchronously: :class:`Client`'s methods as coroutines."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )
        self._sleep = sleep
        self._monotonic = monotonic

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    def __repr__(self) -> str:
        return f"AsyncClient({self.base_url!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, call: _Call) -> httpx.Response:
        try:
            response = await self._http.request(
                call.method, call.path, json=call.json, params=call.params, headers=call.headers
            )
        except httpx.HTTPError as exc:
            raise _unreachable(self._http.base_url, exc) from exc
        if response.is_error:
            raise _error_for(response)
        return response

    # submit

    async def send_fax(
        self, to: str, media_url: str, **options: Unpack[SubmitOptions]
    ) -> RemoteJob:
        """Queue a fax of the PDF at ``media_url``."""
        fields = {"to": to, "media_url": media_url}
        call = _submit_call("/v1/faxes", fields, options, _SUBMIT_OPTIONS)
        return _read_job(await self._send(call))

    async def send_sms(
        self,
        to: str,
        body: str | None = None,
        media_url: str | None = None,
        **options: Unpack[SubmitOptions],
    ) -> RemoteJob:
        """Queue an SMS (``body``) or MMS (``media_url``)."""
        fields = {"to": to, "body": body, "media_url": media_url}
        call = _submit_call("/v1/messages", fields, options, _SUBMIT_OPTIONS)
        return _read_job(await self._send(call))

    async def send_call(
        self,
        to: str,
        twiml: str | None = None,
        url: str | None = None,
        **options: Unpack[SubmitOptions],
    ) -> RemoteJob:
        """Queue a voice call playing ``twiml`` or the TwiML at ``url``."""
        fields = {"to": to, "twiml": twiml, "url": url}
        call = _submit_call("/v1/calls", fields, options, _SUBMIT_OPTIONS)
        return _read_job(await self._send(call))

    async def request(
        self,
        api: str,
        method: HttpMethod = "POST",
        params: Mapping[str, Any] | None = None,
        to: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> RemoteJob:
        """Queue a generic provider API request (lookup, verify, studio, ...)."""
        fields = {"api": api, "method": method.upper(), "params": params, "to": to}
        call = _submit_call("/v1/requests", fields, options, _REQUEST_OPTIONS)
        return _read_job(await self._send(call))

    # read and steer

    async def get_job(self, job_id: int) -> RemoteJobDetail:
        """One job with its attempts and events."""
        return _read_detail(await self._send(_Call("GET", _job_path(job_id))))

    async def list_jobs(
        self,
        status: Status | str | None = None,
        to: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[RemoteJob]:
        """Jobs, newest first, fetched a page at a time as the iterator is consumed."""
        params = _list_params(status, to, created_after, created_before, page_size)
        while True:
            page = await self._send(_Call("GET", "/v1/jobs", params=params))
            jobs, cursor = _read_page(page)
            for job in jobs:
                yield job
            if cursor is None or not jobs:
                return
            params = params | {"cursor": cursor}

    async def cancel(self, job_id: int) -> RemoteJob:
        """Cancel a job: at once if waiting, when its attempt ends if in flight."""
        return _read_job(await self._send(_Call("POST", _job_path(job_id, "cancel"))))

    async def retry(self, job_id: int) -> RemoteJob:
        """Queue a failed, canceled, held, uncertain or blocked job again."""
        return _read_job(await self._send(_Call("POST", _job_path(job_id, "retry"))))

    async def retry_jobs(
        self,
        *,
        status: Sequence[str] | None = None,
        since: datetime | None = None,
        reason: str | None = None,
        batch: int | None = None,
    ) -> int:
        """Queue again every job the filters match (at least one; ``status`` defaults to
        failed); how many."""
        return _retried(await self._send(_retry_call(status, since, reason, batch)))

    # -- guardrails (answers as the API's JSON documents) --------------------------------

    async def allowlist(self) -> dict[str, Any]:
        """The allowlist: environment, whether enforced, configured and stored entries."""
        doc: dict[str, Any] = _doc(await self._send(_guard_call("allowlist")))
        return doc

    async def allowlist_add(self, number: str, note: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = _doc(await self._send(_guard_call("allowlist_add", number, note)))
        return doc

    async def allowlist_remove(self, number: str) -> None:
        await self._send(_guard_call("allowlist_remove", number))

    async def suppressions(self, number: str | None = None) -> list[dict[str, Any]]:
        doc: dict[str, Any] = _doc(await self._send(_guard_call("suppressions", number)))
        return list(doc["data"])

    async def suppress(
        self, number: str, kind: str | None = None, reason: str = "manual"
    ) -> dict[str, Any]:
        """Stop contacting ``number`` (for ``kind``, or every kind)."""
        doc: dict[str, Any] = _doc(await self._send(_guard_call("suppress", number, kind, reason)))
        return doc

    async def unsuppress(self, number: str, kind: str | None = None) -> None:
        await self._send(_guard_call("unsuppress", number, kind))

    async def breaker(self) -> dict[str, Any]:
        doc: dict[str, Any] = _doc(await self._send(_guard_call("breaker")))
        return doc

    async def trip_breaker(self, reason: str) -> dict[str, Any]:
        """The kill switch: no new sends until :meth:`reset_breaker`."""
        doc: dict[str, Any] = _doc(await self._send(_guard_call("trip", reason)))
        return doc

    async def reset_breaker(self, reason: str) -> dict[str, Any]:
        """Resume sending; the reason is recorded."""
        doc: dict[str, Any] = _doc(await self._send(_guard_call("reset", reason)))
        return doc

    # batches

    async def submit_batch(
        self,
        file: str | os.PathLike[str] | IO[bytes],
        *,
        kind: str | None = None,
        rate: float | None = None,
        name: str | None = None,
        strict: bool = False,
        filename: str | None = None,
    ) -> dict[str, Any]:
        """Upload a batch file (see :meth:`Client.submit_batch`)."""
        form = _batch_form(kind, rate, name, strict)
        if isinstance(file, str | os.PathLike):
            with open(file, "rb") as stream:
                return await self._upload(stream, filename or os.path.basename(file), form)
        return await self._upload(file, filename or "batch", form)

    async def _upload(
        self, stream: IO[bytes], filename: str, form: dict[str, str]
    ) -> dict[str, Any]:
        try:
            response = await self._http.post(
                "/v1/batches", files={"file": (filename, stream)}, data=form, timeout=UPLOAD
            )
        except httpx.HTTPError as exc:
            raise _unreachable(self._http.base_url, exc) from exc
        if response.is_error:
            raise _error_for(response)
        body: dict[str, Any] = _json(response)
        return body

    async def get_batch(self, batch_id: int) -> dict[str, Any]:
        """A batch with its counts per status, achieved rate and ETA."""
        body: dict[str, Any] = _json(await self._send(_batch_call(batch_id)))
        return body

    async def pause_batch(self, batch_id: int) -> dict[str, Any]:
        return await self._steer_batch(batch_id, "pause")

    async def resume_batch(self, batch_id: int) -> dict[str, Any]:
        return await self._steer_batch(batch_id, "resume")

    async def cancel_batch(self, batch_id: int) -> dict[str, Any]:
        return await self._steer_batch(batch_id, "cancel")

    async def _steer_batch(self, batch_id: int, action: str) -> dict[str, Any]:
        body: dict[str, Any] = _json(await self._send(_batch_call(batch_id, action)))
        return body

    async def batch_errors(self, batch_id: int) -> AsyncIterator[dict[str, Any]]:
        """The batch's rows that were not queued, page by page."""
        params: dict[str, str | int] = {}
        while True:
            page = _json(await self._send(_batch_call(batch_id, "errors", params)))
            for row in page["data"]:
                yield row
            if page["next_cursor"] is None:
                return
            params = {"cursor": page["next_cursor"]}

    async def batch_results(self, batch_id: int, out: IO[bytes], *, format: str = "csv") -> int:
        """Write the results export (``csv`` or ``jsonl``) to ``out``; return its bytes."""
        path = f"/v1/batches/{int(batch_id)}/results"
        written = 0
        try:
            async with self._http.stream("GET", path, params={"format": format}) as response:
                if response.is_error:
                    await response.aread()
                    raise _error_for(response)
                async for chunk in response.aiter_bytes():
                    written += out.write(chunk)
        except httpx.HTTPError as exc:
            raise _unreachable(self._http.base_url, exc) from exc
        return written

    async def wait_for(
        self,
        job_id: int,
        timeout: float,
        *,
        poll: float = 0.5,
        until: Callable[[RemoteJob], bool] | Collection[Status | str] = terminal,
    ) -> RemoteJobDetail:
        """Poll the job every ``poll`` seconds until ``until`` holds (by default: it is
        terminal) and return it; raise :class:`~callgate.exceptions.WaitTimeout` (a
        ``TimeoutError``) if that takes longer than ``timeout`` seconds."""
        done = _done_when(until)
        deadline = self._monotonic() + timeout
        while True:
            job = await self.get_job(job_id)
            if done(job):
                return job
            left = deadline - self._monotonic()
            if left <= 0:
                raise _timed_out(job, timeout)
            await self._sleep(min(poll, left))
