"""What the dashboard's pages share: the templates, rendering, the alerts banner."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from callgate.dashboard.session import Viewer
from callgate.gateway import Gateway

T = TypeVar("T")
NAV = [
    ("/dashboard", "Overview"),
    ("/dashboard/lines", "Lines"),
    ("/dashboard/jobs", "Jobs"),
    ("/dashboard/batches", "Batches"),
    ("/dashboard/breaker", "Breaker"),
    ("/dashboard/webhooks", "Webhooks"),
]


def when(value: Any) -> str:
    """A time for people: unix seconds or a datetime, in UTC, to the second."""
    if value is None or value == "":
        return "—"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        return value.replace("T", " ").split(".")[0].removesuffix("+00:00").removesuffix("Z")
    return str(value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"))


def age(seconds: float | None) -> str:
    """``3 h 12 min``, ``45 s``."""
    if seconds is None:
        return "—"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("callgate.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = when
    env.filters["age"] = age
    return env


templates = Jinja2Templates(env=_environment())


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def open_alerts(gw: Gateway) -> list[Any] | None:
    """The open alerts for the banner and the overview, or None when this gateway has no
    alerts service (then the page has no alerts section at all).

    Each alert shown has ``rule``, ``message`` and ``raised_at`` (``gw.alerts.open()``).
    Blocking: call it inside a page's store trip (``gw.db``)."""
    service = getattr(gw, "alerts", None)
    if service is None:
        return None
    return list(service.open())


async def read(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` and the open alerts (for the page's banner), in one store
    trip (``gw.db``)."""
    gw = gateway(request)

    def both() -> tuple[T, list[Any] | None]:
        return fn(*args, **kwargs), open_alerts(gw)

    result, alerts = await gw.db(both)
    request.state.dashboard_alerts = alerts
    return result


def render(
    request: Request,
    who: Viewer,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """A page: ``context`` plus what every page shows (the navigation, messages, the
    alerts banner when ``alerts`` is in the context, the CSRF token for its forms)."""
    base = {
        "nav": NAV,
        "path": request.url.path,
        "csrf": who.csrf,
        "messages": who.said(),
        "key_name": who.key.name,
        "signed_in": who.session is not None,
        "alerts": getattr(request.state, "dashboard_alerts", None),
    }
    response = templates.TemplateResponse(
        request, template, base | context, status_code=status_code
    )
    secure(response)
    return response


#: what a dashboard page may load and do: its own assets only, no inline script, no
#: framing by another site (a framed page's buttons could be clicked by a trick)
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def secure(response: Response) -> Response:
    """The headers of every dashboard page: not cached, not framed, own assets only."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def back(to: str) -> RedirectResponse:
    """After an action: see the page again (a GET: reloading it repeats nothing)."""
    return RedirectResponse(to, status_code=303)
