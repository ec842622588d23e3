"""Table data over the wire for the SDK: any dataframe to an Arrow stream, Arrow IPC bodies streamed
both ways (no whole-table copy in memory on either side)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import pyarrow as pa

from lakeforge.client.connection import ApiError, Connection
from lakeforge.lake.arrow_stream import ipc_chunks

ARROW_STREAM = "application/vnd.apache.arrow.stream"
DATA = "/api/2.0/lakeforge/tables/{}/data"


def to_reader(data: Any) -> pa.RecordBatchReader:
    """A pyarrow Table / RecordBatch / RecordBatchReader, a pandas or polars DataFrame, or anything
    exporting the Arrow C stream interface, as a RecordBatchReader. pandas and polars are only
    touched when `data` is one of theirs."""
    if isinstance(data, pa.RecordBatchReader):
        return data
    if isinstance(data, pa.Table):
        return data.to_reader()
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data]).to_reader()
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False).to_reader()
    if module == "polars":
        return data.to_arrow().to_reader()
    if hasattr(data, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(data)
    raise TypeError(f"Cannot write a {type(data).__name__}: pass a pyarrow Table or RecordBatchReader, "
                    "a pandas DataFrame or a polars DataFrame")


def post_stream(conn: Connection, path: str, reader: pa.RecordBatchReader, params: dict) -> dict:
    params = {k: v for k, v in params.items() if v is not None}
    resp = conn.http.post(path, content=ipc_chunks(reader), params=params, headers={"Content-Type": ARROW_STREAM})
    raise_for_status(resp)
    return resp.json()


def get_table(conn: Connection, path: str, params: dict) -> pa.Table:
    params = {k: v for k, v in params.items() if v is not None}
    with conn.http.stream("GET", path, params=params) as resp:
        if resp.status_code >= 400:
            resp.read()
            raise_for_status(resp)
        # Buffered: Arrow expects each read to return the whole message body, not what one chunk holds.
        body = io.BufferedReader(_ResponseFile(resp.iter_bytes()), buffer_size=1 << 20)
        return pa.ipc.open_stream(pa.PythonFile(body, mode="r")).read_all()


def raise_for_status(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    try:
        body = resp.json()
    except ValueError:
        body = {}
    raise ApiError(resp.status_code, body.get("error_code", f"HTTP_{resp.status_code}"),
                   body.get("message", resp.text[:500]), resp.headers.get("x-request-id"))


class _ResponseFile(io.RawIOBase):
    """A readable file over a response's byte iterator, so Arrow reads batches as they arrive."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks = chunks
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            self.pending = next(self.chunks, None)
            if self.pending is None:
                self.pending = b""
                return 0
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]  # chunks are small (network reads): no quadratic copying
        return n
