"""The dashboard: server-rendered pages (Jinja2) at ``/dashboard`` over the service
layer, served by ``callgate serve`` with the API. See docs/operations.md#the-dashboard.

Pages (the paths are a contract): ``/dashboard`` (overview), ``/dashboard/lines``,
``/dashboard/jobs`` (``status``, ``kind``, ``to``, ``batch``), ``/dashboard/jobs/{id}``,
``/dashboard/batches``, ``/dashboard/batches/{id}``, ``/dashboard/breaker``,
``/dashboard/webhooks``. A visitor without a session or a bearer key is sent to the
sign-in page and sees no data. Every asset (CSS, the few lines of script) is in the
package, under ``/dashboard/static``; plots are inline SVG drawn on the server.
"""

from __future__ import annotations

import inspect
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from callgate.dashboard.common import secure, templates
from callgate.dashboard.session import (
    CsrfRejected,
    Sessions,
    SignInRequired,
    Unauthorized,
    signin_url,
)
from callgate.exceptions import CallgateError

STATIC = "/dashboard/static"


def mount(app: FastAPI) -> None:
    """Add the dashboard's pages, actions and assets to ``app`` (whose
    ``state.gateway`` they use)."""
    from callgate.dashboard.actions import router as actions
    from callgate.dashboard.pages import router as pages

    app.state.dashboard_sessions = Sessions()
    app.include_router(actions, prefix="/dashboard")
    app.include_router(pages, prefix="/dashboard")
    static = resources.files("callgate.dashboard") / "static"
    app.mount(STATIC, StaticFiles(directory=str(static)), name="dashboard-static")

    @app.exception_handler(SignInRequired)
    async def sign_in(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(signin_url(exc.next_path), status_code=303)

    @app.exception_handler(Unauthorized)
    async def unauthorized(request: Request, exc: Unauthorized) -> Response:
        return _problem(request, 401, "Unknown or revoked API key.", {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(CsrfRejected)
    async def csrf(request: Request, exc: CsrfRejected) -> Response:
        return _problem(
            request, 403, "This form is stale or came from elsewhere: reload the page and retry."
        )

    handle = app.exception_handlers.get(CallgateError)

    async def not_found_page(request: Request, exc: Exception) -> Response:
        """A dashboard page about something that is not there: an HTML 404 (the API
        keeps its JSON errors)."""
        if request.url.path.startswith("/dashboard/") and isinstance(exc, CallgateError):
            status = 404 if exc.code == "not_found" else 400
            return _problem(request, status, exc.message)
        assert handle is not None
        answered = handle(request, exc)
        response: Response = await answered if inspect.isawaitable(answered) else answered
        return response

    app.add_exception_handler(CallgateError, not_found_page)


def _problem(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> HTMLResponse:
    response: HTMLResponse = templates.TemplateResponse(
        request,
        "problem.html",
        {"status": status, "message": message, "nav": [], "alerts": None},
        status_code=status,
        headers=headers,
    )
    secure(response)
    return response


__all__ = ["mount"]
