"""The one exception hierarchy. Each class carries an error code and an HTTP status; the server
maps every one of them to {"error_code", "message", "details"}."""

from __future__ import annotations

from typing import Any


class LakeforgeError(Exception):
    error_code = "INTERNAL_ERROR"
    status = 500

    def __init__(self, message: str, *, error_code: str | None = None, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if error_code:
            self.error_code = error_code
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        details = self.details or [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": self.error_code, "domain": "lakeforge"}
        ]
        return {"error_code": self.error_code, "message": self.message, "details": details}


class InvalidParameter(LakeforgeError):
    error_code = "INVALID_PARAMETER_VALUE"
    status = 400


class MalformedRequest(LakeforgeError):
    error_code = "MALFORMED_REQUEST"
    status = 400


class InvalidState(LakeforgeError):
    error_code = "INVALID_STATE"
    status = 400


class FailedPrecondition(LakeforgeError):
    error_code = "FAILED_PRECONDITION"
    status = 400


class NotFound(LakeforgeError):
    error_code = "NOT_FOUND"
    status = 404


class ResourceDoesNotExist(NotFound):
    error_code = "RESOURCE_DOES_NOT_EXIST"


class AlreadyExists(LakeforgeError):
    error_code = "ALREADY_EXISTS"
    status = 409


class ResourceAlreadyExists(AlreadyExists):
    error_code = "RESOURCE_ALREADY_EXISTS"


class ResourceConflict(LakeforgeError):
    error_code = "RESOURCE_CONFLICT"
    status = 409


class TemporarilyUnavailable(LakeforgeError):
    error_code = "TEMPORARILY_UNAVAILABLE"
    status = 503


class PermissionDenied(LakeforgeError):
    error_code = "PERMISSION_DENIED"
    status = 403


class Unauthenticated(LakeforgeError):
    error_code = "UNAUTHENTICATED"
    status = 401


class RequestTooLarge(LakeforgeError):
    error_code = "REQUEST_TOO_LARGE"
    status = 413


class PreconditionFailed(LakeforgeError):
    error_code = "PRECONDITION_FAILED"
    status = 412


class RangeNotSatisfiable(LakeforgeError):
    error_code = "INVALID_PARAMETER_VALUE"
    status = 416


class NotImplementedHere(LakeforgeError):
    error_code = "NOT_IMPLEMENTED"
    status = 501


class RateLimited(LakeforgeError):
    error_code = "REQUEST_LIMIT_EXCEEDED"
    status = 429


class MethodNotAllowed(LakeforgeError):
    error_code = "METHOD_NOT_ALLOWED"
    status = 405


class InternalError(LakeforgeError):
    error_code = "INTERNAL_ERROR"
    status = 500
