"""The outermost layer of every request: request id, body size limit, authentication, a durable
audit record before the response starts, and a last line of defence against stack traces."""

from __future__ import annotations

import itertools
import logging
import os
import time

import orjson

from lakeforge.audit import context as audit_context
from lakeforge.errors import (
    InternalError,
    LakeforgeError,
    RequestTooLarge,
    Unauthenticated,
)

log = logging.getLogger("lakeforge.server")

# Request ids: a random per-process prefix and a counter (uuid4 per request costs measurable CPU).
_ID_PREFIX = os.urandom(6).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):010x}"


PUBLIC = {("GET", "/health"), ("GET", "/.well-known/databricks-config"), ("HEAD", "/health"),
          # the web UI's sign-in page and its start page (its data calls authenticate; see tracking)
          ("GET", "/login"), ("POST", "/login"), ("GET", "/"), ("HEAD", "/")}
# Static web UI assets (MLflow's bundled JavaScript and CSS) hold no data.
PUBLIC_PREFIXES = ("/static-files/",)
# The web UI cannot send a Bearer header; the sign-in page keeps the token in this cookie.
TOKEN_COOKIE = "lakeforge_token"
# Platform web pages (the MLflow UI's start page is its gate's): a browser that is not signed in is
# sent to the sign-in page rather than answered 401 JSON. Clients sending a token still get the 401.
PAGE_PREFIXES = ("/monitors/",)


def is_public(method: str, path: str) -> bool:
    return (method, path) in PUBLIC or (method in ("GET", "HEAD") and path.startswith(PUBLIC_PREFIXES))


SERVICES = [
    ("/api/2.1/unity-catalog/permissions", "grants"),
    ("/api/2.1/unity-catalog/", "unityCatalog"),
    ("/api/2.0/preview/scim/", "identity"),
    ("/api/2.0/token-management/", "tokens"),
    ("/api/2.0/token/", "tokens"),
    ("/api/2.0/secrets/", "secrets"),
    ("/api/2.0/fs/", "files"),
    ("/api/2.0/lineage", "lineage"),
    ("/api/2.0/lakeforge/audit", "audit"),
    ("/api/2.0/lakeforge/tables", "tables"),
    ("/api/2.0/sql/", "sql"),
    ("/serving-endpoints/", "serving"),
    ("/api/2.0/serving-endpoints", "serving"),
    ("/api/2.0/permissions/serving-endpoints", "serving"),
    ("/metrics", "serving"),
    ("/api/2.0/mlflow", "mlflow"),
    ("/ajax-api/2.0/mlflow", "mlflow"),
]


def service_of(path: str) -> str:
    for prefix, name in SERVICES:
        if path.startswith(prefix):
            return name
    parts = [p for p in path.split("/") if p]
    return parts[2] if len(parts) > 2 and parts[0] == "api" else (parts[0] if parts else "root")


