"""Statement execution REST API (/api/2.0/sql/statements), the shape databricks-sdk speaks."""

from __future__ import annotations

from fastapi import APIRouter, Request

from lakeforge.server.http import call, caller, ok, parse, read_json
from lakeforge.sql.schema import ExecuteStatement

router = APIRouter(prefix="/api/2.0/sql/statements")


def _svc(request: Request):
    return request.app.state.ctx.sql


@router.post("", name="sql.statements.execute")
async def execute(request: Request):
    data = await read_json(request)
    if "schema" in data:  # `schema` shadows a BaseModel attribute; the model calls it schema_
        data["schema_"] = data.pop("schema")
    req = parse(ExecuteStatement, data)
    params = [p.model_dump() for p in req.parameters or []]
    return ok(await call(_svc(request).execute, caller(request), req.statement, catalog=req.catalog,
                         schema=req.schema_, parameters=params, row_limit=req.row_limit, byte_limit=req.byte_limit,
                         disposition=req.disposition, format=req.format, wait_timeout=req.wait_timeout,
                         on_wait_timeout=req.on_wait_timeout))


@router.get("/{statement_id}", name="sql.statements.get")
async def get_statement(request: Request, statement_id: str):
    return ok(await call(_svc(request).get, caller(request), statement_id))


@router.get("/{statement_id}/result/chunks/{chunk_index}", name="sql.statements.chunk")
async def get_chunk(request: Request, statement_id: str, chunk_index: int):
    return ok(await call(_svc(request).chunk, caller(request), statement_id, chunk_index))


@router.post("/{statement_id}/cancel", name="sql.statements.cancel")
async def cancel(request: Request, statement_id: str):
    return ok(await call(_svc(request).cancel, caller(request), statement_id))
