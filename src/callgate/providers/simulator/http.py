"""``callgate simulator``: the simulator over HTTP, speaking Twilio's, SignalWire's and
Telnyx's REST shapes, so the real adapters are tested end to end with the official SDKs.

It serves Twilio Messages and Calls (``/2010-04-01/Accounts/{sid}/...``), Lookup v2,
Verify v2 and Studio v2, SignalWire's LaML Faxes (and Messages, Calls) under
``/api/laml``, and Telnyx ``/v2/faxes``; checks Basic auth (account SID and auth token)
or the Telnyx bearer key; answers with the same test numbers and outcome logic as the
in-process :class:`~callgate.providers.simulator.Simulator` (one instance drives it);
posts status callbacks signed like the real services after ``callback_delay`` (SMS,
calls) or the fax duration; and appends the same JSON lines to the call log.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from callgate.clock import SystemClock
from callgate.domain import AttemptResult, Kind, Outcome
from callgate.exceptions import ValidationError
from callgate.providers.simulator import wire
from callgate.providers.simulator.callbacks import CallbackPoster
from callgate.providers.simulator.core import Simulator
from callgate.providers.twilio_http import basic_auth

log = logging.getLogger("callgate.simulator")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class SimOptions:
    """How the HTTP simulator behaves, and the credentials it accepts."""

    host: str = "127.0.0.1"
    port: int = 0
    log: str | None = None
    latency: float = 0.0
    callback_delay: float = 0.0
    fax_duration: float = 0.0
    mix: dict[str, float] = field(default_factory=dict)
    seed: int | None = None
    callbacks: bool = True
    drop_callbacks: float = 0.0
    twilio_account_sid: str = "ACsimulator"
    twilio_auth_token: str = "simulator-auth-token"
    #: an API key (SK...) and its secret, accepted beside the auth token
    twilio_api_key: str = "SKsimulator"
    twilio_api_secret: str = "simulator-api-secret"
    signalwire_project_id: str = "simulator-project"
    signalwire_api_token: str = "simulator-api-token"
    signalwire_signing_key: str = "simulator-signing-key"
    telnyx_api_key: str = "KEYsimulator"
    telnyx_private_key: str | None = None  # base64 of a 32-byte Ed25519 seed

    def __repr__(self) -> str:
        return f"SimOptions(host={self.host!r}, port={self.port}, callbacks={self.callbacks})"


def private_key(seed_b64: str | None) -> Ed25519PrivateKey:
    if seed_b64 is None:
        return Ed25519PrivateKey.generate()
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed_b64, validate=True))


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(doc, status=status, headers=headers)


class SimulatorServer:
    """The aiohttp application and the records behind it."""

    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self.sim = Simulator(
            SystemClock(), log_path=options.log, mix=options.mix, rng=random.Random(options.seed)
        )
        self.key = private_key(options.telnyx_private_key)
        self.public_key = public_key_b64(self.key)
        self.records: dict[str, wire.SimRecord] = {}
        self.callbacks = CallbackPoster(options, self.key)
        self.base = ""  # the URL it is reached at, once bound
        self.app = self._make_app()

    def __repr__(self) -> str:
        return f"SimulatorServer({self.options!r}, records={len(self.records)})"

    def _make_app(self) -> web.Application:
        app = web.Application()
        route = app.router.add_route
        for prefix, family in (("", "twilio"), ("/api/laml", "signalwire")):
            accounts = prefix + "/2010-04-01/Accounts/{account}"
            resources = [("Messages", wire.MESSAGE), ("Calls", wire.CALL)]
            if family == "signalwire":
                resources.append(("Faxes", wire.SW_FAX))
            for name, api in resources:
                route("POST", f"{accounts}/{name}.json", self._twilio(family, self._create(api)))
                route("GET", f"{accounts}/{name}.json", self._twilio(family, self._list(api)))
                route("GET", f"{accounts}/{name}/{{sid}}.json", self._twilio(family, self._fetch))
        route("GET", "/v2/PhoneNumbers/{number}", self._twilio("twilio", self._lookup))
        route("POST", "/v2/Services/{service}/Verifications", self._twilio("twilio", self._verify))
        route("POST", "/v2/Flows/{flow}/Executions", self._twilio("twilio", self._studio))
        route("POST", "/v2/faxes", self._telnyx(self._telnyx_create))
        route("GET", "/v2/faxes", self._telnyx(self._telnyx_list))
        route("GET", "/v2/faxes/{sid}", self._telnyx(self._telnyx_fetch))
        route("GET", "/simulator/telnyx-public-key", self._public_key)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        await self.callbacks.start()

    async def _stop(self, app: web.Application) -> None:
        await self.callbacks.close()
        await self.sim.aclose()

    async def _public_key(self, request: web.Request) -> web.Response:
        return web.Response(text=self.public_key)

    # -- auth --------------------------------------------------------------------------

    def _credentials(self, family: str) -> tuple[str, str]:
        o = self.options
        if family == "twilio":
            return o.twilio_account_sid, o.twilio_auth_token
        return o.signalwire_project_id, o.signalwire_api_token

    def _twilio(self, family: str, handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            user, token = self._credentials(family)
            given = request.headers.get("Authorization", "")
            account = request.match_info.get("account", user)
            accepted = {basic_auth(user, token)}
            if family == "twilio":  # an API key's SID and secret, for the account's resources
                accepted.add(
                    basic_auth(self.options.twilio_api_key, self.options.twilio_api_secret)
                )
            if given not in accepted or account != user:
                return _json(wire.twilio_error(401, 20003, "Authenticate"), 401)
            request["family"] = family
            await self._latency()
            return await handler(request)

        return checked

    def _telnyx(self, handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            expected = f"Bearer {self.options.telnyx_api_key}"
            if request.headers.get("Authorization") != expected:
                body = wire.telnyx_error("10009", "Authentication failed", "bad API key")
                return _json(body, 401)
            await self._latency()
            return await handler(request)

        return checked

    async def _latency(self) -> None:
        if self.options.latency:
            await asyncio.sleep(self.options.latency)

    # -- Twilio-shaped resources -------------------------------------------------------

    def _create(self, api: str) -> Handler:
        async def create(request: web.Request) -> web.StreamResponse:
            form = await request.post()
            to = str(form.get("To", ""))
            if not to:
                return _json(wire.twilio_error(400, 21604, "A 'To' phone number is required."), 400)
            started = time.time()
            result = self.sim.next_outcome(wire.KIND_OF[api], to)
            if api == wire.MESSAGE:
                result = wire.messaging_service_check(form, result)
            refused = self._refusal(result)
            if refused is not None:
                self.sim.log_call(
                    wire.KIND_OF[api],
                    to,
                    started,
                    time.time(),
                    result.outcome,
                    None,
                    None,
                    wire.passed_params(form),
                )
                return refused
            fields: dict[str, Any] = {k: str(form[k]) for k in form}
            if api == wire.MESSAGE and "MediaUrl" in form:
                fields["MediaUrl"] = [str(u) for u in form.getall("MediaUrl")]
            rec = self._record(api, to, str(form.get("From") or "") or None, result, started)
            rec.account = request.match_info["account"]
            rec.callback = str(form.get("StatusCallback") or "") or None
            rec.fields = fields | {"family": request["family"]}
            return _json(wire.twilio_json(rec, self._prefix(request)), 201)

        return create

    def _list(self, api: str) -> Handler:
        async def listing(request: web.Request) -> web.StreamResponse:
            query = dict(request.query)
            account = request.match_info["account"]
            found = [
                r
                for r in self.records.values()
                if r.api == api and r.account == account and wire.twilio_matches(r, query)
            ]
            found.sort(key=lambda r: r.created_at, reverse=True)
            key = {wire.MESSAGE: "messages", wire.CALL: "calls", wire.SW_FAX: "faxes"}[api]
            size = int(query.get("PageSize", "50"))
            prefix = self._prefix(request)
            return _json(
                {
                    key: [wire.twilio_json(r, prefix) for r in found[:size]],
                    "uri": request.path_qs,
                    "first_page_uri": request.path_qs,
                    "next_page_uri": None,
                    "previous_page_uri": None,
                    "page": 0,
                    "page_size": size,
                    "start": 0,
                    "end": max(0, min(size, len(found)) - 1),
                }
            )

        return listing

    async def _fetch(self, request: web.Request) -> web.StreamResponse:
        rec = self.records.get(request.match_info["sid"])
        if rec is None or rec.account != request.match_info["account"]:
            return _json(wire.twilio_error(404, 20404, "The requested resource was not found"), 404)
        return _json(wire.twilio_json(rec, self._prefix(request)))

    def _prefix(self, request: web.Request) -> str:
        return "/api/laml" if request.get("family") == "signalwire" else ""

    def _refusal(self, result: AttemptResult) -> web.Response | None:
        """The error answer for an outcome that the API itself refuses, if it is one."""
        if result.outcome is Outcome.RATE_LIMITED:
            body = wire.twilio_error(429, 20429, "Too Many Requests")
            return _json(body, 429, {"Retry-After": "1"})
        if result.outcome is Outcome.PROVIDER_ERROR:
            return _json(wire.twilio_error(500, 20500, "Internal Server Error"), 500)
        if result.outcome is Outcome.PERMANENT and result.error_code:
            message = result.error_message or "refused"
            return _json(wire.twilio_error(400, int(result.error_code), message), 400)
        return None

    def _record(
        self, api: str, to: str, from_: str | None, result: AttemptResult, started: float
    ) -> wire.SimRecord:
        duration = self.options.fax_duration if api in (wire.SW_FAX, wire.TELNYX_FAX) else 0.0
        if result.outcome is not Outcome.DELIVERED:
            duration *= 0.25  # a busy line or an error is known sooner than a whole fax
        delay = duration if api in (wire.SW_FAX, wire.TELNYX_FAX) else self.options.callback_delay
        prefix = {wire.MESSAGE: "SM", wire.CALL: "CA", wire.SW_FAX: "FX"}.get(api)
        sid = prefix + uuid.uuid4().hex if prefix else str(uuid.uuid4())
        outcome = None if result.outcome is Outcome.UNKNOWN else result.outcome
        rec = wire.SimRecord(api, sid, "", to, from_, started, started + delay, outcome)
        self.records[sid] = rec
        if outcome is None:  # "unknown": it never ends, as far as anyone can tell
            self.sim.log_call(rec.kind, to, started, started, Outcome.UNKNOWN, sid, None)
        else:
            asyncio.get_running_loop().call_later(delay, self._finish, rec)
        return rec

    def _finish(self, rec: wire.SimRecord) -> None:
        rec.finish(time.time())
        self.sim.log_call(
            rec.kind,
            rec.to,
            rec.created_at,
            rec.ended_at or rec.created_at,
            rec.outcome,
            rec.sid,
            None,
            wire.passed_params(rec.fields),
        )
        if rec.callback:
            self.callbacks.final(rec)

    # -- Lookup, Verify, Studio --------------------------------------------------------

    async def _request(
        self, to: str, body: dict[str, Any], ref: str, status: int = 201
    ) -> web.Response:
        """A request job's answer: the test numbers' errors, else ``body``."""
        started = time.time()
        result = self.sim.next_outcome(Kind.REQUEST, to)
        refused = self._refusal(result)
        outcome = result.outcome if refused is not None else Outcome.DELIVERED
        self.sim.log_call(Kind.REQUEST, to, started, time.time(), outcome, ref, None)
        return refused or _json(body, status)

    async def _lookup(self, request: web.Request) -> web.StreamResponse:
        number = request.match_info["number"]
        body = {
            "phone_number": number,
            "valid": True,
            "validation_errors": [],
            "calling_country_code": "1",
            "country_code": "US",
            "national_format": number,
            "url": f"{self.base}/v2/PhoneNumbers/{number}",
        }
        return await self._request(number, body, "LU" + uuid.uuid4().hex, 200)

    async def _verify(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        to = str(form.get("To", ""))
        service = request.match_info["service"]
        sid = "VE" + uuid.uuid4().hex
        body = {
            "sid": sid,
            "service_sid": service,
            "account_sid": self.options.twilio_account_sid,
            "to": to,
            "channel": str(form.get("Channel", "sms")),
            "status": "pending",
            "valid": False,
            "date_created": wire.iso(time.time()),
        }
        return await self._request(to, body, sid)

    async def _studio(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        to = str(form.get("To", ""))
        sid = "FN" + uuid.uuid4().hex
        body = {
            "sid": sid,
            "flow_sid": request.match_info["flow"],
            "account_sid": self.options.twilio_account_sid,
            "contact_channel_address": to,
            "status": "active",
            "context": json.loads(str(form.get("Parameters") or "{}")),
            "date_created": wire.iso(time.time()),
        }
        return await self._request(to, body, sid)

    # -- Telnyx ------------------------------------------------------------------------

    async def _telnyx_create(self, request: web.Request) -> web.StreamResponse:
        try:
            doc = await request.json()
        except ValueError:
            return _json(wire.telnyx_error("10015", "Bad request", "the body is not JSON"), 400)
        to = str(doc.get("to") or "")
        started = time.time()
        result = self.sim.next_outcome(Kind.FAX, to)
        refused = self._telnyx_refusal(result)
        if refused is not None:
            self.sim.log_call(Kind.FAX, to, started, time.time(), result.outcome, None, None)
            return refused
        rec = self._record(wire.TELNYX_FAX, to, doc.get("from"), result, started)
        rec.callback = doc.get("webhook_url") or None
        rec.fields = {k: doc.get(k) for k in ("connection_id", "media_url")}
        if result.outcome is Outcome.PERMANENT:
            rec.fields["telnyx_reason"] = wire.final_for_telnyx(result)
        if rec.callback:
            self.callbacks.telnyx(rec, ["fax.queued", "fax.sending.started"])
        return _json({"data": wire.telnyx_json(rec)}, 202)

    def _telnyx_refusal(self, result: AttemptResult) -> web.Response | None:
        if result.outcome is Outcome.RATE_LIMITED:
            body = wire.telnyx_error("10011", "Too many requests", "rate limit exceeded")
            return _json(body, 429, {"Retry-After": "1"})
        if result.outcome is Outcome.PROVIDER_ERROR:
            return _json(wire.telnyx_error("10007", "Unexpected error", "try again"), 500)
        if result.outcome is Outcome.PERMANENT and result.error_code == "21211":
            body = wire.telnyx_error(
                "10016", "Invalid 'to' number", str(result.error_message), "/to"
            )
            return _json(body, 422)
        return None

    async def _telnyx_fetch(self, request: web.Request) -> web.StreamResponse:
        rec = self.records.get(request.match_info["sid"])
        if rec is None or rec.api != wire.TELNYX_FAX:
            body = wire.telnyx_error("10005", "Resource not found", "no such fax")
            return _json(body, 404)
        return _json({"data": wire.telnyx_json(rec)})

    async def _telnyx_list(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        found = [
            r
            for r in self.records.values()
            if r.api == wire.TELNYX_FAX and wire.telnyx_matches(r, query)
        ]
        found.sort(key=lambda r: r.created_at, reverse=True)
        size = int(query.get("page[size]", "20"))
        number = int(query.get("page[number]", "1"))
        page = found[(number - 1) * size : number * size]
        pages = max(1, -(-len(found) // size))
        meta = {
            "page_number": number,
            "page_size": size,
            "total_pages": pages,
            "total_results": len(found),
        }
        return _json({"data": [wire.telnyx_json(r) for r in page], "meta": meta})


async def serve(
    options: SimOptions, *, ready: Callable[[SimulatorServer, int], None], stop: asyncio.Event
) -> None:
    """Run the simulator until ``stop`` is set; ``ready(server, port)`` once it listens."""
    server = SimulatorServer(options)
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port)
    await site.start()
    port = int(runner.addresses[0][1])
    server.base = f"http://{options.host}:{port}"
    ready(server, port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def parse_mix(raw: str | None) -> dict[str, float]:
    """``--mix``: JSON outcome probabilities, checked like ``CALLGATE_SIMULATOR_MIX``."""
    if not raw:
        return {}
    try:
        mix = json.loads(raw)
        assert isinstance(mix, dict)
        checked = {str(Outcome(k)): float(v) for k, v in mix.items()}
    except (ValueError, TypeError, AssertionError) as exc:
        raise ValidationError(
            f"--mix must be a JSON object of outcomes: {exc}", field="mix"
        ) from None
    if any(not 0 <= p <= 1 for p in checked.values()) or sum(checked.values()) > 1:
        raise ValidationError(
            "--mix probabilities must be in [0, 1] and add up to 1 at most", field="mix"
        )
    return checked


def run(options: SimOptions, ready: Callable[[SimulatorServer, int], None]) -> None:
    """Serve until SIGTERM or SIGINT (``callgate simulator``)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(options, ready=ready, stop=stop)

    asyncio.run(main())
