"""The scoring path: `POST /serving-endpoints/{name}/invocations` and
`/serving-endpoints/{name}/served-models/{served}/invocations`.

A plain ASGI handler behind the platform middleware (which has authenticated the caller and will
audit the call), not a FastAPI route: this path runs thousands of times a second and routing,
dependency injection and response classes would cost more than the rest. The server never parses
or runs the model input: the body goes as is to a model worker, which validates it against the
signature and answers with the status and JSON to send back.

Per call: CAN_QUERY on the endpoint, rate limits, traffic split, predict, the inference-table
record in its write-ahead log (before the response), usage counters.
"""

from __future__ import annotations

import asyncio
import math
import time

import orjson

from lakeforge.audit import context as audit_context
from lakeforge.catalog.access import Securable
from lakeforge.catalog.privileges import Kind, P
from lakeforge.errors import (
    MalformedRequest,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    RequestTooLarge,
    ResourceDoesNotExist,
    TemporarilyUnavailable,
)
from lakeforge.serving import limits
from lakeforge.serving.pool import EntityUnavailable

PREFIX = "/serving-endpoints/"
_JSON = (b"content-type", b"application/json")


class Invocations:
    def __init__(self, runtime, access, limiter, usage, usage_log, settings):
        self.runtime = runtime
        self.access = access
        self.limiter = limiter
        self.usage = usage
        self.usage_log = usage_log  # a callable returning the UsageLog (opened at start)
        self.max_body = settings.serving_max_body_bytes

    async def __call__(self, scope, receive, send):
        parts = scope["path"].split("/")
        if len(parts) == 4 and parts[3] == "invocations":
            name, served = parts[2], None
        elif len(parts) == 6 and parts[3] == "served-models" and parts[5] == "invocations":
            name, served = parts[2], parts[4]
        else:
            raise NotFound(f"No API found for {scope['method']} {scope['path']}", error_code="ENDPOINT_NOT_FOUND")
        entry = audit_context.current.get()
        entry.action, entry.securable = "queryEndpoint", name
        if scope["method"] != "POST":
            raise MethodNotAllowed(f"Use POST for {scope['path']}")
        principal = scope["state"]["principal"]
        d = self.runtime.deployments.get(name)
        if d is None:
            await self._not_deployed(principal, name)
        self.access.authorize(principal, P.CAN_QUERY, Securable(Kind.SERVING_ENDPOINT, d.endpoint_id, name, d.owner_id))
        if d.rules:
            await self._check_limits(d, principal)
        body = await self._body(receive)
        content_type = _header(scope, b"content-type") or "application/json"
        started = time.perf_counter()
        while True:
            try:
                if served is not None:
                    status, answer = await self._direct(d, served, entry.request_id, content_type, body)
                    chosen = served
                else:
                    chosen, status, answer = await self._routed(d, entry.request_id, content_type, body)
                break
            except TemporarilyUnavailable:
                # A config update swapped the deployment while this request was on its way to the
                # old one: the new deployment answers instead.
                current = self.runtime.deployments.get(name)
                if current is None or current is d:
                    raise
                d = current
        served = chosen
        elapsed_ms = (time.perf_counter() - started) * 1000
        now_ms = time.time_ns() // 1_000_000
        if d.inference is not None:
            entity = d.entity(served)
            await d.inference.append({
                "client_request_id": _client_request_id(body), "databricks_request_id": entry.request_id,
                "timestamp_ms": now_ms, "status_code": status, "execution_time_ms": int(round(elapsed_ms)),
                "request": body.decode("utf-8", "replace"), "response": answer.decode("utf-8", "replace"),
                "served_entity_id": d.entity_ids.get(served), "requester": principal.name,
                "request_metadata": {"endpoint_name": name, "model_name": entity["entity_name"],
                                     "model_version": entity["entity_version"], "served_entity_name": served}})
        self.usage.record(name, served, principal.name, status, elapsed_ms, len(body), len(answer))
        if d.usage_enabled:
            self.usage_log().append({
                "ts": now_ms * 1000, "endpoint_name": name, "served_entity_name": served,
                "requester": principal.name, "request_id": entry.request_id, "status_code": status,
                "execution_time_ms": elapsed_ms, "input_bytes": len(body), "output_bytes": len(answer)})
        await send({"type": "http.response.start", "status": status,
                    "headers": [_JSON, (b"content-length", str(len(answer)).encode()),
                                (b"served-model-name", served.encode())]})
        await send({"type": "http.response.body", "body": answer})

    async def _direct(self, d, served: str, request_id: str, content_type: str, body: bytes) -> tuple[int, bytes]:
        pool = d.pools.get(served)
        if pool is None:
            raise ResourceDoesNotExist(f"Served model '{served}' does not exist in endpoint '{d.name}'")
        try:
            return await pool.predict(request_id, content_type, body)
        except EntityUnavailable as e:
            raise TemporarilyUnavailable(f"Served model '{served}' of endpoint '{d.name}' is not ready: {e}") \
                from None

    async def _routed(self, d, request_id: str, content_type: str, body: bytes) -> tuple[str, int, bytes]:
        """Traffic split; a served entity whose worker just died is skipped and the request goes to
        another one (a prediction has no side effects, and the caller gets exactly one answer)."""
        tried: set[str] = set()
        while True:
            served = d.router.pick(lambda n: n not in tried and d.pools[n].ready)
            if served is None:
                raise TemporarilyUnavailable(f"Endpoint '{d.name}' has no ready served entity; its model workers "
                                             "are starting or recovering")
            try:
                status, answer = await d.pools[served].predict(request_id, content_type, body)
                return served, status, answer
            except EntityUnavailable:
                tried.add(served)

    async def _not_deployed(self, principal, name: str):
        """404 for an unknown endpoint; 503 (retried by clients) for one not deployed here yet."""
        row = await asyncio.to_thread(self.runtime.stored, name)
        if row is None:
            raise ResourceDoesNotExist(f"Serving endpoint '{name}' does not exist")
        self.access.authorize(principal, P.CAN_QUERY, Securable(Kind.SERVING_ENDPOINT, row.id, name, row.owner_id))
        detail = row.update_message if row.config_update == "UPDATE_FAILED" else "its model workers are starting"
        raise TemporarilyUnavailable(f"Endpoint '{name}' is not ready: {detail}")

    async def _check_limits(self, d, principal) -> None:
        keys = limits.limit_keys(d.name, d.rules, principal.name, principal.group_names,
                                 principal.kind == "service_principal")
        # All limits or none: a call one limit denies uses no quota of the others.
        wait = await self.limiter.check_all_async(keys)
        if wait is not None:
            self.usage.record_rate_limited(d.name, principal.name)
            raise RateLimited(f"Rate limit exceeded for endpoint '{d.name}' (limits: "
                              f"{', '.join(f'{r.calls} calls per {r.renewal_period} by {r.key}' for r in d.rules)})",
                              headers={"Retry-After": str(max(1, math.ceil(wait)))})

    async def _body(self, receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise MalformedRequest("The client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise RequestTooLarge(f"Request body exceeds the limit of {self.max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _client_request_id(body: bytes) -> str | None:
    if b"client_request_id" not in body:
        return None
    try:
        value = orjson.loads(body).get("client_request_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return str(value)[:256] if value is not None else None
