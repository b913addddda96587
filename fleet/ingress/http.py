"""HTTP plumbing for the ingress: the error mapping, bearer-token auth, the body-size limit, SSE framing.

Every fleet error becomes `{"error": <type>, "message": <what to fix>}` with the status its class
carries (fleet/errors.py), and a `Retry-After` header when the error says when to retry; request
validation errors become 422 in the same shape; anything else 500 in the same shape (logged, with no
internals in the body).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response
from starlette.types import ASGIApp

from fleet.errors import FleetError, InvalidRequestError, UnauthorizedError, explain, field_of
from fleet.ingress.web import is_console_asset
from fleet.schemas.api import DeliberationEvent

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20  # 1 MiB: a task is text, not a payload
OPEN_PATHS = frozenset({"/v1/health"})  # the only route without a token: load balancers probe it


def check_bind(host: str, port: int, authenticated: bool, allow_unauthenticated: bool) -> None:
    """Refuse to serve beyond this machine without a token: `InvalidRequestError` when `host` is not a
    loopback address (0.0.0.0, a LAN address, a name) and no bearer token is configured, unless the
    config says an authenticating proxy stands in front (`allow_unauthenticated`)."""
    if authenticated or allow_unauthenticated or host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:  # a host name: it may resolve to anything
        pass
    raise InvalidRequestError(
        f"refusing to serve fleet on {host}:{port} without authentication: set api_token in the config or "
        "FLEET_API_TOKEN in the environment of `serve run`/`serve deploy`, bind a loopback address "
        "(http_options.host: 127.0.0.1), or set allow_unauthenticated: true behind a proxy that authenticates")


def _error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": error, "message": message})


def _invalid(errors: Sequence[Any]) -> JSONResponse:
    """422 in the error shape, plus `fields`: each error's field path and message (a form shows each
    beside its field; `message` joins them for everyone else)."""
    fields = [{"field": field_of(e["loc"]), "message": e["msg"]} for e in errors]
    return JSONResponse(status_code=422, content={"error": InvalidRequestError.__name__, "message": explain(errors),
                                                  "fields": fields})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FleetError)
    async def _fleet_error(request: Request, e: FleetError) -> JSONResponse:
        return fleet_error_response(e)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "InternalError", f"{type(e).__name__}: the server failed; see the ingress logs")

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        return _invalid(e.errors())

    @app.exception_handler(ValidationError)
    async def _model_invalid(request: Request, e: ValidationError) -> JSONResponse:
        return _invalid(e.errors())


def fleet_error_response(e: FleetError) -> JSONResponse:
    retry = getattr(e, "retry_after_s", None)
    headers = {"Retry-After": str(int(retry))} if retry else None
    if e.http_status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(status_code=e.http_status, content=e.to_dict(), headers=headers)


class BearerAuth(BaseHTTPMiddleware):
    """401 unless `Authorization: Bearer <token>` matches (compared in constant time); every path
    but OPEN_PATHS and the web console's page and assets (they hold no data: the page asks for the
    token and sends it on every call). Paths are taken below the app's root (Serve's route_prefix).
    The token is never logged or echoed."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        super().__init__(app)
        self._token = token.encode()

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        path, root = request.url.path, request.scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):] or "/"
        if path not in OPEN_PATHS and not is_console_asset(path):
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token):
                why = "a wrong bearer token" if scheme.lower() == "bearer" else "no bearer token"
                return fleet_error_response(UnauthorizedError(
                    f"{why}: send 'Authorization: Bearer <token>' (the fleet's api_token / FLEET_API_TOKEN)"))
        return await call_next(request)


class BodyLimit(BaseHTTPMiddleware):
    """413 for a body larger than MAX_BODY_BYTES (declared length, or read so far when chunked)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return _error(413, "PayloadTooLarge", f"body of {declared} bytes exceeds {MAX_BODY_BYTES}")
        if declared is None and request.method in ("POST", "PUT", "PATCH"):
            # Chunked: read it (Starlette caches the body for the route) and measure.
            if len(await request.body()) > MAX_BODY_BYTES:
                return _error(413, "PayloadTooLarge", f"body exceeds {MAX_BODY_BYTES} bytes")
        return await call_next(request)


def sse(event: DeliberationEvent | None) -> str:
    """One Server-Sent Event; None is a keep-alive comment."""
    if event is None:
        return ": keep-alive\n\n"
    return f"id: {event.seq}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"
