"""Statement execution REST API (/api/2.0/sql/statements), the shape databricks-sdk speaks."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from lakeforge.server.http import call, caller, ok, parse, read_json
from lakeforge.sql.schema import ExecuteStatement
from lakeforge.sql.statements import Statement

router = APIRouter(prefix="/api/2.0/sql/statements")


def _svc(request: Request):
    return request.app.state.ctx.sql


async def finished_within(st: Statement, seconds: float) -> bool:
    """Wait for a statement on the event loop, so a long wait_timeout holds no worker thread."""
    if st.done.is_set() or seconds <= 0:
        return st.done.is_set()
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def wake() -> None:
        if not done.done():
            done.set_result(None)

    st.on_done(lambda: loop.call_soon_threadsafe(wake))
    try:
        await asyncio.wait_for(done, seconds)
        return True
    except TimeoutError:
        return st.done.is_set()


@router.post("", name="sql.statements.execute")
async def execute(request: Request):
    data = await read_json(request)
    if "schema" in data:  # `schema` shadows a BaseModel attribute; the model calls it schema_
        data["schema_"] = data.pop("schema")
    req = parse(ExecuteStatement, data)
    params = [p.model_dump() for p in req.parameters or []]
    svc, who = _svc(request), caller(request)
    sub = await call(svc.submit, who, req.statement, catalog=req.catalog, schema=req.schema_, parameters=params,
                     row_limit=req.row_limit, byte_limit=req.byte_limit, disposition=req.disposition,
                     format=req.format, wait_timeout=req.wait_timeout, on_wait_timeout=req.on_wait_timeout)
    if not await finished_within(sub.statement, sub.wait):
        await call(svc.timed_out, who, sub)
    return ok(await call(svc.response, sub.statement))


@router.get("/{statement_id}", name="sql.statements.get")
async def get_statement(request: Request, statement_id: str):
    return ok(await call(_svc(request).get, caller(request), statement_id))


@router.get("/{statement_id}/result/chunks/{chunk_index}", name="sql.statements.chunk")
async def get_chunk(request: Request, statement_id: str, chunk_index: int):
    return ok(await call(_svc(request).chunk, caller(request), statement_id, chunk_index))


@router.post("/{statement_id}/cancel", name="sql.statements.cancel")
async def cancel(request: Request, statement_id: str):
    return ok(await call(_svc(request).cancel, caller(request), statement_id))
