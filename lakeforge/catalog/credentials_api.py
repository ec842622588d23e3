"""Unity Catalog REST: temporary credentials for tables, volumes and storage paths.

Storage is local (file://), so the answer carries the URL and an expiry but no cloud credential,
as the reference server does; engines then read the path directly. Model-version credentials live
with the models API."""

from __future__ import annotations

from fastapi import APIRouter, Request

from lakeforge.catalog.schema import Request as WireRequest
from lakeforge.server.http import body, call, caller, ok

PREFIX = "/api/2.1/unity-catalog"
router = APIRouter(prefix=PREFIX)


class TableCredentialRequest(WireRequest):
    table_id: str | None = None
    operation: str | None = None


class VolumeCredentialRequest(WireRequest):
    volume_id: str | None = None
    operation: str | None = None


class PathCredentialRequest(WireRequest):
    url: str | None = None
    operation: str | None = None


@router.post("/temporary-table-credentials", name="credentials.table")
async def table_credentials(request: Request):
    req = await body(request, TableCredentialRequest)
    return ok(await call(request.app.state.ctx.tables.table_credentials, caller(request), req.table_id, req.operation))


@router.post("/temporary-volume-credentials", name="credentials.volume")
async def volume_credentials(request: Request):
    req = await body(request, VolumeCredentialRequest)
    return ok(await call(request.app.state.ctx.volumes.volume_credentials, caller(request), req.volume_id,
                         req.operation))


@router.post("/temporary-path-credentials", name="credentials.path")
async def path_credentials(request: Request):
    req = await body(request, PathCredentialRequest)
    return ok(await call(request.app.state.ctx.tables.path_credentials, caller(request), req.url, req.operation))