class PlatformMiddleware:
    def __init__(self, app, ctx):
        self.app = app
        self.ctx = ctx
        self.worker = str(ctx.settings.worker_id).encode()  # which server process answered

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        request_id = (headers.get(b"x-request-id") or b"").decode("latin-1")[:64] or new_request_id()
        entry = audit_context.RequestAudit(request_id=request_id, service=service_of(scope["path"]))
        token = audit_context.current.set(entry)
        state = {"status": None, "error_code": None, "principal": None, "started": False}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", request_id.encode()),
                                                                 (b"x-lakeforge-worker", self.worker)]
                if not is_public(scope["method"], scope["path"]):
                    await self._audit(scope, headers, entry, state, started)
                state["started"] = True
            await send(message)

        try:
            limit = self._body_limit(scope)
            length = headers.get(b"content-length")
            if length and length.isdigit() and int(length) > limit and not self._unlimited(scope):
                raise RequestTooLarge(f"Request body is {int(length)} bytes; the limit is {limit} bytes")
            if not is_public(scope["method"], scope["path"]):
                entry.action = "authenticate"  # replaced by the route's name once authenticated
                try:
                    principal = self.ctx.identity.authenticate(_bearer(headers))
                except Unauthenticated:
                    if not _page_for_browser(scope, headers):
                        raise
                    await send_wrapper({"type": "http.response.start", "status": 303,
                                        "headers": [(b"location", b"/login"), (b"content-length", b"0")]})
                    await send_wrapper({"type": "http.response.body", "body": b""})
                    return
                entry.action = None
                state["principal"] = principal
                scope.setdefault("state", {})["principal"] = principal
            receive = self._limited(receive, limit, scope)
            await self.app(scope, receive, send_wrapper)
        except LakeforgeError as e:
            if state["started"]:
                log.error("error after response started (request %s): %s", request_id, e.message)
            else:
                await self._error(send_wrapper, e, state)
        except Exception:
            log.exception("internal error (request %s)", request_id)  # the traceback stays in the log
            if not state["started"]:
                await self._error(send_wrapper, InternalError(
                    f"Internal error; the server log has the details under request id {request_id}"), state)
        finally:
            audit_context.current.reset(token)

    def _body_limit(self, scope) -> int:
        # Model inputs may be larger than API bodies (16 MB by default, as Databricks serving).
        settings = self.ctx.settings
        return settings.serving_max_body_bytes if scope["path"].startswith("/serving-endpoints/") \
            else settings.max_body_bytes

    @staticmethod
    def _unlimited(scope) -> bool:
        # Data uploads (volume files, table data as Arrow streams) stream to disk and are bound by
        # their own limits, not by the JSON body limit.
        path, method = scope["path"], scope["method"]
        return ((method == "PUT" and path.startswith("/api/2.0/fs/files/"))
                or (method == "PUT" and path.startswith(("/api/2.0/mlflow-artifacts/artifacts/",
                                                         "/ajax-api/2.0/mlflow-artifacts/artifacts/")))
                or (method == "POST" and path.startswith("/api/2.0/lakeforge/tables/") and path.endswith("/data")))

    def _limited(self, receive, limit: int, scope):
        if self._unlimited(scope):
            return receive
        seen = 0

        async def wrapped():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise RequestTooLarge(f"Request body exceeds the limit of {limit} bytes")
            return message

        return wrapped

    async def _error(self, send, e: LakeforgeError, state) -> None:
        state["error_code"] = e.error_code
        payload = orjson.dumps(e.body())
        hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        hdrs += [(k.lower().encode(), v.encode()) for k, v in e.headers.items()]
        await send({"type": "http.response.start", "status": e.status, "headers": hdrs})
        await send({"type": "http.response.body", "body": payload})

    async def _audit(self, scope, headers, entry, state, started) -> None:
        principal = state["principal"]
        route = scope.get("route")
        client = scope.get("client")
        record = {
            "ts": time.time_ns() // 1000,
            "request_id": entry.request_id,
            "principal": principal.name if principal else None,
            "principal_id": principal.id if principal else None,
            "service": entry.service,
            "action": entry.action or (getattr(route, "name", None) if route else None) or "unknown",
            "securable": entry.securable,
            "http_method": scope["method"],
            "path": scope["path"],
            "status_code": state["status"],
            "error_code": state["error_code"] or scope.get("lakeforge_error_code"),
            "source_address": client[0] if client else None,
            "user_agent": (headers.get(b"user-agent") or b"").decode("latin-1")[:256] or None,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        }
        await self.ctx.audit.record(record)


def _page_for_browser(scope, headers: dict) -> bool:
    return scope["method"] in ("GET", "HEAD") and scope["path"].startswith(PAGE_PREFIXES) \
        and b"authorization" not in headers


def _bearer(headers: dict) -> str | None:
    value = (headers.get(b"authorization") or b"").decode("latin-1")
    if value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return cookie_token(headers)


def cookie_token(headers: dict) -> str | None:
    """The token the web UI's sign-in stored (HttpOnly, SameSite=Strict: never sent cross-site)."""
    raw = (headers.get(b"cookie") or b"").decode("latin-1")
    for part in raw.split(";"):
        name, _, value = part.strip().partition("=")
        if name == TOKEN_COOKIE and value:
            return value.strip('"')
    return None


__all__ = ["PlatformMiddleware", "Unauthenticated"]
