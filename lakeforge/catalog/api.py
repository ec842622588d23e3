"""Unity Catalog REST: catalogs, schemas, permissions, metastore summary."""

from __future__ import annotations

from fastapi import APIRouter, Request

from lakeforge.catalog import schema as wire
from lakeforge.server.http import body, call, caller, ok, spec_spelling

PREFIX = "/api/2.1/unity-catalog"
router = APIRouter(prefix=PREFIX)


def _svc(request: Request):
    return request.app.state.ctx.catalog


@router.post("/catalogs", name="catalogs.create")
async def create_catalog(request: Request):
    req = await body(request, wire.CreateCatalog)
    return ok(await call(_svc(request).create_catalog, caller(request), req.name, req.comment, req.properties, req.storage_root))


@router.get("/catalogs", name="catalogs.list")
async def list_catalogs(request: Request, max_results: int | None = None, page_token: str | None = None):
    return ok(_svc(request).list_catalogs(caller(request), max_results, page_token))


@router.get("/catalogs/{name}", name="catalogs.get")
async def get_catalog(request: Request, name: str):
    return ok(_svc(request).get_catalog(caller(request), name))


@router.patch("/catalogs/{name}", name="catalogs.update")
async def update_catalog(request: Request, name: str):
    req = await body(request, wire.UpdateSecurable)
    return ok(await call(_svc(request).update_catalog, caller(request), name, req.new_name, req.comment, req.properties,
                                           req.owner))


@router.delete("/catalogs/{name}", name="catalogs.delete")
def delete_catalog(request: Request, name: str, force: bool = False):
    _svc(request).delete_catalog(caller(request), name, force)
    return ok()


@router.post("/schemas", name="schemas.create")
async def create_schema(request: Request):
    req = await body(request, wire.CreateSchema)
    return ok(await call(_svc(request).create_schema, caller(request), req.catalog_name, req.name, req.comment, req.properties,
                                          req.storage_root))


@router.get("/schemas", name="schemas.list")
async def list_schemas(request: Request, catalog_name: str, max_results: int | None = None, page_token: str | None = None):
    return ok(_svc(request).list_schemas(caller(request), catalog_name, max_results, page_token))


@router.get("/schemas/{full_name}", name="schemas.get")
async def get_schema(request: Request, full_name: str):
    return ok(_svc(request).get_schema(caller(request), full_name))


@router.patch("/schemas/{full_name}", name="schemas.update")
async def update_schema(request: Request, full_name: str):
    req = await body(request, wire.UpdateSecurable)
    return ok(await call(_svc(request).update_schema, caller(request), full_name, req.new_name, req.comment, req.properties,
                                          req.owner))


@router.delete("/schemas/{full_name}", name="schemas.delete")
def delete_schema(request: Request, full_name: str, force: bool = False):
    _svc(request).delete_schema(caller(request), full_name, force)
    return ok()


@router.get("/permissions/{securable_type}/{full_name}", name="grants.get")
def get_permissions(request: Request, securable_type: str, full_name: str, principal: str | None = None):
    return ok(_svc(request).get_permissions(caller(request), securable_type, full_name, principal,
                                            spec_spelling(request)))


@router.patch("/permissions/{securable_type}/{full_name}", name="grants.update")
async def update_permissions(request: Request, securable_type: str, full_name: str):
    req = await body(request, wire.UpdatePermissions)
    changes = [c.model_dump() for c in req.changes]
    return ok(await call(_svc(request).update_permissions, caller(request), securable_type, full_name, changes,
                                               spec_spelling(request)))


@router.get("/metastore_summary", name="metastore.summary")
def metastore_summary(request: Request):
    return ok(_svc(request).metastore_summary(caller(request)))
