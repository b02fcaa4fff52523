"""The HTTP simulator's status callbacks, posted and signed as the vendors sign theirs.

Twilio: ``X-Twilio-Signature`` with the auth token; SignalWire: ``X-SignalWire-Signature``
(and ``X-Twilio-Signature``) with the signing key; Telnyx: Ed25519 over
``{timestamp}|{body}``. Each record's callbacks go out in order on a task of their own;
``drop_callbacks`` leaves some out (and says so on the log), ``callbacks=False`` all.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twilio.request_validator import RequestValidator

from callgate.providers.simulator import wire

if TYPE_CHECKING:
    from callgate.providers.simulator.http import SimOptions

log = logging.getLogger("callgate.simulator")


class CallbackPoster:
    """Posts status callbacks for the simulator's records."""

    def __init__(self, options: SimOptions, key: Ed25519PrivateKey) -> None:
        self.options = options
        self.key = key
        self._rng = random.Random(options.seed)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"CallbackPoster(under way={len(self._tasks)})"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def final(self, rec: wire.SimRecord) -> None:
        """Post ``rec``'s final status (an SMS: ``sent``, then ``delivered``)."""
        self._spawn(self._final_callbacks(rec))

    def telnyx(self, rec: wire.SimRecord, types: list[str]) -> None:
        """Post these Telnyx events for ``rec``, in order."""
        self._spawn(self._telnyx_events(rec, types))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _final_callbacks(self, rec: wire.SimRecord) -> None:
        if rec.api == wire.TELNYX_FAX:
            final = "fax.delivered" if rec.status == "delivered" else "fax.failed"
            await self._telnyx_events(rec, [final])
            return
        statuses = (
            ["sent", "delivered"]
            if rec.api == wire.MESSAGE and rec.status == "delivered"
            else [rec.status]
        )
        for status in statuses:
            await self._post_form(rec, wire.twilio_callback(rec, status))

    def _dropped(self, rec: wire.SimRecord, what: str) -> bool:
        """Whether this callback is left out (callbacks off, or by ``drop_callbacks``)."""
        o = self.options
        if not o.callbacks or rec.callback is None:
            return True
        if o.drop_callbacks > 0 and self._rng.random() < o.drop_callbacks:
            log.info("dropped the %s callback for %s", what, rec.sid)
            return True
        return False

    async def _post_form(self, rec: wire.SimRecord, params: dict[str, str]) -> None:
        status = params.get("MessageStatus") or params.get("CallStatus") or params.get("FaxStatus")
        if self._dropped(rec, str(status)) or rec.callback is None:
            return
        if rec.fields.get("family") == "signalwire":
            signature = RequestValidator(self.options.signalwire_signing_key).compute_signature(
                rec.callback, params
            )
            headers = {"X-SignalWire-Signature": signature, "X-Twilio-Signature": signature}
        else:
            signature = RequestValidator(self.options.twilio_auth_token).compute_signature(
                rec.callback, params
            )
            headers = {"X-Twilio-Signature": signature}
        await self._post(rec.callback, data=params, headers=headers)

    async def _telnyx_events(self, rec: wire.SimRecord, types: list[str]) -> None:
        for event_type in types:
            if self._dropped(rec, event_type) or rec.callback is None:
                continue
            now = time.time()
            body = json.dumps(wire.telnyx_event(rec, event_type, str(uuid.uuid4()), now)).encode()
            stamp = str(int(now))
            signature = self.key.sign(stamp.encode() + b"|" + body)
            headers = {
                "Content-Type": "application/json",
                "Telnyx-Signature-Ed25519": base64.b64encode(signature).decode(),
                "Telnyx-Timestamp": stamp,
            }
            await self._post(rec.callback, data=body, headers=headers)

    async def _post(self, url: str, *, data: Any, headers: dict[str, str]) -> None:
        assert self._session is not None
        try:
            async with self._session.post(url, data=data, headers=headers) as response:
                await response.read()
                if response.status >= 300:
                    log.warning("callback to %s answered %d", url, response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("callback to %s failed: %r", url, exc)
