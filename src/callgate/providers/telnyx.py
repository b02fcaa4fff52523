"""The Telnyx fax adapter (Programmable Fax, ``/v2/faxes``) on the official SDK (4.x).

``AsyncTelnyx`` takes ``base_url`` (``CALLGATE_TELNYX_BASE_URL``: the HTTP simulator in
tests) and an ``httpx.AsyncClient``; its own retries are off, since the engine meters and
retries. Statuses and ``failure_reason`` values are classified by
:mod:`~callgate.providers.telnyx_mapping`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import telnyx
from telnyx.types.fax_list_params import FilterCreatedAt

from callgate.clock import Clock, SystemClock
from callgate.domain import AttemptResult, Fault, Job, Kind, Outcome
from callgate.providers.audit import audited
from callgate.providers.base import (
    CannotReconcile,
    Found,
    PushedStatuses,
    StatusListener,
    http_fault,
)
from callgate.providers.telnyx_mapping import fax_result
from callgate.providers.twilio_mapping import retry_after, transport_outcome

DEFAULT_BASE_URL = "https://api.telnyx.com/v2"


class TelnyxProvider:
    """Sends faxes through Telnyx Programmable Fax."""

    name = "telnyx"

    def __init__(
        self,
        *,
        api_key: str,
        connection_id: str,
        from_number: str | None = None,
        base_url: str | None = None,
        webhook_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self.connection_id = connection_id
        self.from_number = from_number
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.webhook_url = webhook_url
        self.clock = clock or SystemClock()
        self.pushed = PushedStatuses()
        self.client = telnyx.AsyncTelnyx(
            api_key=api_key,
            public_key="",  # callbacks are verified by callgate.providers.callbacks
            base_url=self.base_url,
            # every exchange is filed in the audit log (see callgate.providers.audit)
            http_client=audited(http_client or telnyx.DefaultAsyncHttpxClient(timeout=timeout)),
            timeout=timeout,
            max_retries=0,
        )

    def __repr__(self) -> str:
        return f"TelnyxProvider(connection_id={self.connection_id!r}, base_url={self.base_url!r})"

    def set_listener(self, listener: StatusListener | None) -> None:
        self.pushed.listener = listener

    def push(self, ref: str, result: AttemptResult) -> None:
        """A verified webhook for ``ref`` (see :mod:`callgate.api.providers`)."""
        self.pushed.push(ref, result)

    async def aclose(self) -> None:
        await self.client.close()

    async def send(self, job: Job) -> AttemptResult:
        if job.kind is not Kind.FAX:
            return AttemptResult(
                Outcome.PERMANENT, error_message=f"the Telnyx adapter sends no {job.kind}"
            )
        fields: dict[str, Any] = {
            "connection_id": self.connection_id,
            "from_": job.payload.get("from") or self.from_number,
            "to": job.to,
            "media_url": job.payload["media_url"],
        }
        if self.webhook_url:
            fields["webhook_url"] = self.webhook_url
        try:
            created = await self.client.faxes.create(**fields)
        except telnyx.APIStatusError as exc:
            return self.error_result(exc)
        except telnyx.APIConnectionError as exc:
            return AttemptResult(
                transport_outcome(exc), error_message=f"no answer: {exc!r}", fault=Fault.OUTAGE
            )
        if created.data is None:
            return AttemptResult(Outcome.UNKNOWN, error_message="Telnyx answered without a fax")
        return fax_result(created.data)

    def error_result(self, exc: telnyx.APIStatusError) -> AttemptResult:
        """An API error: 429 → rate_limited (Retry-After); 401, 403 and 5xx →
        provider_error, and a fault of the provider's (its circuit counts them); other 4xx
        (422 invalid parameters, 404) → permanent."""
        status = exc.status_code
        detail = _first_error(exc.body)
        if status == 429:
            wait = retry_after(exc.response.headers.get("retry-after"), self.clock.now())
            return AttemptResult(Outcome.RATE_LIMITED, None, str(status), detail, wait)
        fault = http_fault(status)
        outcome = Outcome.PROVIDER_ERROR if fault is not None else Outcome.PERMANENT
        code = _first_code(exc.body) or str(status)
        return AttemptResult(outcome, error_code=code, error_message=detail, fault=fault)

    async def status(self, job: Job, ref: str) -> AttemptResult:
        pushed = self.pushed.pop(ref)
        if pushed is not None:
            return pushed
        try:
            fetched = await self.client.faxes.retrieve(ref)
        except telnyx.NotFoundError:
            return AttemptResult(Outcome.UNKNOWN, ref, "404", f"no record of {ref}")
        except telnyx.APIError as exc:  # a failed poll proves nothing: still under way
            return AttemptResult(None, ref, error_message=f"status poll failed: {exc!r}")
        return AttemptResult(None, ref) if fetched.data is None else fax_result(fetched.data)

    async def find(self, job: Job, since: float, until: float) -> list[Found]:
        """Faxes to ``job.to`` created in [since, until] (Telnyx's ``created_at``)."""
        if job.kind is not Kind.FAX:
            raise CannotReconcile(f"Telnyx sends no {job.kind}")
        window: FilterCreatedAt = {"gte": _iso(since), "lte": _iso(until)}
        found: list[tuple[float, Found]] = []
        try:
            pages = self.client.faxes.list(
                filter={"to": {"eq": job.to or ""}, "created_at": window},
                page_size=250,
            )
            async for fax in pages:
                created = fax.created_at.timestamp() if fax.created_at else 0.0
                if fax.id and since <= created <= until:
                    found.append((created, Found(fax.id, fax_result(fax))))
        except telnyx.APIError as exc:
            raise CannotReconcile(f"could not list Telnyx faxes: {exc!r}") from exc
        return [f for _, f in sorted(found, key=lambda pair: pair[0])]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _errors(body: object) -> list[Mapping[str, Any]]:
    errors = body.get("errors") if isinstance(body, Mapping) else None
    return [e for e in errors or [] if isinstance(e, Mapping)]


def _first_error(body: object) -> str:
    for error in _errors(body):
        return str(error.get("detail") or error.get("title") or "")
    return "" if body is None else str(body)[:200]


def _first_code(body: object) -> str | None:
    for error in _errors(body):
        return None if error.get("code") is None else str(error["code"])
    return None
