"""Validate Lakeforge's Unity Catalog responses against the OpenAPI spec in ../shared/specs."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC = Path(__file__).resolve().parents[2] / "shared" / "specs" / "unity-catalog-api.yaml"
PREFIX = "/api/2.1/unity-catalog"


@functools.lru_cache(maxsize=1)
def openapi() -> OpenAPI:
    # The spec file itself fails strict validation (ColumnInfo.nullable has default 'true', a string),
    # so validate responses against it without validating the document.
    return OpenAPI.from_file_path(str(SPEC), config=Config(spec_validator_cls=None))


@dataclass
class _Request:
    method: str
    path: str
    query: dict
    body: bytes | None
    content_type: str = "application/json"
    host_url: str = "http://localhost:8080"
    parameters: RequestParameters = field(init=False)

    def __post_init__(self):
        self.parameters = RequestParameters(query=ImmutableMultiDict(
            [(k, v) for k, vs in self.query.items() for v in vs]), header=Headers(), cookie=ImmutableMultiDict())

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path


@dataclass
class _Response:
    status_code: int
    data: bytes
    headers: Headers
    content_type: str = "application/json"


def validate(response: httpx.Response) -> None:
    """Raise if a UC response (success or error) does not match the spec."""
    url = urlsplit(str(response.request.url))
    if not url.path.startswith(PREFIX) or response.status_code >= 400:
        return
    req = _Request(method=response.request.method.lower(), path=url.path,
                   query=parse_qs(url.query), body=response.request.content or None)
    resp = _Response(status_code=response.status_code, data=response.content or b"{}",
                     headers=Headers(dict(response.headers)))
    openapi().validate_response(req, resp)


class Recorder:
    """An httpx response hook that validates every UC response and counts them."""

    def __init__(self):
        self.validated: list[str] = []
        self.failures: list[str] = []

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        if not urlsplit(str(response.request.url)).path.startswith(PREFIX) or response.status_code >= 400:
            return
        try:
            validate(response)
            self.validated.append(f"{response.request.method} {response.request.url.path}")
        except Exception as e:  # collect all, report at the end
            body = response.content[:300].decode(errors="replace")
            self.failures.append(f"{response.request.method} {response.request.url.path}: {e!r} :: {body}")


__all__ = ["validate", "Recorder"]
