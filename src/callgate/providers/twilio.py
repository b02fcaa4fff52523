"""The Twilio adapter: Messages, Calls and REST requests (Lookup, Verify, Studio, raw).

Built on the official ``twilio`` SDK (9.x) and its ``*_async`` methods. Every Twilio
domain the adapter uses (api, lookups, verify, studio) can be pointed at one base URL
(``CALLGATE_TWILIO_BASE_URL``: the HTTP simulator in tests) and the HTTP client is
injectable (:mod:`~callgate.providers.twilio_http`). Statuses and errors are classified
by :mod:`~callgate.providers.twilio_mapping` only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import quote

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from callgate.clock import Clock, SystemClock
from callgate.domain import AttemptResult, Fault, Job, Kind, Outcome
from callgate.providers.base import CannotReconcile, Found, PushedStatuses, StatusListener
from callgate.providers.twilio_http import AiohttpTwilioClient, RecordingClient, capture, header
from callgate.providers.twilio_mapping import (
    api_error,
    call_outcome,
    code_fault,
    error_fault,
    error_outcome,
    message_outcome,
    retry_after,
    suppressing,
    transport_outcome,
)

#: call progress events Twilio posts to the status callback (busy/no-answer/failed come
#: as the "completed" event with that CallStatus)
CALL_EVENTS = ("completed",)
#: domains a ``raw`` request may address (attributes of ``twilio.rest.Client``)
RAW_DOMAINS = frozenset(
    {"api", "lookups", "verify", "studio", "messaging", "voice", "conversations", "notify"}
)
#: most records one ``find`` reads per query
FIND_LIMIT = 1000
#: a non-empty environment for the SDK, so TWILIO_* variables of the shell are ignored
_NO_ENV = {"CALLGATE": "ignores TWILIO_* variables"}
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


def sdk_argument(name: str) -> str:
    """The SDK's keyword for a Twilio parameter name: ``MessagingServiceSid`` ->
    ``messaging_service_sid``, ``From`` -> ``from_``."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return "from_" if snake == "from" else snake


def sdk_arguments(params: Mapping[str, Any]) -> dict[str, Any]:
    """A job's Twilio parameters (validated at submit) as the SDK's keyword arguments."""
    return {sdk_argument(name): value for name, value in params.items()}


class ApiCall(NamedTuple):
    """One REST request of a ``request`` job: which domain, what, where, with what."""

    domain: str
    method: str
    path: str
    query: dict[str, Any]
    form: dict[str, Any]


