"""Inbound SMS: ``POST /provider/twilio/sms/inbound`` (issue 21), the Messaging webhook a
Twilio number (or Messaging Service) calls for every message it receives.

Signed like every Twilio webhook (``X-Twilio-Signature`` under the auth token; forged →
403 ``forbidden``). A message whose whole text (case, spaces and trailing punctuation
aside) is one of Twilio's opt-out words (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT)
suppresses the sender for SMS (reason ``unsubscribed``, source ``keyword``: no SMS is
sent to it again until it opts back in); START, YES or UNSTOP lift that suppression (and
only an ``unsubscribed`` one: a suppression an operator made for another reason stays);
HELP or INFO is answered with ``CALLGATE_SMS_HELP_TEXT`` as a TwiML ``<Message>``. Every
inbound message becomes a ``message.received`` system webhook (at least once: a message
Twilio delivers twice is told twice, with the same ``message_sid``).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from twilio.twiml.messaging_response import MessagingResponse

from callgate.api.providers import _not_configured, _refused, _secret, signed_url
from callgate.domain import from_ts, iso
from callgate.gateway import Gateway
from callgate.providers.callbacks import CallbackRejected, verify_twilio_signature

log = logging.getLogger("callgate.api.inbound")
router = APIRouter(tags=["provider callbacks"], include_in_schema=False)

OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})
HELP = frozenset({"HELP", "INFO"})
TWIML = "application/xml"


def keyword(body: str) -> str | None:
    """The keyword a message is (its whole text, upper case, spaces and trailing
    punctuation aside), or None."""
    word = re.sub(r"[\s.!?,;:]+$", "", body.strip()).upper()
    return word if word in OPT_OUT | OPT_IN | HELP else None


@router.post("/provider/twilio/sms/inbound")
async def twilio_sms_inbound(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    token = _secret(gw.settings, "twilio_auth_token")
    if token is None:
        return _not_configured("twilio", "twilio_auth_token", "x-twilio-signature")
    raw = (await request.body()).decode("utf-8", "replace")
    params = dict(parse_qsl(raw, keep_blank_values=True))
    try:
        verify_twilio_signature(signed_url(request), request.headers, params, token)
    except CallbackRejected as exc:
        return _refused("twilio", exc)
    sender, body = params.get("From", ""), params.get("Body", "")
    word = keyword(body)
    action = "opt_out" if word in OPT_OUT else "opt_in" if word in OPT_IN else None
    event = {
        "from": sender,
        "to": params.get("To"),
        "body": body,
        "message_sid": params.get("MessageSid") or params.get("SmsSid"),
        "keyword": word,
        "action": action or ("help" if word in HELP else None),
        "received_at": iso(from_ts(gw.clock.now())),
    }
    if sender:
        await gw.db(gw.guardrails.inbound_sms, sender, action, event)
        if action is not None:
            log.info("inbound %s from %s: %s", word, sender, action)
    reply = MessagingResponse()
    if word in HELP:
        reply.message(gw.settings.sms_help_text)
    return Response(str(reply), media_type=TWIML)
