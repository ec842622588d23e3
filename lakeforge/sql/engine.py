"""DuckDB execution: one connection per statement, each catalog table exposed as a view over its
Delta table's Arrow dataset (DuckDB pushes projections and filters into the scan), then the
connection is locked down so the statement itself cannot touch files, extensions or settings."""

from __future__ import annotations

import logging
import threading

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from lakeforge.catalog.storage import to_path

log = logging.getLogger(__name__)

# Applied after the views exist, in this order: the last one freezes the others.
LOCKDOWN = ("SET python_enable_replacements = false", "SET autoinstall_known_extensions = false",
            "SET autoload_known_extensions = false", "SET allow_community_extensions = false",
            "SET enable_external_access = false", "SET lock_configuration = true")
QueryError = duckdb.Error


class StatementEngine:
    """A DuckDB connection prepared for one statement; interrupt() cancels it from another thread."""

    def __init__(self, tables: dict[str, str], threads: int | None = None):
        """tables: generated view name -> storage location of the Delta table."""
        self.con = duckdb.connect(":memory:")
        self._lock = threading.Lock()
        self._closed = False
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        for view, location in tables.items():
            self.con.register(view, DeltaTable(str(to_path(location))).to_pyarrow_dataset())
        for setting in LOCKDOWN:
            self.con.execute(setting)

    def schema(self, sql: str) -> pa.Schema:
        """The result schema without running the query (DuckDB folds LIMIT 0 away)."""
        return self.con.sql(f"SELECT * FROM ({sql}) LIMIT 0").to_arrow_table().schema

    def run(self, sql: str) -> pa.Table:
        return self.con.sql(sql).to_arrow_table()

    def interrupt(self) -> None:
        with self._lock:
            if not self._closed:
                self.con.interrupt()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.con.close()