class TwilioProvider:
    """Sends SMS/MMS, calls and REST requests through Twilio (or anything that speaks it)."""

    name = "twilio"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        base_url: str | None = None,
        status_callback: str | None = None,
        http_client: Any | None = None,
        accept_sent: bool = False,
        timeout: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        if api_key and api_secret:  # revocable, and what Twilio recommends over the token
            username, password = api_key, api_secret
        elif auth_token:
            username, password = account_sid, auth_token
        else:
            raise ValueError("Twilio needs an auth token, or an API key and its secret")
        self.base_url = base_url
        self.status_callback = status_callback
        self.accept_sent = accept_sent
        self.clock = clock or SystemClock()
        self.pushed = PushedStatuses()
        transport = http_client or AiohttpTwilioClient(timeout=timeout)
        self.client = Client(
            username,
            password,
            account_sid=account_sid,
            http_client=RecordingClient(transport),
            environment=_NO_ENV,
        )
        if base_url is not None:
            for domain in ("api", "lookups", "verify", "studio"):
                getattr(self.client, domain).base_url = base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"TwilioProvider({self.account_sid!r}, base_url={self.base_url!r})"

    def set_listener(self, listener: StatusListener | None) -> None:
        self.pushed.listener = listener

    def push(self, ref: str, result: AttemptResult) -> None:
        """A verified status callback for ``ref`` (see :mod:`callgate.api.providers`)."""
        self.pushed.push(ref, result)

    async def aclose(self) -> None:
        await self.client.http_client.close()

    # -- sending -----------------------------------------------------------------------

    async def send(self, job: Job) -> AttemptResult:
        return suppressing(await self._send(job), job.kind)

    async def _send(self, job: Job) -> AttemptResult:
        with capture() as seen:
            try:
                if job.kind is Kind.SMS:
                    return self.message_result(await self._create_message(job))
                if job.kind is Kind.CALL:
                    return self.call_result(await self._create_call(job))
                if job.kind is Kind.REQUEST:
                    return await self._request(job)
                return AttemptResult(
                    Outcome.PERMANENT,
                    error_message="Twilio sends no faxes (its fax API closed on 2021-12-17); "
                    "route faxes to signalwire or telnyx",
                )
            except TwilioRestException as exc:
                return self._rest_error(exc, seen[-1] if seen else None)
            except TRANSPORT_ERRORS as exc:
                idempotent = job.kind is Kind.REQUEST and job.payload.get("method") == "GET"
                return AttemptResult(
                    transport_outcome(exc, idempotent=idempotent),
                    error_message=f"no answer from Twilio: {exc!r}",
                    fault=Fault.OUTAGE,
                )

    def _from(self, job: Job) -> str | None:
        return job.payload.get("from") or self.from_number

    async def _create_message(self, job: Job) -> Any:
        params = job.payload.get("params") or {}
        fields: dict[str, Any] = {"to": job.to, **sdk_arguments(params)}
        if job.payload.get("from") is not None:
            fields["from_"] = job.payload["from"]
        elif "MessagingServiceSid" not in params:
            # a Messaging Service (its sender pool) unless a number is configured instead
            if self.messaging_service_sid:
                fields["messaging_service_sid"] = self.messaging_service_sid
            else:
                fields["from_"] = self.from_number
        if job.payload.get("body") is not None:
            fields["body"] = job.payload["body"]
        if job.payload.get("media_url") is not None:
            fields["media_url"] = [job.payload["media_url"]]
        if self.status_callback:
            fields["status_callback"] = self.status_callback
        return await self.client.messages.create_async(**fields)

    async def _create_call(self, job: Job) -> Any:
        params = job.payload.get("params") or {}
        fields: dict[str, Any] = {"to": job.to, "from_": self._from(job), **sdk_arguments(params)}
        if job.payload.get("twiml") is not None:
            fields["twiml"] = job.payload["twiml"]
        elif job.payload.get("url") is not None:
            fields["url"] = job.payload["url"]
        if self.status_callback:
            fields["status_callback"] = self.status_callback
            fields["status_callback_event"] = list(CALL_EVENTS)
            fields["status_callback_method"] = "POST"
        return await self.client.calls.create_async(**fields)

    async def _request(self, job: Job) -> AttemptResult:
        try:
            call = api_call(job, self.from_number)
        except ValueError as exc:
            return AttemptResult(Outcome.PERMANENT, error_message=str(exc))
        domain = getattr(self.client, call.domain)
        response = await domain.request_async(
            call.method, call.path, params=call.query or None, data=call.form or None
        )
        return self.response_result(response)

    # -- results -----------------------------------------------------------------------

    def message_result(self, message: Any) -> AttemptResult:
        outcome = message_outcome(message.status, message.error_code, accept_sent=self.accept_sent)
        return AttemptResult(
            outcome,
            provider_ref=message.sid,
            error_code=None if message.error_code is None else str(message.error_code),
            error_message=message.error_message,
            ended_at=_ts(message.date_updated) if outcome is not None else None,
            fault=code_fault(message.error_code) if outcome is not None else None,
        )

    def call_result(self, call: Any) -> AttemptResult:
        outcome = call_outcome(call.status)
        failed = outcome is not None and outcome is not Outcome.DELIVERED
        return AttemptResult(
            outcome,
            provider_ref=call.sid,
            error_message=f"call {call.status}" if failed else None,
            ended_at=_ts(call.end_time) if outcome is not None else None,
        )

    def response_result(self, response: Any) -> AttemptResult:
        """A ``request`` job's answer: 2xx is delivered (with the body), else the error."""
        try:
            body = json.loads(response.text) if response.text else {}
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {"items": body}
        if 200 <= response.status_code < 300:
            ref = body.get("sid") if isinstance(body.get("sid"), str) else None
            return AttemptResult(Outcome.DELIVERED, provider_ref=ref, response=body)
        return api_error(
            response.status_code,
            body,
            retry_after_header=header(response, "Retry-After"),
            now=self.clock.now(),
            text=response.text or "",
        )

    def _rest_error(self, exc: TwilioRestException, response: Any | None) -> AttemptResult:
        outcome = error_outcome(exc.status, exc.code)
        wait = None
        if outcome is Outcome.RATE_LIMITED:
            wait = retry_after(header(response, "Retry-After"), self.clock.now())
        return AttemptResult(
            outcome,
            error_code=str(exc.code if exc.code is not None else exc.status),
            error_message=str(exc.msg),
            retry_after=wait,
            fault=error_fault(exc.status, exc.code),
        )

    # -- status and reconciliation -----------------------------------------------------

    async def status(self, job: Job, ref: str) -> AttemptResult:
        return suppressing(await self._status(job, ref), job.kind)

    async def _status(self, job: Job, ref: str) -> AttemptResult:
        pushed = self.pushed.pop(ref)
        if pushed is not None:
            return pushed
        if job.kind not in (Kind.SMS, Kind.CALL):
            return AttemptResult(Outcome.UNKNOWN, ref, error_message="nothing to poll")
        try:
            if job.kind is Kind.SMS:
                return self.message_result(await self.client.messages(ref).fetch_async())
            return self.call_result(await self.client.calls(ref).fetch_async())
        except TwilioRestException as exc:
            if exc.status == 404:
                return AttemptResult(Outcome.UNKNOWN, ref, str(exc.code), f"no record: {exc.msg}")
            return AttemptResult(None, ref, error_message=f"status poll failed: {exc.msg}")
        except TRANSPORT_ERRORS as exc:  # a failed poll proves nothing: still under way
            return AttemptResult(None, ref, error_message=f"status poll failed: {exc!r}")

    async def find(self, job: Job, since: float, until: float) -> list[Found]:
        """Messages or calls to ``job.to`` created in [since, until] (Twilio's clock).

        Twilio filters by sent/start *date* only, and a message not yet sent has no
        sent date, so two queries are merged: everything since the day of ``since``,
        and the newest records to the number; the window is then applied to
        ``date_created``.
        """
        if job.kind not in (Kind.SMS, Kind.CALL):
            raise CannotReconcile(f"Twilio cannot list {job.kind} jobs")
        day = datetime.fromtimestamp(since, UTC).replace(hour=0, minute=0, second=0)
        convert: Callable[[Any], AttemptResult]
        try:
            if job.kind is Kind.SMS:
                listing = self.client.messages
                dated = await listing.list_async(to=job.to, date_sent_after=day, limit=FIND_LIMIT)
                convert = self.message_result
            else:
                listing = self.client.calls
                dated = await listing.list_async(to=job.to, start_time_after=day, limit=FIND_LIMIT)
                convert = self.call_result
            recent = await listing.list_async(to=job.to, limit=50)
        except (TwilioException, *TRANSPORT_ERRORS) as exc:
            raise CannotReconcile(f"could not list Twilio records: {exc!r}") from exc
        records = {r.sid: r for r in [*dated, *recent]}.values()
        # Twilio's dates are whole seconds: a record made at 100.95 says 100, which must
        # count for a window from 100.4 (else it is "not found" and the job sent again)
        start = math.floor(since)
        inside = [r for r in records if start <= (_ts(r.date_created) or 0.0) <= until]
        inside.sort(key=lambda r: _ts(r.date_created) or 0.0)
        return [Found(r.sid, convert(r)) for r in inside]


