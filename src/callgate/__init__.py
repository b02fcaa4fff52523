"""callgate: a reliable gateway for outbound faxes, SMS, calls and provider API requests."""

from callgate.client import AsyncClient, Client
from callgate.clock import Clock, SystemClock
from callgate.config import Settings, load_settings
from callgate.domain import Attempt, Event, Job, JobSpec, Kind, Outcome, Status, make_spec
from callgate.exceptions import CallgateError
from callgate.gateway import Gateway

__version__ = "0.1.0"

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
