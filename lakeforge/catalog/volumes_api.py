"""Unity Catalog REST: volumes. `{name}` in the paths is the three-part full name."""

from __future__ import annotations

from fastapi import APIRouter, Request

from lakeforge.catalog.schema import Request as WireRequest
from lakeforge.server.http import body, call, caller, ok

PREFIX = "/api/2.1/unity-catalog"
router = APIRouter(prefix=PREFIX)


class CreateVolume(WireRequest):
    name: str
    catalog_name: str
    schema_name: str
    volume_type: str | None = None
    storage_location: str | None = None
    comment: str | None = None


class UpdateVolume(WireRequest):
    new_name: str | None = None
    comment: str | None = None
    owner: str | None = None


def _svc(request: Request):
    return request.app.state.ctx.volumes


@router.post("/volumes", name="volumes.create")
async def create_volume(request: Request):
    req = await body(request, CreateVolume)
    return ok(await call(_svc(request).create_volume, caller(request), req.catalog_name, req.schema_name, req.name,
                         req.volume_type, req.storage_location, req.comment))


@router.get("/volumes", name="volumes.list")
def list_volumes(request: Request, catalog_name: str, schema_name: str, max_results: int | None = None,
                 page_token: str | None = None):
    return ok(_svc(request).list_volumes(caller(request), catalog_name, schema_name, max_results, page_token))


@router.get("/volumes/{name}", name="volumes.get")
def get_volume(request: Request, name: str):
    return ok(_svc(request).get_volume(caller(request), name))


@router.patch("/volumes/{name}", name="volumes.update")
async def update_volume(request: Request, name: str):
    req = await body(request, UpdateVolume)
    return ok(await call(_svc(request).update_volume, caller(request), name, req.new_name, req.comment, req.owner))


@router.delete("/volumes/{name}", name="volumes.delete")
async def delete_volume(request: Request, name: str):
    await call(_svc(request).delete_volume, caller(request), name)
    return ok()
