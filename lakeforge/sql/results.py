"""Statement results as the wire wants them: a schema manifest, chunks of rows, values as strings."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from lakeforge.errors import InvalidParameter
from lakeforge.lake.types import type_name, type_text

MAX_CHUNK_ROWS = 100_000
MAX_CHUNK_BYTES = 16 * 1024 * 1024
# ColumnInfoTypeName of the statement API has no TIMESTAMP_NTZ or VOID.
_WIRE_TYPE_NAME = {"TIMESTAMP_NTZ": "TIMESTAMP"}
_CASTABLE = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_string,
             pa.types.is_large_string, pa.types.is_boolean, pa.types.is_date)


def column_types(t: pa.DataType) -> tuple[str, str]:
    """(type_text, type_name) for one result column."""
    if pa.types.is_interval(t) or pa.types.is_duration(t):
        return "interval", "INTERVAL"
    if pa.types.is_time(t):
        return "string", "STRING"
    try:
        text = type_text(t)
    except InvalidParameter:
        return "string", "STRING"
    name = type_name(text)
    return text, _WIRE_TYPE_NAME.get(name, name)


def manifest_schema(schema: pa.Schema) -> dict:
    columns = []
    for i, f in enumerate(schema):
        text, name = column_types(f.type)
        col = {"name": f.name, "type_text": text.upper() if "<" not in text else text, "type_name": name,
               "position": i}
        if pa.types.is_decimal(f.type):
            col.update(type_precision=f.type.precision, type_scale=f.type.scale)
        columns.append(col)
    return {"column_count": len(columns), "columns": columns}


@dataclass(frozen=True)
class Chunk:
    chunk_index: int
    row_offset: int
    row_count: int


def plan_chunks(table: pa.Table) -> list[Chunk]:
    """Bounded chunks: at most MAX_CHUNK_ROWS rows and about MAX_CHUNK_BYTES of Arrow data each."""
    rows = table.num_rows
    per_row = max(1, table.nbytes // rows) if rows else 1
    size = max(1, min(MAX_CHUNK_ROWS, MAX_CHUNK_BYTES // per_row))
    if rows == 0:
        return [Chunk(0, 0, 0)]
    return [Chunk(i, off, min(size, rows - off)) for i, off in enumerate(range(0, rows, size))]


def data_array(table: pa.Table) -> list[list[str | None]]:
    """Rows of strings or nulls, as Databricks' JSON_ARRAY format sends them."""
    columns = [_strings(col) for col in table.columns]
    return [list(row) for row in zip(*columns)] if columns else [[] for _ in range(table.num_rows)]


def _strings(col: pa.ChunkedArray) -> list[str | None]:
    t = col.type
    if pa.types.is_boolean(t):
        return [None if v is None else ("true" if v else "false") for v in col.to_pylist()]
    if t == pa.float64():  # Python's repr keeps the ".0" that Databricks shows for doubles
        return [None if v is None else repr(v) for v in col.to_pylist()]
    if any(check(t) for check in _CASTABLE):
        return pc.cast(col, pa.string()).to_pylist()
    if pa.types.is_timestamp(t):
        return [None if v is None else v.isoformat().replace("+00:00", "Z") for v in col.to_pylist()]
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        import base64

        return [None if v is None else base64.b64encode(v).decode() for v in col.to_pylist()]
    if pa.types.is_null(t):
        return [None] * len(col)
    if pa.types.is_nested(t):
        return [None if v is None else json.dumps(v, default=str) for v in col.to_pylist()]
    return [None if v is None else str(v) for v in col.to_pylist()]
