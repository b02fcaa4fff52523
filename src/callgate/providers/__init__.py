"""Adapters to telephony vendors; each maps its statuses and errors onto Outcome."""

from callgate.providers.base import Provider, StatusListener

__all__ = ["Provider", "StatusListener"]
