"""The two metric tables: read their rows, replace their contents in one Delta commit each, and put them
back to the version they had when a refresh started if it fails after writing."""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

log = logging.getLogger(__name__)


class MetricTable:
    def __init__(self, path: str, schema: pa.Schema):
        self.path = path
        self.schema = schema
        self.version_before = DeltaTable(path).version()
        self.written = False

    def rows(self) -> pa.Table:
        """Current rows, conformed to `schema` (columns it lacks are null; others dropped)."""
        table = DeltaTable(self.path, version=self.version_before).to_pyarrow_table()
        return conform(table, self.schema)

    def replace(self, rows: pa.Table) -> None:
        self.written = True
        write_deltalake(self.path, conform(rows, self.schema), mode="overwrite", schema_mode="overwrite")

    def holds(self, version: int | None) -> bool:
        """Whether the table still has what this engine wrote at `version`: nothing committed since, or
        only the restore of a failed refresh back to it."""
        if version is None or self.version_before == version:
            return version is not None
        last = DeltaTable(self.path).history(1)
        return bool(last) and self.version_before == last[0].get("version") and last[0].get("operation") == "RESTORE" \
            and str(last[0].get("operationParameters", {}).get("version")) == str(version)

    def version_after(self) -> int:
        return DeltaTable(self.path).version() if self.written else self.version_before

    def count(self) -> int:
        return DeltaTable(self.path).to_pyarrow_dataset().count_rows()

    def restore(self) -> None:
        if not self.written:
            return
        table = DeltaTable(self.path)
        if table.version() != self.version_before:
            log.warning("restoring metric table %s to version %s", self.path, self.version_before)
            table.restore(self.version_before)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = []
    for f in schema:
        if f.name in table.column_names:
            column = table.column(f.name)
            columns.append(column if column.type == f.type else pc.cast(column, f.type))
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def rows_to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)