def api_call(job: Job, default_from: str | None = None) -> ApiCall:
    """The REST request a ``request`` job names; ValueError if it names none we know.

    ``payload["params"]`` uses Twilio's own parameter names (``Channel``, ``Fields``,
    ``Parameters``...). ``api`` is ``lookup`` (GET /v2/PhoneNumbers/{To}), ``verify``
    (POST /v2/Services/{ServiceSid}/Verifications), ``studio`` (POST
    /v2/Flows/{FlowSid}/Executions) or ``raw`` (``domain``, ``method``, ``path``,
    ``params``).
    """
    api = str(job.payload.get("api", "")).lower()
    params = dict(job.payload.get("params") or {})
    to = job.to or params.get("To") or params.get("PhoneNumber")
    params.pop("To", None)
    if api == "lookup":
        params.pop("PhoneNumber", None)  # it is the path's
    if api == "lookup":
        if not to:
            raise ValueError("a lookup needs a number (to)")
        return ApiCall("lookups", "GET", f"/v2/PhoneNumbers/{quote(to)}", params, {})
    if api == "verify":
        sid = _required(params, "ServiceSid")
        form = {"To": to, "Channel": "sms"} | params
        return ApiCall("verify", "POST", f"/v2/Services/{quote(sid)}/Verifications", {}, form)
    if api == "studio":
        sid = _required(params, "FlowSid")
        form = {"To": to, "From": job.payload.get("from") or default_from} | params
        if isinstance(form.get("Parameters"), Mapping):
            form["Parameters"] = json.dumps(form["Parameters"])
        return ApiCall("studio", "POST", f"/v2/Flows/{quote(sid)}/Executions", {}, form)
    if api == "raw":
        return _raw_call(job, params)
    raise ValueError(f"unknown Twilio api {api!r}: expected lookup, verify, studio or raw")


def _raw_call(job: Job, params: dict[str, Any]) -> ApiCall:
    domain = str(params.get("domain", "api"))
    if domain not in RAW_DOMAINS:
        raise ValueError(f"unknown Twilio domain {domain!r}: one of {sorted(RAW_DOMAINS)}")
    method = str(params.get("method") or job.payload.get("method") or "GET").upper()
    path = str(params.get("path") or "")
    if not path.startswith("/") or "://" in path or ".." in path:
        raise ValueError("raw requests need a path like /v2/... (relative to the domain)")
    inner = dict(params.get("params") or {})
    if method in ("GET", "DELETE"):
        return ApiCall(domain, method, path, inner, {})
    return ApiCall(domain, method, path, {}, inner)


def _required(params: dict[str, Any], name: str) -> str:
    value = params.pop(name, None)
    if not isinstance(value, str) or not value:
        raise ValueError(f"params.{name} is required")
    return value


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()
