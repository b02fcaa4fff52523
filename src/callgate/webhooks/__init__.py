"""Signed webhooks from the outbox; :func:`verify` is for receivers."""

from callgate.webhooks.signing import InvalidSignature, generate_secret, verify

__all__ = ["InvalidSignature", "generate_secret", "verify"]
