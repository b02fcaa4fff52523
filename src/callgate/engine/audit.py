"""Redaction of the audit log: credentials never stored, and (``audit.mask_pii``)
recipients' numbers and message content masked, before an exchange is written."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit, urlunsplit

from callgate.providers.audit import Exchange

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


@dataclass(frozen=True, slots=True)
class Redactor:
    secrets: tuple[str, ...] = ()
    mask_pii: bool = False

    @classmethod
    def of(cls, secrets: Iterable[str | None], *, mask_pii: bool) -> Redactor:
        return cls(tuple(s for s in secrets if s and len(s) >= 4), mask_pii)

    def text(self, value: str | None) -> str | None:
        if value is None:
            return None
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
        value = _SECRET_FIELDS.sub(lambda m: m.group(1) + REDACTED, value)
        if self.mask_pii:
            value = _CONTENT_FIELDS.sub(lambda m: m.group(1) + MASKED, value)
            value = _NUMBER.sub(lambda m: m.group(1) + "…" + m.group(0)[-2:], value)
        return value

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
