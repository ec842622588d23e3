"""Every error leaves the server as {"error_code", "message", "details"}; FastAPI's own
{"detail": ...} shape never reaches a client (databricks-sdk would misread it as a SCIM error)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lakeforge.audit import context as audit_context
from lakeforge.errors import (
    InternalError,
    InvalidParameter,
    LakeforgeError,
    MethodNotAllowed,
    NotFound,
)
from lakeforge.server.http import JSON, describe_validation

log = logging.getLogger("lakeforge.server")


def error_response(request: Request, e: LakeforgeError) -> JSON:
    request.scope["lakeforge_error_code"] = e.error_code
    return JSON(e.body(), status_code=e.status, headers=e.headers or None)


def install(app: FastAPI) -> None:
    @app.exception_handler(LakeforgeError)
    async def _lakeforge(request: Request, e: LakeforgeError):
        return error_response(request, e)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError):
        return error_response(request, InvalidParameter(describe_validation(e.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        if e.status_code == 404:
            err: LakeforgeError = NotFound(f"No API found for {request.method} {request.url.path}",
                                           error_code="ENDPOINT_NOT_FOUND")
        elif e.status_code == 405:
            err = MethodNotAllowed(f"Method {request.method} is not allowed on {request.url.path}")
        else:
            err = LakeforgeError(str(e.detail), error_code="BAD_REQUEST")
            err.status = e.status_code
        return error_response(request, err)

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception):
        # Starlette re-raises after this answer; the platform middleware logs the traceback once.
        entry = audit_context.current.get()
        rid = entry.request_id if entry else "unknown"
        return error_response(request, InternalError(
            f"Internal error; the server log has the details under request id {rid}"))
