"""HTTP plumbing for the ingress: the error mapping, the body-size limit, SSE framing.

Every fleet error becomes `{"error": <type>, "message": <what to fix>}` with the status its class
carries (fleet/errors.py); request validation errors become 422 in the same shape.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.middleware.base import BaseHTTPMiddleware

from fleet.errors import FleetError, InvalidRequestError, explain
from fleet.record import DeliberationEvent

MAX_BODY_BYTES = 1 << 20  # 1 MiB: a task is text, not a payload


def _error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": error, "message": message})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FleetError)
    async def _fleet_error(request: Request, e: FleetError) -> JSONResponse:
        return JSONResponse(status_code=e.http_status, content=e.to_dict())

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        return _error(422, InvalidRequestError.__name__, explain(e.errors()))

    @app.exception_handler(ValidationError)
    async def _model_invalid(request: Request, e: ValidationError) -> JSONResponse:
        return _error(422, InvalidRequestError.__name__, explain(e.errors()))


class BodyLimit(BaseHTTPMiddleware):
    """413 for a body larger than MAX_BODY_BYTES (declared length, or read so far when chunked)."""

    async def dispatch(self, request: Request, call_next):
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
