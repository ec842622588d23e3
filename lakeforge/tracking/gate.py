"""The ASGI app mounted at `/` after every Lakeforge router: it authorizes each request against
the rules table and only then hands it to MLflow's own ASGI app (its FastAPI routes and its Flask
app behind a WSGI adapter)."""

from __future__ import annotations

import urllib.parse

import orjson
from starlette.routing import Match, Mount

from lakeforge.audit import context as audit_context
from lakeforge.errors import (
    MalformedRequest,
    MethodNotAllowed,
    NotFound,
    NotImplementedHere,
    Unauthenticated,
)
from lakeforge.server.http import call
from lakeforge.server.middleware import cookie_token
from lakeforge.tracking.rules import Special, Target, is_mlflow_path, is_registry_path
from lakeforge.tracking.service import After, Params, TrackingService

# Targets read from a JSON body; the others (artifact paths, headers, query strings) never make
# the gate buffer a body, so artifact uploads stream straight to MLflow.
_BODY_TARGETS = set(Target) - {Target.ARTIFACT, Target.HEADER}
REGISTRY_MESSAGE = ("The MLflow model registry is served by Lakeforge's catalog (registered models live in "
                    "catalog.schema.model); MLflow's own registry endpoints are not available on this server")


class TrackingGate:
    def __init__(self, service: TrackingService, platform_routes: list | None = None, login_path: str = "/login"):
        self.service = service
        self.platform_routes = platform_routes or []
        self.login_path = login_path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if not is_mlflow_path(path):
            self._refuse_unknown(scope)
        if is_registry_path(path):
            raise NotImplementedHere(REGISTRY_MESSAGE)
        principal = (scope.get("state") or {}).get("principal")
        if path == "/" and principal is None:
            # The start page is public so a browser without the cookie can be sent to sign in.
            principal = await call(self.service.signed_in, _credentials(dict(scope.get("headers") or [])))
            if principal is None:
                return await _redirect(send, self.login_path)
        runtime = self.service.runtime
        await runtime.wait()
        endpoint, view_args, rule = self.service.match(method, path)
        entry = audit_context.current.get()
        if entry is not None:
            entry.action = "mlflow." + endpoint.lstrip("_")
        if rule is not None and rule.level is Special.OFF:
            raise NotImplementedHere(f"MLflow's '{endpoint.lstrip('_')}' feature is turned off on Lakeforge")
        if principal is None:
            if rule is None or rule.level is not Special.ANY:
                raise Unauthenticated("Missing credentials: send 'Authorization: Bearer <token>'")
            return await runtime.asgi(scope, receive, send)

        headers = _headers(scope)
        params = Params(view_args=dict(view_args), headers=headers,
                        query=urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1")))
        if not principal.is_admin and rule is not None \
                and (rule.target in _BODY_TARGETS or rule.level is Special.CREATE_EXPERIMENT) \
                and method in ("POST", "PATCH", "PUT", "DELETE") and "json" in headers.get("content-type", "json"):
            raw = await _read_body(receive)
            params.body = _json_object(raw)
            receive = _replay(raw)
        if principal.is_admin:  # admins hold everything; skip the thread hop
            creates = rule is not None and rule.level is Special.CREATE_EXPERIMENT
            after = After.MAKE_OWNER if creates else After.NOTHING
        else:
            after = await call(self.service.decide, principal, endpoint, rule, params)
        if after is After.NOTHING:
            return await runtime.asgi(scope, receive, send)
        if after == After.MAKE_OWNER:
            hook = lambda answer: (self.service.make_owner(principal, answer), answer)[1]
        else:
            hook = lambda answer: self.service.readable_experiments(principal, answer)
        await runtime.asgi(scope, receive, _rewriting(send, hook))


    def _refuse_unknown(self, scope) -> None:
        """A catch-all mount hides the router's 405: a Lakeforge path asked with another method
        still answers METHOD_NOT_ALLOWED, anything else ENDPOINT_NOT_FOUND."""
        method, path = scope["method"], scope["path"]
        for route in self.platform_routes:
            if not isinstance(route, Mount) and route.matches(scope)[0] is Match.PARTIAL:
                raise MethodNotAllowed(f"Method {method} is not allowed on {path}")
        raise NotFound(f"No API found for {method} {path}", error_code="ENDPOINT_NOT_FOUND")


def _credentials(headers: dict[bytes, bytes]) -> str | None:
    """A Bearer token if one was sent, else the sign-in cookie's (the start page is public, so the
    platform middleware has not authenticated it)."""
    value = (headers.get(b"authorization") or b"").decode("latin-1")
    if value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return cookie_token(headers)


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}


async def _read_body(receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(raw: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _json_object(raw: bytes) -> dict:
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise MalformedRequest(f"Malformed JSON in request body: {e}") from None
    return data if isinstance(data, dict) else {}


def _rewriting(send, hook):
    """Hold MLflow's (small, JSON) answer, let `hook` act on it and reshape it, then send it. A
    grant written by the hook exists before the client sees the new experiment's id."""
    start: dict | None = None
    chunks: list[bytes] = []

    async def wrapped(message):
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body":
            return await send(message)
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        raw = b"".join(chunks)
        if start["status"] == 200:
            try:
                answer = orjson.loads(raw)
            except orjson.JSONDecodeError:
                answer = None
            if isinstance(answer, dict):
                raw = orjson.dumps(await call(hook, answer))
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(raw)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": raw, "more_body": False})

    return wrapped


async def _redirect(send, location: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode()), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
