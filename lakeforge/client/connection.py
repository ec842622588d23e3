"""How the SDK and CLI find the server and a token, and how they talk to it."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from lakeforge import __version__

DEFAULT_HOST = "http://127.0.0.1:8080"
USER_AGENT = f"lakeforge-client/{__version__}"


class ApiError(Exception):
    """An error answered by the server, in its {error_code, message} shape."""

    def __init__(self, status: int, error_code: str, message: str, request_id: str | None = None):
        super().__init__(f"{error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.request_id = request_id


class Record(dict):
    """A response object: a dict whose keys also read as attributes (`info.name`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return Record({k: _wrap(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def profiles_path() -> Path:
    home = Path(os.environ.get("LAKEFORGE_HOME", Path.home() / ".lakeforge")).expanduser()
    return Path(os.environ.get("LAKEFORGE_PROFILES", home / "profiles.toml")).expanduser()


def resolve(host: str | None = None, token: str | None = None, profile: str | None = None) -> tuple[str, str | None]:
    """Where to connect and with which token.

    An explicit profile (argument or LAKEFORGE_PROFILE) wins over LAKEFORGE_HOST / LAKEFORGE_TOKEN;
    arguments win over both. Without one, the environment is used and the `default` profile fills
    the gaps. A profile's token is only ever sent to that profile's host, and the bootstrap admin
    token that `lakeforge up` wrote is only used for a server on this machine's default address."""
    profile = profile or os.environ.get("LAKEFORGE_PROFILE")
    profiles = _load_profiles()
    if profile:
        section = profiles.get(profile)
        if section is None:
            raise ValueError(f"profile '{profile}' not found in {profiles_path()}")
        chosen_host, chosen_token = section.get("host"), section.get("token")
    else:
        default = profiles.get("default", {})
        chosen_host = os.environ.get("LAKEFORGE_HOST") or default.get("host")
        chosen_token = os.environ.get("LAKEFORGE_TOKEN")
        if chosen_token is None and _same_host(chosen_host, default.get("host")):
            chosen_token = default.get("token")
    final_host = (host or chosen_host or DEFAULT_HOST).rstrip("/")
    if token is None and host is not None and not _same_host(host, chosen_host):
        chosen_token = None  # never send a token meant for another server
    final_token = token or chosen_token
    if not final_token and final_host in (DEFAULT_HOST, "http://localhost:8080"):
        local = profiles_path().parent / "admin-token"
        if local.exists():
            final_token = local.read_text().strip()
    return final_host, final_token


def _load_profiles() -> dict:
    path = profiles_path()
    if not path.exists():
        return {}
    with open(path, "rb") as f:
        return tomllib.load(f)


def _same_host(a: str | None, b: str | None) -> bool:
    return (a or DEFAULT_HOST).rstrip("/") == (b or DEFAULT_HOST).rstrip("/")


class Connection:
    def __init__(self, host: str | None = None, token: str | None = None, profile: str | None = None,
                 timeout: float = 60.0):
        self.host, self.token = resolve(host, token, profile)
        headers = {"User-Agent": USER_AGENT}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.http = httpx.Client(base_url=self.host, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                content: bytes | None = None, raw: bool = False) -> Any:
        if params:
            params = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items() if v is not None}
        resp = self.http.request(method, path, json=json, params=params, content=content)
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {}
            raise ApiError(resp.status_code, body.get("error_code", f"HTTP_{resp.status_code}"),
                           body.get("message", resp.text[:500]), resp.headers.get("x-request-id"))
        if raw:
            return resp
        return _wrap(resp.json()) if resp.content else Record()

    def paginate(self, path: str, key: str, params: dict | None = None) -> Iterator[Record]:
        params = dict(params or {})
        while True:
            page = self.request("GET", path, params=params)
            yield from page.get(key, [])
            token = page.get("next_page_token")
            if not token:
                return
            params["page_token"] = token

    def close(self) -> None:
        self.http.close()
