"""The two metric tables: read their rows, replace their contents in one Delta commit each, and put them
back to the version they had when a refresh started if it fails after writing."""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from lakeforge.monitoring.engine.scan import SourceTable

log = logging.getLogger(__name__)


class MetricTable:
    def __init__(self, path: str, schema: pa.Schema):
        self.path = path
        self.schema = schema
        self.table = DeltaTable(path)  # at version_before until replace()
        self.version_before = self.table.version()
        self.written = False

    def rows(self) -> pa.Table:
        """Current rows, conformed to `schema` (columns it lacks are null; others dropped)."""
        return conform(SourceTable(self.path, table=self.table).read_all(), self.schema)

    def replace(self, rows: pa.Table) -> None:
        self.written = True
        # The overwrite replaces every file of the latest version (were the DeltaTable left at version_before,
        # files committed since by someone else would stay), so the table is brought up to date first.
        self.table.update_incremental()
        write_deltalake(self.table, conform(rows, self.schema), mode="overwrite", schema_mode="overwrite")

    def holds(self, version: int | None) -> bool:
        """Whether the table still has what this engine wrote at `version`: nothing committed since, or
        only the restore of a failed refresh back to it."""
        if version is None or self.version_before == version:
            return version is not None
        last = self.table.history(1)
        return bool(last) and self.version_before == last[0].get("version") and last[0].get("operation") == "RESTORE" \
            and str(last[0].get("operationParameters", {}).get("version")) == str(version)

    def version_after(self) -> int:
        return self.table.version()  # the version replace() committed (the DeltaTable moves to it)

    def count(self) -> int:
        return SourceTable(self.path, table=self.table).count()

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
