"""Lakeforge extension: table data as Arrow IPC streams, history and change data feed.

POST {PREFIX}/{full_name}/data?mode=append|overwrite[&schema_mode=merge|overwrite]   body: Arrow IPC stream
GET  {PREFIX}/{full_name}/data[?version=N][&columns=a,b][&limit=N]                  -> Arrow IPC stream
GET  {PREFIX}/{full_name}/history[?limit=N]                                          -> {"history": [...]}
GET  {PREFIX}/{full_name}/changes?starting_version=N[&ending_version=M]              -> Arrow IPC stream
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from lakeforge.catalog.table_data import ARROW_STREAM, TableRead
from lakeforge.errors import InvalidParameter, RequestTooLarge
from lakeforge.lake.arrow_stream import ipc_chunks
from lakeforge.server.http import call, caller, ok

PREFIX = "/api/2.0/lakeforge/tables"
WRITE_CHUNK = 1024 * 1024  # bytes buffered before each write to the spool file
VERSION_HEADER = "x-lakeforge-table-version"
router = APIRouter(prefix=PREFIX)


def _svc(request: Request):
    return request.app.state.ctx.table_data


@router.post("/{full_name}/data", name="tables.data.write")
async def write_data(request: Request, full_name: str, mode: str = "append", schema_mode: str | None = None):
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (ARROW_STREAM, "application/octet-stream", ""):
        raise InvalidParameter(f"Content-Type must be {ARROW_STREAM}; got '{content_type}'")
    svc = _svc(request)
    who = caller(request)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > svc.max_upload_bytes:
        raise RequestTooLarge(f"Table data uploads are limited to {svc.max_upload_bytes} bytes; this one is "
                              f"{length} bytes")
    await call(svc.check_write, who, full_name, mode, schema_mode)  # refuse before reading gigabytes
    upload = await call(svc.new_upload)
    try:
        buffer = bytearray()
        async for chunk in request.stream():
            buffer += chunk
            if len(buffer) >= WRITE_CHUNK:
                await call(upload.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await call(upload.write, bytes(buffer))
        upload.close()
        return ok(await call(svc.write, who, full_name, upload.path, mode, schema_mode))
    finally:
        upload.discard()  # synchronous: it must run even when the request is cancelled


@router.get("/{full_name}/data", name="tables.data.read")
async def read_data(request: Request, full_name: str, version: int | None = None, columns: str | None = None,
                    limit: int | None = None):
    picked = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    return _arrow(await call(_svc(request).read, caller(request), full_name, version, picked, limit))


@router.get("/{full_name}/history", name="tables.history")
async def history(request: Request, full_name: str, limit: int | None = None):
    return ok(await call(_svc(request).history, caller(request), full_name, limit))


@router.get("/{full_name}/changes", name="tables.changes")
async def changes(request: Request, full_name: str, starting_version: int = 0, ending_version: int | None = None):
    return _arrow(await call(_svc(request).changes, caller(request), full_name, starting_version, ending_version))


def _arrow(result: TableRead) -> StreamingResponse:
    return StreamingResponse(ipc_chunks(result.reader), media_type=ARROW_STREAM,
                             headers={VERSION_HEADER: str(result.version)})
