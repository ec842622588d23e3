"""Files API (`/api/2.0/fs`, databricks-sdk `w.files`): raw bytes in and out of volumes."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from lakeforge.catalog.files import FileStat
from lakeforge.errors import (
    InvalidParameter,
    NotImplementedHere,
    PreconditionFailed,
    RangeNotSatisfiable,
)
from lakeforge.server.http import call, caller, ok

FILES = "/api/2.0/fs/files/{path:path}"
DIRECTORIES = "/api/2.0/fs/directories/{path:path}"
WRITE_CHUNK = 1024 * 1024  # bytes buffered before each write to disk
router = APIRouter()


def _files(request: Request):
    return request.app.state.ctx.volumes.files


# ---- files -------------------------------------------------------------------------------------
@router.put(FILES, name="files.upload")
async def upload(request: Request, path: str, overwrite: bool = True):
    upload = await call(_files(request).open_upload, caller(request), path, overwrite)
    try:
        buffer = bytearray()
        async for chunk in request.stream():
            buffer += chunk
            if len(buffer) >= WRITE_CHUNK:
                await call(upload.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await call(upload.write, bytes(buffer))
        await call(upload.commit)
    except BaseException:
        upload.abort()  # synchronous: it must run even when the request is cancelled
        raise
    return ok()


@router.post(FILES, name="files.upload_session")
async def upload_session(request: Request, path: str, action: str | None = None, overwrite: bool = True):
    # databricks-sdk starts files of 50 MB and more as multipart uploads to presigned URLs. There are
    # no presigned URLs here: the initiation is accepted, the part URLs are refused, and the SDK then
    # falls back to one streamed PUT of the whole file.
    if action == "initiate-upload":
        await call(_files(request).check_upload, caller(request), path, overwrite)
        return ok({"multipart_upload": {"session_token": "single-put"}})
    if action == "complete-upload":
        raise NotImplementedHere("Multipart uploads are not supported; upload the file with one PUT")
    raise InvalidParameter(f"Unknown action '{action}'; expected initiate-upload or complete-upload")


@router.get(FILES, name="files.download")
def download(request: Request, path: str):
    return _file_response(request, _files(request).stat_file(caller(request), path))


@router.head(FILES, name="files.get_metadata")
def file_metadata(request: Request, path: str):
    return _file_response(request, _files(request).stat_file(caller(request), path))


@router.delete(FILES, name="files.delete")
async def delete_file(request: Request, path: str):
    await call(_files(request).delete_file, caller(request), path)
    return ok()


def _file_response(request: Request, f: FileStat) -> FileResponse:
    since = request.headers.get("if-unmodified-since")
    if since:
        try:
            limit = parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError):
            raise InvalidParameter(f"Invalid If-Unmodified-Since header '{since}'") from None
        if int(f.stat.st_mtime) > limit:
            raise PreconditionFailed("The file was modified after the If-Unmodified-Since time")
    _check_range(request.headers.get("range"), f.stat.st_size)
    # Starlette serves Range requests (206) and HEAD from the same response.
    return FileResponse(f.path, media_type="application/octet-stream", stat_result=f.stat)


_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def _check_range(header: str | None, size: int) -> None:
    """Reject bad Range headers in the platform's error shape before Starlette answers them in text."""
    if not header:
        return
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec:
        raise InvalidParameter(f"Invalid Range header '{header}': expected bytes=<start>-<end>")
    for part in spec.split(","):
        m = _RANGE.match(part)
        if not m or (not m.group(1) and not m.group(2)):
            raise InvalidParameter(f"Invalid Range header '{header}'")
        if m.group(1) and m.group(2) and int(m.group(1)) > int(m.group(2)):
            raise InvalidParameter(f"Invalid Range header '{header}': start is after end")
        if m.group(1) and int(m.group(1)) >= size:
            raise RangeNotSatisfiable(f"Range '{header}' starts beyond the end of a {size}-byte file",
                                      headers={"Content-Range": f"bytes */{size}"})


# ---- directories -------------------------------------------------------------------------------
@router.put(DIRECTORIES, name="files.create_directory")
async def create_directory(request: Request, path: str):
    await call(_files(request).create_directory, caller(request), path)
    return ok()


@router.get(DIRECTORIES, name="files.list_directory")
def list_directory(request: Request, path: str, page_size: int | None = None, page_token: str | None = None):
    return ok(_files(request).list_directory(caller(request), path, page_size, page_token))


@router.head(DIRECTORIES, name="files.get_directory_metadata")
def directory_metadata(request: Request, path: str):
    _files(request).check_directory(caller(request), path)
    return Response(status_code=200)


@router.delete(DIRECTORIES, name="files.delete_directory")
async def delete_directory(request: Request, path: str):
    await call(_files(request).delete_directory, caller(request), path)
    return ok()


# ---- presigned URLs: none here; the SDK falls back to the routes above --------------------------
def _no_presigned_urls():
    raise NotImplementedHere("Presigned URLs are not supported; use /api/2.0/fs/files directly")


for _op in ("create-download-url", "create-upload-part-urls", "create-abort-upload-url",
            "create-resumable-upload-url"):
    router.add_api_route(f"/api/2.0/fs/{_op}", _no_presigned_urls, methods=["POST"],
                         name=f"files.{_op.replace('-', '_')}")
