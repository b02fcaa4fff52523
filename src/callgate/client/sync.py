"""The synchronous client (:class:`Client`)."""

from __future__ import annotations

import os
import time
from collections.abc import (
    Callable,
    Collection,
    Iterator,
    Mapping,
    Sequence,
)
from datetime import datetime
from types import TracebackType
from typing import IO, Any, Unpack

import httpx

from callgate.client.core import (
    _REQUEST_OPTIONS,
    _SUBMIT_OPTIONS,
    UPLOAD,
    HttpMethod,
    RemoteJob,
    RemoteJobDetail,
    RequestOptions,
    SubmitOptions,
    _batch_call,
    _batch_form,
    _Call,
    _doc,
    _done_when,
    _error_for,
    _guard_call,
    _headers,
    _job_path,
    _json,
    _list_params,
    _read_detail,
    _read_job,
    _read_page,
    _retried,
    _retry_call,
    _submit_call,
    _timed_out,
    _unreachable,
    terminal,
)
from callgate.domain import Status


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
