"""Unity Catalog REST: functions. The wire models check every enum against the spec, so a stored
function never carries a value a spec client would reject."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from lakeforge.server.http import body, call, caller, ok

PREFIX = "/api/2.1/unity-catalog"
router = APIRouter(prefix=PREFIX)

ColumnTypeName = Literal["BOOLEAN", "BYTE", "SHORT", "INT", "LONG", "FLOAT", "DOUBLE", "DATE", "TIMESTAMP",
                         "TIMESTAMP_NTZ", "STRING", "BINARY", "DECIMAL", "INTERVAL", "ARRAY", "STRUCT", "MAP",
                         "VARIANT", "CHAR", "NULL", "USER_DEFINED_TYPE", "TABLE_TYPE"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FunctionParameterInfo(_Wire):
    name: str
    type_text: str
    type_json: str | None = None
    type_name: ColumnTypeName | None = None
    type_precision: int | None = None
    type_scale: int | None = None
    type_interval_type: str | None = None
    position: int | None = None
    parameter_mode: Literal["IN"] | None = None
    parameter_type: Literal["PARAM", "COLUMN"] | None = None
    parameter_default: str | None = None
    comment: str | None = None


class FunctionParameterInfos(_Wire):
    parameters: list[FunctionParameterInfo] | None = None


class TableDependency(_Wire):
    table_full_name: str


class FunctionDependency(_Wire):
    function_full_name: str


class Dependency(_Wire):
    table: TableDependency | None = None
    function: FunctionDependency | None = None


class DependencyList(_Wire):
    dependencies: list[Dependency] | None = None


class CreateFunction(_Wire):
    name: str
    catalog_name: str
    schema_name: str
    input_params: FunctionParameterInfos | None = None
    data_type: ColumnTypeName
    full_data_type: str | None = None
    return_params: FunctionParameterInfos | None = None
    routine_body: Literal["SQL", "EXTERNAL"]
    routine_definition: str | None = None
    routine_dependencies: DependencyList | None = None
    parameter_style: Literal["S"] | None = None
    is_deterministic: bool | None = None
    sql_data_access: Literal["CONTAINS_SQL", "READS_SQL_DATA", "NO_SQL"] | None = None
    is_null_call: bool | None = None
    security_type: Literal["DEFINER"] | None = None
    specific_name: str | None = None
    comment: str | None = None
    properties: str | dict[str, Any] | None = None
    external_language: str | None = None
    external_name: str | None = None
    sql_path: str | None = None


class CreateFunctionRequest(_Wire):
    function_info: CreateFunction


class UpdateFunction(_Wire):
    owner: str | None = None


def _svc(request: Request):
    return request.app.state.ctx.functions


@router.post("/functions", name="functions.create")
async def create_function(request: Request):
    req = await body(request, CreateFunctionRequest)
    info = req.function_info.model_dump(exclude_none=True)
    return ok(await call(_svc(request).create, caller(request), info))


@router.get("/functions", name="functions.list")
def list_functions(request: Request, catalog_name: str, schema_name: str, max_results: int | None = None,
                   page_token: str | None = None):
    return ok(_svc(request).list(caller(request), catalog_name, schema_name, max_results, page_token))


@router.get("/functions/{name}", name="functions.get")
def get_function(request: Request, name: str):
    return ok(_svc(request).get(caller(request), name))


@router.patch("/functions/{name}", name="functions.update")
async def update_function(request: Request, name: str):
    req = await body(request, UpdateFunction)
    return ok(await call(_svc(request).update, caller(request), name, req.owner))


@router.delete("/functions/{name}", name="functions.delete")
async def delete_function(request: Request, name: str):
    await call(_svc(request).delete, caller(request), name)
    return ok()
