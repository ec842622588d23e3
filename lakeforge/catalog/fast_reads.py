"""The hot catalog reads: `GET /api/2.1/unity-catalog/tables/{full_name}`, `.../schemas/{full_name}`
and `.../catalogs/{name}`.

A plain ASGI handler behind the platform middleware (which has authenticated the caller and will
audit the call), dispatched before FastAPI, like the scoring path: clients and engines ask for the
same table over and over, and routing, dependency injection and response classes cost more than
the rest of such a read. The answer is the FastAPI route's, byte for byte: the same service lookup
(`securables.find`, one query for the object, its owner's name and its container chain), the same
rendering (`render_table`, `render_catalog`, `render_schema`), the same access decision, made for
every request (`check_*_visible`, which call `AccessControl`), the same errors (raised into the
platform middleware, which answers them in the error shape) and the same audit action (the
route's name). Query parameters are ignored, as the routes ignore them.

The rendered JSON of each object is kept in memory (never the access decision) while
`db.changes`, the count of write transactions shared by every server process on this machine, is
unchanged: any committed change anywhere (a rename, an owner, a comment, a column, a delete, a
principal's new name) makes every entry stale. Server replicas on other machines do not share that
counter: there an entry lives at most `auth_cache_seconds`, as cached grants do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from lakeforge.audit import context as audit_context
from lakeforge.catalog import securables as sec
from lakeforge.catalog.access import Securable
from lakeforge.catalog.privileges import Kind
from lakeforge.catalog.service import CatalogService, render_catalog, render_schema
from lakeforge.catalog.tables import TableService, render_table
from lakeforge.server.http import strip_nulls

PREFIX = "/api/2.1/unity-catalog/"
MAX_ENTRIES = 10_000
_HEADERS_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True)
class ReadRoute:
    kind: Kind
    action: str  # the FastAPI route's name: what the audit log records
    check: Callable[[Any, Securable], None]  # the service's access decision; raises PermissionDenied
    render: Callable[[Any, str | None], dict]


@dataclass(frozen=True)
class Rendered:
    changes: int  # db.changes before the row was read
    expires: float
    securable: Securable
    body: bytes


class CatalogReads:
    def __init__(self, catalog: CatalogService, tables: TableService, cache_seconds: float,
                 changes_file: Path | None = None):
        self.db = catalog.db
        if changes_file is not None:
            self.db.share_changes(changes_file)
        self.cache_seconds = cache_seconds
        self.routes = {
            "tables": ReadRoute(Kind.TABLE, "tables.get", tables.check_table_visible, render_table),
            "schemas": ReadRoute(Kind.SCHEMA, "schemas.get", catalog.check_schema_visible, render_schema),
            "catalogs": ReadRoute(Kind.CATALOG, "catalogs.get", catalog.check_catalog_visible, render_catalog),
        }
        self._rendered: dict[str, Rendered] = {}

    def match(self, scope) -> tuple[ReadRoute, str] | None:
        """The route and object name when `scope` is one of these reads; None for anything else."""
        path = scope["path"]
        if scope["method"] != "GET" or not path.startswith(PREFIX):
            return None
        collection, _, name = path[len(PREFIX):].partition("/")
        if not name or "/" in name:
            return None
        route = self.routes.get(collection)
        return None if route is None else (route, name)

    async def __call__(self, scope, send, matched: tuple[ReadRoute, str]) -> None:
        route, name = matched
        audit_context.current.get().action = route.action
        body = self.get(route, scope["state"]["principal"], name, scope["path"])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode()), _HEADERS_JSON]})
        await send({"type": "http.response.body", "body": body})

    def get(self, route: ReadRoute, caller, name: str, key: str) -> bytes:
        """The object's JSON once `caller` may see it; NotFound, InvalidParameter or PermissionDenied otherwise."""
        changes = self.db.changes.value  # read before the database, see lakeforge/store/engine.py
        now = time.monotonic()
        hit = self._rendered.get(key)
        if hit is None or hit.changes != changes or hit.expires <= now:
            found = sec.find(self.db, route.kind, name)
            body = orjson.dumps(strip_nulls(route.render(found.row, found.owner_name)), option=orjson.OPT_NON_STR_KEYS)
            hit = Rendered(changes, now + self.cache_seconds, found.securable, body)
            if len(self._rendered) >= MAX_ENTRIES:
                self._rendered.pop(next(iter(self._rendered)))
            self._rendered[key] = hit
        else:
            audit_context.note_securable(name)  # as `find` does
        route.check(caller, hit.securable)
        return hit.body


__all__ = ["PREFIX", "CatalogReads"]
