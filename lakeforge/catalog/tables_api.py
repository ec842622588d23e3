"""Unity Catalog REST: tables and staging tables."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from lakeforge.catalog.schema import Request as WireRequest
from lakeforge.server.http import body, call, caller, ok

PREFIX = "/api/2.1/unity-catalog"
router = APIRouter(prefix=PREFIX)


class CreateTable(WireRequest):
    name: str
    catalog_name: str
    schema_name: str
    table_type: str | None = None
    data_source_format: str | None = None
    columns: list[dict[str, Any]] | None = None
    storage_location: str | None = None
    comment: str | None = None
    properties: dict[str, Any] | None = None


class CreateStagingTable(WireRequest):
    name: str
    catalog_name: str
    schema_name: str


class UpdateTable(WireRequest):
    owner: str | None = None
    comment: str | None = None


def _svc(request: Request):
    return request.app.state.ctx.tables


@router.post("/tables", name="tables.create")
async def create_table(request: Request):
    req = await body(request, CreateTable)
    return ok(await call(_svc(request).create_table, caller(request), req.catalog_name, req.schema_name, req.name,
                         req.table_type, req.data_source_format, req.columns, req.storage_location, req.comment,
                         req.properties))


@router.post("/staging-tables", name="tables.create_staging")
async def create_staging_table(request: Request):
    req = await body(request, CreateStagingTable)
    return ok(await call(_svc(request).create_staging_table, caller(request), req.catalog_name, req.schema_name,
                         req.name))


@router.get("/tables", name="tables.list")
async def list_tables(request: Request, catalog_name: str, schema_name: str, max_results: int | None = None,
                page_token: str | None = None, omit_columns: bool = False, omit_properties: bool = False,
                omit_username: bool = False):
    return ok(_svc(request).list_tables(caller(request), catalog_name, schema_name, max_results, page_token,
                                        omit_columns, omit_properties, omit_username))


@router.get("/tables/{full_name}", name="tables.get")
async def get_table(request: Request, full_name: str):
    return ok(_svc(request).get_table(caller(request), full_name))


@router.get("/tables/{full_name}/exists", name="tables.exists")
async def table_exists(request: Request, full_name: str):
    return ok(_svc(request).table_exists(caller(request), full_name))


@router.patch("/tables/{full_name}", name="tables.update")
async def update_table(request: Request, full_name: str):
    req = await body(request, UpdateTable)
    return ok(await call(_svc(request).update_table, caller(request), full_name, req.owner, req.comment))


@router.delete("/tables/{full_name}", name="tables.delete")
async def delete_table(request: Request, full_name: str):
    await call(_svc(request).delete_table, caller(request), full_name)
    return ok()
