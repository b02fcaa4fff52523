"""callgate: a reliable gateway for outbound faxes, SMS, calls and provider API requests.

The names below are loaded when first used (PEP 562), so ``from callgate import Client``
loads the HTTP client and the domain types only: no engine, store, providers or FastAPI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callgate.client import AsyncClient, Client
    from callgate.clock import Clock, SystemClock
    from callgate.config import Settings, load_settings
    from callgate.domain import Attempt, Event, Job, JobSpec, Kind, Outcome, Status, make_spec
    from callgate.exceptions import CallgateError
    from callgate.gateway import Gateway

__version__ = "0.1.0"

#: each public name and the module it lives in
_WHERE = {
    "AsyncClient": "callgate.client",
    "Client": "callgate.client",
    "Clock": "callgate.clock",
    "SystemClock": "callgate.clock",
    "Settings": "callgate.config",
    "load_settings": "callgate.config",
    "Attempt": "callgate.domain",
    "Event": "callgate.domain",
    "Job": "callgate.domain",
    "JobSpec": "callgate.domain",
    "Kind": "callgate.domain",
    "Outcome": "callgate.domain",
    "Status": "callgate.domain",
    "make_spec": "callgate.domain",
    "CallgateError": "callgate.exceptions",
    "Gateway": "callgate.gateway",
}

__all__ = [
    "AsyncClient",
    "Attempt",
    "CallgateError",
    "Client",
    "Clock",
    "Event",
    "Gateway",
    "Job",
    "JobSpec",
    "Kind",
    "Outcome",
    "Settings",
    "Status",
    "SystemClock",
    "__version__",
    "load_settings",
    "make_spec",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'callgate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
