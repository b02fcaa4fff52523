"""Adapters to telephony vendors; each maps its statuses and errors onto Outcome."""

from callgate.providers.base import (
    CannotReconcile,
    Found,
    Provider,
    PushedStatuses,
    Reconciling,
    StatusListener,
)

__all__ = [
    "CannotReconcile",
    "Found",
    "Provider",
    "PushedStatuses",
    "Reconciling",
    "StatusListener",
]
