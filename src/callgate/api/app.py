"""The FastAPI application: error contract, auth, body limit, health, and the routers.

Every error is ``{"error": {"code", "message", "field"}}`` with a stable code; bad input
is a 4xx, never a 500.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callgate.api.errors import ERRORS, ApiError, error_response, status_for
from callgate.api.models import Health
from callgate.domain import ApiKey
from callgate.exceptions import (
    CallgateError,
)
from callgate.gateway import Gateway

log = logging.getLogger("callgate.api")


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes (413), counting what actually arrives."""

    def __init__(self, app: ASGIApp, limit: int, batch_limit: int | None = None) -> None:
        self.app, self.default, self.batch_limit = app, limit, batch_limit or limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # a batch upload is a file (spooled to disk as it arrives), not a request body
        upload = scope.get("path") == "/v1/batches" and scope.get("method") == "POST"
        limit = self.batch_limit if upload else self.default
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send, limit)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise StarletteHTTPException(413, f"the body exceeds {limit} bytes")
            return message

        await self.app(scope, counted, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error_response(413, "payload_too_large", f"the body exceeds {limit} bytes")
        await response(scope, receive, send)


def create_app(gateway: Gateway) -> FastAPI:
    from callgate.api.compat import router as compat_router
    from callgate.api.jobs import router as jobs_router

    app = FastAPI(
        # no redirect from /v1/jobs/ to /v1/jobs: its Location would be built from the
        # client's Host header, for anyone, without a key
        redirect_slashes=False,
        # the interactive docs load Swagger UI from the package, not from a CDN
        docs_url=None,
        redoc_url=None,
        title="callgate",
        version="1",
        description="A reliable gateway for outbound faxes, SMS, calls and provider API "
        "requests. Authenticate with `Authorization: Bearer <API key>`.",
    )
    app.state.gateway = gateway
    install_error_handlers(app)
    _document_what_is_answered(app)

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=Health, responses={503: ERRORS[503]}, tags=["health"])
    async def readyz() -> dict[str, str]:
        """The database answers, and no worker of this process has stopped on an error."""
        await gateway.db(gateway.ready)
        return {"status": "ok"}

    secured = [Depends(require_key)]
    app.include_router(jobs_router, prefix="/v1", dependencies=secured, responses=ERRORS)
    from callgate.api.guardrails import router as guardrails_router

    app.include_router(guardrails_router, prefix="/v1", dependencies=secured, responses=ERRORS)
    app.include_router(
        compat_router, prefix="/compat/fax-gateway", dependencies=secured, responses=ERRORS
    )
    from callgate.api.batches import router as batches_router
    from callgate.webhooks.routes import router as webhook_router

    app.include_router(batches_router, prefix="/v1", dependencies=secured, responses=ERRORS)

    app.include_router(webhook_router, prefix="/v1", dependencies=secured, responses=ERRORS)
    # observability (issue 17): GET /v1/alerts with a key; /metrics open or with its token
    from callgate.api.observe import metrics_router
    from callgate.api.observe import router as alerts_router

    app.include_router(alerts_router, prefix="/v1", dependencies=secured, responses=ERRORS)
    app.include_router(metrics_router)
    # providers (issue 5): vendor status callbacks, authenticated by their signatures
    from callgate.api.inbound import router as inbound_router
    from callgate.api.providers import router as provider_router

    app.include_router(provider_router)
    app.include_router(inbound_router)
    from callgate.api.docs import mount as mount_docs
    from callgate.dashboard import mount as mount_dashboard

    mount_docs(app)
    mount_dashboard(app)
    app.add_middleware(
        BodyLimit,
        limit=gateway.settings.max_body_bytes,
        batch_limit=gateway.settings.max_batch_bytes,
    )
    return app


def metrics_app(gateway: Gateway) -> FastAPI:
    """An app that serves only ``/metrics`` and ``/healthz`` (a worker run alone)."""
    from callgate.api.observe import metrics_router

    app = FastAPI(title="callgate worker", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gateway = gateway
    install_error_handlers(app)
    app.include_router(metrics_router)

    @app.get("/healthz", response_model=Health)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _document_what_is_answered(app: FastAPI) -> None:
    """The document lists the answers the service gives: FastAPI's 422 never comes (bad
    input is a 400 with the error body), so it goes."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CallgateError)
    async def callgate_error(request: Request, exc: CallgateError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.code == "unauthorized" else None
        return error_response(status_for(exc), exc.code, exc.message, exc.field, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]  # where it was, not what: the field is the rest
        field = ".".join(loc) or None
        message = f"{field}: {err.get('msg')}" if field else str(err.get("msg"))
        missing = err.get("type") == "missing" and field is not None  # not the whole body
        code = "missing_field" if missing else "invalid_request"
        if field is None and err.get("type") in ("model_attributes_type", "dict_type"):
            message = "the body must be a JSON object (Content-Type: application/json)"
        return error_response(400, code, message, field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every route of the path, not only the first one's
            headers["Allow"] = _allowed(request, headers.get("Allow", ""))
        return error_response(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            str(exc.detail),
            headers=headers,
        )

    @app.exception_handler(ClientDisconnect)
    async def disconnected(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # the client went away mid-request (an upload cut off): nothing is stored, and
        # nobody is left to read an answer; not an error of callgate's
        log.info("%s %s: the client disconnected", request.method, request.url.path)
        return error_response(400, "client_disconnected", "the client disconnected")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, "internal_error", "callgate failed; see its log")


BEARER = HTTPBearer(auto_error=False, description="An API key: `callgate keys create`")


def _allowed(request: Request, given: str) -> str:
    """The methods the document lists for this request's path (for a 405's ``Allow``:
    the router names only the first route of a path that several routes share)."""
    import re

    methods = {m.strip() for m in given.split(",") if m.strip()}
    path = request.url.path
    paths = request.app.openapi().get("paths", {})
    if path in paths:  # a path of its own (/v1/jobs/retry), not a value of /v1/jobs/{id}
        methods = {m.upper() for m in paths[path]}
    else:
        for template, operations in paths.items():
            pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
            if re.fullmatch(pattern, path):
                methods |= {m.upper() for m in operations}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


async def require_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None,
) -> ApiKey:
    """The caller's API key, from ``Authorization: Bearer ...``; 401 without a valid one."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "an API key is required: Authorization: Bearer ...")
    gw: Gateway = request.app.state.gateway
    key = await gw.authenticate(token.strip())
    if key is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key")
    request.state.api_key = key
    return key
