"""The SignalWire adapter: faxes over its Twilio-compatible LaML API (and SMS/calls too).

Twilio's own fax API closed on 2021-12-17; SignalWire kept the same REST shape at
``{space}/api/laml/2010-04-01/Accounts/{ProjectID}/Faxes.json``. The ``signalwire``
package pins twilio 6.54 and an old aiohttp and cannot be installed beside twilio 9, so
this adapter drives the twilio 9 SDK's client (``request_async``, the same HTTP seam
and Basic auth) against the space URL instead. SMS and calls are the Twilio adapter
itself with its API domain at ``{space}/api/laml``.
"""

from __future__ import annotations

import email.utils
import json
import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from callgate.clock import Clock
from callgate.domain import AttemptResult, Fault, Job, Kind, Outcome
from callgate.providers.base import CannotReconcile, Found, PushedStatuses, StatusListener
from callgate.providers.twilio import TRANSPORT_ERRORS, TwilioProvider
from callgate.providers.twilio_http import header
from callgate.providers.twilio_mapping import api_error, fax_outcome, transport_outcome

FIND_PAGE = 1000


class SignalWireProvider:
    """Faxes (and Twilio-shaped SMS and calls) through a SignalWire space."""

    name = "signalwire"

    def __init__(
        self,
        *,
        project_id: str,
        api_token: str,
        space_url: str,
        from_number: str | None = None,
        status_callback: str | None = None,
        http_client: Any | None = None,
        accept_sent: bool = False,
        timeout: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self.project_id = project_id
        self.space_url = space_base(space_url)
        self.from_number = from_number
        self.status_callback = status_callback
        self.laml = TwilioProvider(
            account_sid=project_id,
            auth_token=api_token,
            from_number=from_number,
            base_url=f"{self.space_url}/api/laml",
            status_callback=status_callback,
            http_client=http_client,
            accept_sent=accept_sent,
            timeout=timeout,
            clock=clock,
        )
        self.pushed: PushedStatuses = self.laml.pushed
        self.client = self.laml.client
        self.clock = self.laml.clock
        account = quote(project_id)
        self.faxes_url = f"{self.space_url}/api/laml/2010-04-01/Accounts/{account}/Faxes"

    def __repr__(self) -> str:
        return f"SignalWireProvider({self.project_id!r}, space={self.space_url!r})"

    def set_listener(self, listener: StatusListener | None) -> None:
        self.pushed.listener = listener

    def push(self, ref: str, result: AttemptResult) -> None:
        """A verified status callback for ``ref`` (see :mod:`callgate.api.providers`)."""
        self.pushed.push(ref, result)

    async def aclose(self) -> None:
        await self.laml.aclose()

    async def send(self, job: Job) -> AttemptResult:
        if job.kind in (Kind.SMS, Kind.CALL):
            return await self.laml.send(job)
        if job.kind is not Kind.FAX:
            return AttemptResult(
                Outcome.PERMANENT, error_message=f"the SignalWire adapter sends no {job.kind}"
            )
        form = {
            "To": job.to,
            "From": job.payload.get("from") or self.from_number,
            "MediaUrl": job.payload["media_url"],
        }
        if self.status_callback:
            form["StatusCallback"] = self.status_callback
        try:
            response = await self.client.request_async("POST", self.faxes_url + ".json", data=form)
        except TRANSPORT_ERRORS as exc:
            return AttemptResult(
                transport_outcome(exc), error_message=f"no answer: {exc!r}", fault=Fault.OUTAGE
            )
        body = _json(response.text)
        if response.status_code >= 300:
            return api_error(
                response.status_code,
                body,
                retry_after_header=header(response, "Retry-After"),
                now=self.clock.now(),
                text=response.text or "",
            )
        return fax_result(body)

    async def status(self, job: Job, ref: str) -> AttemptResult:
        pushed = self.pushed.pop(ref)
        if pushed is not None:
            return pushed
        if job.kind is not Kind.FAX:
            return await self.laml.status(job, ref)
        url = f"{self.faxes_url}/{quote(ref)}.json"
        try:
            response = await self.client.request_async("GET", url)
        except TRANSPORT_ERRORS as exc:
            return AttemptResult(None, ref, error_message=f"status poll failed: {exc!r}")
        if response.status_code == 404:
            return AttemptResult(Outcome.UNKNOWN, ref, "404", f"no record of {ref}")
        if response.status_code >= 300:
            return AttemptResult(
                None, ref, error_message=f"status poll: HTTP {response.status_code}"
            )
        return fax_result(_json(response.text))

    async def find(self, job: Job, since: float, until: float) -> list[Found]:
        """Faxes to ``job.to`` created in [since, until]; SMS and calls as Twilio's."""
        if job.kind is not Kind.FAX:
            return await self.laml.find(job, since, until)
        query: dict[str, object] | None = {
            "To": job.to,
            "DateCreatedAfter": _iso(since - 1),
            "DateCreatedOnOrBefore": _iso(until + 1),
            "PageSize": FIND_PAGE,
        }
        url: str | None = self.faxes_url + ".json"
        faxes: list[dict[str, Any]] = []
        while url is not None:
            try:
                response = await self.client.request_async("GET", url, params=query)
            except TRANSPORT_ERRORS as exc:
                raise CannotReconcile(f"could not list SignalWire faxes: {exc!r}") from exc
            if response.status_code != 200:
                raise CannotReconcile(f"listing SignalWire faxes: HTTP {response.status_code}")
            page = _json(response.text)
            faxes += [f for f in page.get("faxes") or [] if isinstance(f, dict)]
            url = _next_page(self.space_url, page.get("next_page_uri"))
            query = None  # the next page's URI carries the query
        start = math.floor(since)  # its dates are whole seconds (see TwilioProvider.find)
        inside = [f for f in faxes if start <= (parse_time(f.get("date_created")) or 0) <= until]
        inside.sort(key=lambda f: parse_time(f.get("date_created")) or 0.0)
        return [Found(str(f["sid"]), fax_result(f)) for f in inside if f.get("sid")]


def fax_result(fax: dict[str, Any]) -> AttemptResult:
    """A SignalWire Fax resource (JSON) as an attempt result."""
    outcome = fax_outcome(fax.get("status"), fax.get("error_code"))
    code = fax.get("error_code")
    return AttemptResult(
        outcome,
        provider_ref=None if fax.get("sid") is None else str(fax["sid"]),
        error_code=None if code in (None, "") else str(code),
        error_message=fax.get("error_message") or _failed(outcome, fax.get("status")),
        ended_at=parse_time(fax.get("date_updated")) if outcome is not None else None,
    )


def _failed(outcome: Outcome | None, status: object) -> str | None:
    return None if outcome in (None, Outcome.DELIVERED) else f"fax {status}"


def space_base(space_url: str) -> str:
    """``example.signalwire.com`` or ``https://example.signalwire.com/`` → a base URL."""
    url = space_url.strip().rstrip("/")
    return url if "://" in url else f"https://{url}"


def parse_time(raw: object) -> float | None:
    """A SignalWire time: ISO 8601 (its docs) or RFC 2822 (Twilio's shape)."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        try:
            value = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _next_page(base: str, uri: object) -> str | None:
    if not isinstance(uri, str) or not uri:
        return None
    return uri if "://" in uri else base + uri


def _json(text: str | None) -> dict[str, Any]:
    try:
        body = json.loads(text or "{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
