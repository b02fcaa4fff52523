"""Standard Webhooks signatures (``webhook-id``, ``webhook-timestamp``,
``webhook-signature: v1,<base64>``), made and checked with the ``standardwebhooks``
package. Several active secrets give several signatures, so secrets can be rotated.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from callgate.exceptions import CallgateError, ConfigurationError

SECRET_PREFIX = "whsec_"


class InvalidSignature(CallgateError):
    """The webhook's signature does not match, or it is too old or too new."""

    code = "invalid_signature"


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def parse_secrets(raw: str | None) -> list[str]:
    found = [s.strip() for s in (raw or "").split(",") if s.strip()]
    for secret in found:
        if not secret.startswith(SECRET_PREFIX):
            raise ConfigurationError(
                "CALLGATE_WEBHOOK_SECRETS: every secret starts with whsec_",
                field="webhook_secrets",
            )
    return found


class Signer:
    def __init__(self, active: Sequence[str]) -> None:
        if not active:
            raise ConfigurationError("no webhook signing secret", field="webhook_secrets")
        self._hooks = [Webhook(secret) for secret in active]

    def __repr__(self) -> str:
        return f"Signer({len(self._hooks)} secrets)"

    def headers(self, msg_id: str, at: float, body: str) -> dict[str, str]:
        when = datetime.fromtimestamp(int(at), UTC)
        signatures = " ".join(h.sign(msg_id, when, body) for h in self._hooks)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at)),
            "webhook-signature": signatures,
            "content-type": "application/json",
        }


def verify(secret: str | Sequence[str], headers: Mapping[str, str], body: bytes | str) -> Any:
    """For receivers: check a callgate webhook and return its parsed JSON body.

    ``secret`` is one ``whsec_...`` secret or several (while rotating). Raises
    :class:`InvalidSignature` if no secret matches or the timestamp is more than five
    minutes off.
    """
    candidates = [secret] if isinstance(secret, str) else list(secret)
    for candidate in candidates:
        try:
            return Webhook(candidate).verify(body, dict(headers))
        except WebhookVerificationError as exc:
            last = exc
    raise InvalidSignature(str(last) if candidates else "no secret given") from None
