"""SQL from the SDK: `lf.sql("SELECT ...", region="EU")` runs a statement and returns a pyarrow.Table,
fetching every chunk. Keyword arguments become named :parameters."""

from __future__ import annotations

import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from lakeforge.client.connection import ApiError, Connection

PATH = "/api/2.0/sql/statements"
_ARROW = {"BOOLEAN": pa.bool_(), "BYTE": pa.int8(), "SHORT": pa.int16(), "INT": pa.int32(), "LONG": pa.int64(),
          "FLOAT": pa.float32(), "DOUBLE": pa.float64(), "DATE": pa.date32(), "STRING": pa.string(),
          "CHAR": pa.string()}


class StatementFailed(ApiError):
    """The statement ran and failed (or was canceled): the server's status error."""


def _param_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, Decimal):
        return "DECIMAL(38,18)"
    if isinstance(value, datetime):
        return "TIMESTAMP"
    if isinstance(value, date):
        return "DATE"
    return "STRING"


def _param_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


class Sql:
    def __init__(self, conn: Connection):
        self._c = conn

    def __call__(self, statement: str, *, catalog: str | None = None, schema: str | None = None,
                 row_limit: int | None = None, timeout: float = 600.0, **params: Any) -> pa.Table:
        resp = self.execute(statement, catalog=catalog, schema=schema, row_limit=row_limit, **params)
        resp = self.wait(resp["statement_id"], resp, timeout)
        return self.to_arrow(resp)

    def execute(self, statement: str, *, catalog: str | None = None, schema: str | None = None,
                row_limit: int | None = None, wait_timeout: str = "30s", **params: Any):
        parameters = [{"name": k, "value": _param_value(v), "type": _param_type(v)} for k, v in params.items()]
        return self._c.request("POST", PATH, json={
            "statement": statement, "catalog": catalog, "schema": schema, "row_limit": row_limit,
            "parameters": parameters or None, "wait_timeout": wait_timeout, "disposition": "INLINE",
            "format": "JSON_ARRAY"})

    def wait(self, statement_id: str, resp=None, timeout: float = 600.0):
        """Poll until the statement reaches a terminal state; raise StatementFailed unless it SUCCEEDED."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while resp is None or resp["status"]["state"] in ("PENDING", "RUNNING"):
            if time.monotonic() > deadline:
                self.cancel(statement_id)
                raise TimeoutError(f"statement {statement_id} did not finish in {timeout} s (canceled)")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            resp = self._c.request("GET", f"{PATH}/{statement_id}")
        status = resp["status"]
        if status["state"] != "SUCCEEDED":
            error = status.get("error") or {}
            raise StatementFailed(200, error.get("error_code") or status["state"],
                                  error.get("message") or f"statement {status['state'].lower()}")
        return resp

    def cancel(self, statement_id: str) -> None:
        self._c.request("POST", f"{PATH}/{statement_id}/cancel")

    def rows(self, resp) -> list[list[str | None]]:
        """Every row of a finished statement, walking the chunks."""
        out: list[list[str | None]] = []
        result = resp.get("result") or {}
        while True:
            out.extend(result.get("data_array") or [])
            nxt = result.get("next_chunk_index")
            if nxt is None:
                return out
            result = self._c.request("GET", f"{PATH}/{resp['statement_id']}/result/chunks/{nxt}")

    def to_arrow(self, resp) -> pa.Table:
        columns = resp["manifest"]["schema"].get("columns") or []
        rows = self.rows(resp)
        arrays = [_column([r[i] for r in rows], c) for i, c in enumerate(columns)]
        return pa.Table.from_arrays(arrays, names=[c["name"] for c in columns])


def _column(values: list[str | None], col: dict) -> pa.Array:
    """Typed Arrow values from the wire's strings; types without an exact rule stay strings."""
    strings = pa.array(values, pa.string())
    name = col.get("type_name")
    try:
        if name == "DECIMAL":
            return strings.cast(pa.decimal128(col.get("type_precision") or 38, col.get("type_scale") or 0))
        if name == "TIMESTAMP":
            tz = None if "NTZ" in (col.get("type_text") or "").upper() else "UTC"
            stamps = pa.array([None if v is None else v.rstrip("Z") for v in values], pa.string())
            naive = stamps.cast(pa.timestamp("us"))  # the wire's values are UTC
            return naive if tz is None else naive.cast(pa.timestamp("us", tz=tz))
        if name in _ARROW:
            if name == "BOOLEAN":
                return pa.array([None if v is None else v == "true" for v in values], pa.bool_())
            return strings.cast(_ARROW[name])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    return strings
