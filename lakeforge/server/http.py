"""Request and response helpers shared by every router."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from lakeforge.errors import InvalidParameter, MalformedRequest
from lakeforge.identity.principal import Principal

M = TypeVar("M", bound=BaseModel)


def strip_nulls(value: Any) -> Any:
    """Clients expect unset fields to be absent, never null."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(strip_nulls(content), option=orjson.OPT_NON_STR_KEYS)


def ok(content: Any = None, headers: dict[str, str] | None = None) -> JSON:
    return JSON({} if content is None else content, status_code=200, headers=headers)


async def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is {}."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise MalformedRequest(f"Malformed JSON in request body: {e}") from None
    if not isinstance(data, dict):
        raise MalformedRequest("The request body must be a JSON object")
    return data


def parse(model: type[M], data: dict[str, Any]) -> M:
    """Validate a body against a pydantic model; errors name the offending field."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise InvalidParameter(describe_validation(e.errors())) from None


async def body(request: Request, model: type[M]) -> M:
    return parse(model, await read_json(request))


def describe_validation(errors) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path"))
        msg = err.get("msg", "invalid value")
        parts.append(f"'{loc}': {msg}" if loc else msg)
    return "Invalid request: " + "; ".join(parts)


def caller(request: Request) -> Principal:
    return request.state.principal


def spec_spelling(request: Request) -> bool:
    """Answer privileges with spaces (the UC spec) unless the client speaks the Databricks API."""
    ua = request.headers.get("user-agent", "").lower()
    return not ("databricks-sdk" in ua or "lakeforge" in ua)


async def call(fn, *args, **kwargs):
    """Run blocking service work (database writes, Delta commits, file I/O) off the event loop."""
    return await run_in_threadpool(fn, *args, **kwargs)
