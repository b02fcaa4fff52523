"""Redaction: credentials never stored, sent or logged, and (``audit.mask_pii``: the
audit log and the log lines) recipients' numbers and message content masked.

One :class:`Redactor` serves every text that leaves the process: the audit log's
exchanges, what a provider said about an attempt (the attempt's ``error_message``, the
job's ``detail``, its events and so the webhooks made of them: :meth:`Redactor.write`),
and log lines (:func:`redact_logs`). A credential is found as written, URL-encoded, in
base64 at any alignment (an ``Authorization: Basic`` header echoed back), and behind the
names credentials go by (``auth_token=...``, ``Bearer ...``)."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

from callgate.domain import AttemptResult, Decision
from callgate.providers.audit import Exchange

W = TypeVar("W")

REDACTED = "[redacted]"
MASKED = "[masked]"
#: form or JSON fields that carry credentials, whatever the vendor
_SECRET_FIELDS = re.compile(
    r"""(?ix)
    (["']?(?:auth_?token|api_?key|password|secret|token|signing_?key)["']?\s*[:=]\s*)
    ("[^"]*"|'[^']*'|[^&\s,}]+)"""
)
#: fields that carry content: an SMS body, TwiML, a fax's media URL
_CONTENT_FIELDS = re.compile(
    r"""(?ix)
    ((?:^|[&{,\s])["']?(?:body|text|twiml|media_?url|mediaurl)["']?\s*[:=]\s*)
    ("(?:[^"\\]|\\.)*"|'[^']*'|[^&,}]+)"""
)
_NUMBER = re.compile(r"(\+|%2B)\d{6,15}")
#: an Authorization header's credentials, whoever they belong to
_AUTH_SCHEMES = re.compile(
    r"\b([Bb]asic|[Bb]earer|BASIC|BEARER)(\s+|%20|\+)"
    r"(?=[A-Za-z0-9+/=._~%-]*[0-9+/=])[A-Za-z0-9+/=._~%-]{8,}"
)


def encoded_forms(secret: str) -> list[str]:
    """How ``secret`` may appear encoded: URL-encoded, and the base64 characters that
    only its bytes decide at each of the three alignments (so ``user:secret`` in a
    ``Basic`` header is found too), standard and URL-safe."""
    raw = secret.encode()
    forms = {quote(secret, safe=""), quote_plus(secret)}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        core = encoded[(shift * 8 + 5) // 6 : ((shift + len(raw)) * 8) // 6]
        if len(core) >= 6:
            forms |= {core, core.replace("+", "-").replace("/", "_")}
    forms.discard(secret)
    return sorted(forms, key=len, reverse=True)


@dataclass(frozen=True, slots=True)
class Redactor:
    secrets: tuple[str, ...] = ()
    mask_pii: bool = False

    @classmethod
    def of(cls, secrets: Iterable[str | None], *, mask_pii: bool) -> Redactor:
        plain = [s for s in secrets if s and len(s) >= 4]
        forms = [f for s in plain for f in encoded_forms(s)]
        return cls(tuple(sorted(set(plain), key=len, reverse=True)) + tuple(forms), mask_pii)

    def secret_text(self, value: str) -> str:
        """``value`` without credentials (nothing else changed)."""
        value = _AUTH_SCHEMES.sub(lambda m: m.group(1) + m.group(2) + REDACTED, value)
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
        return _SECRET_FIELDS.sub(lambda m: m.group(1) + REDACTED, value)

    def optional(self, value: str | None) -> str | None:
        return None if value is None else self.secret_text(value)

    def write(self, write: W) -> W:
        """A store write with the texts it carries redacted: what the provider said (the
        attempt's error), and the decision's detail (the job's, and its event's)."""
        result: AttemptResult | None = getattr(write, "result", None)
        decision: Decision | None = getattr(write, "decision", None)
        changes: dict[str, Any] = {}
        if result is not None:
            changes["result"] = replace(
                result,
                error_code=self.optional(result.error_code),
                error_message=self.optional(result.error_message),
            )
        if decision is not None:
            changes["decision"] = replace(decision, detail=self.optional(decision.detail))
        return replace(write, **changes) if changes else write  # type: ignore[type-var]

    def text(self, value: str | None) -> str | None:
        if value is None:
            return None
        value = self.secret_text(value)
        if self.mask_pii:
            value = _CONTENT_FIELDS.sub(lambda m: m.group(1) + MASKED, value)
            value = _NUMBER.sub(lambda m: m.group(1) + "…" + m.group(0)[-2:], value)
        return value

    def mask(self, value: str) -> str:
        """:meth:`text` of a text that is there."""
        return self.text(value) or ""

    def url(self, value: str) -> str:
        parts = urlsplit(value)
        if parts.password or parts.username:
            host = parts.hostname or ""
            netloc = f"{REDACTED}@{host}" + (f":{parts.port}" if parts.port else "")
            value = urlunsplit(parts._replace(netloc=netloc))
        return self.text(value) or ""

    def exchange(self, ex: Exchange) -> Exchange:
        return replace(
            ex,
            url=self.url(ex.url),
            request=self.text(ex.request),
            response=self.text(ex.response),
            error=self.text(ex.error),
        )


class RedactingFilter(logging.Filter):
    """Takes credentials out of every log record a handler writes (message, arguments
    and traceback), for each gateway's :class:`Redactor` in this process."""

    def __init__(self) -> None:
        super().__init__("")
        self.redactors: list[Redactor] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.redactors:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for redactor in self.redactors:
            # audit.mask_pii masks numbers and content in log lines too (issue 17)
            clean = redactor.mask if redactor.mask_pii else redactor.secret_text
            message = clean(message)
            if record.exc_text:
                record.exc_text = clean(record.exc_text)
        record.msg, record.args = message, ()
        return True


_LOG_FILTER = RedactingFilter()


def redact_logs(redactor: Redactor) -> None:
    """Redact with ``redactor`` on every handler of the root logger (and callgate's)."""
    if (redactor.secrets or redactor.mask_pii) and redactor not in _LOG_FILTER.redactors:
        _LOG_FILTER.redactors.append(redactor)
    for logger in (logging.getLogger(), logging.getLogger("callgate")):
        for handler in logger.handlers:
            if _LOG_FILTER not in handler.filters:
                handler.addFilter(_LOG_FILTER)
