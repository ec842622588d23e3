"""DuckDB execution. One in-memory DuckDB database per server, locked down once so no statement
can touch files, extensions or settings; each statement gets its own connection to it (a cursor:
its own temporary views, its own interrupt), with every catalog table it may read exposed as a
temporary view over the Delta table's Arrow dataset (DuckDB pushes projections and filters into the
scan). Sharing the database saves the cost of starting one (~15-40 ms) per statement; temporary
views are private to their connection, and the planner only lets queries through, which cannot
create anything in the shared database."""

from __future__ import annotations

import logging
import threading

import duckdb
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from lakeforge.catalog.storage import to_path

log = logging.getLogger(__name__)

# GLOBAL, so every statement's connection (cursor) starts with them; applied in this order, the
# last one freezes the others. Session time is UTC, as in Databricks.
LOCKDOWN = ("SET GLOBAL TimeZone = 'UTC'", "SET GLOBAL python_enable_replacements = false",
            "SET GLOBAL autoinstall_known_extensions = false", "SET GLOBAL autoload_known_extensions = false",
            "SET GLOBAL allow_community_extensions = false", "SET GLOBAL enable_external_access = false",
            "SET GLOBAL lock_configuration = true")
QueryError = duckdb.Error


class UnreadableTable(Exception):
    """A catalog table whose Delta data cannot be opened (gone, or a corrupt log)."""

    def __init__(self, location: str, reason: str):
        super().__init__(reason)
        self.location = location
        self.reason = reason


def open_dataset(location: str):
    """The Arrow dataset of the Delta table at `location`."""
    try:
        return DeltaTable(str(to_path(location))).to_pyarrow_dataset()
    except (DeltaError, OSError) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0]  # the kernel appends a backtrace
        raise UnreadableTable(location, reason) from None


class QueryDatabase:
    """The shared, locked-down DuckDB database."""

    def __init__(self, threads: int | None = None):
        self._con = duckdb.connect(":memory:")
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")
        for setting in LOCKDOWN:
            self._con.execute(setting)

    def connect(self) -> duckdb.DuckDBPyConnection:
        return self._con.cursor()

    def close(self) -> None:
        self._con.close()


class StatementEngine:
    """One statement's connection; interrupt() cancels it from another thread."""

    def __init__(self, database: QueryDatabase, tables: dict[str, str]):
        """tables: generated view name -> storage location of the Delta table."""
        self.con = database.connect()
        self._lock = threading.Lock()
        self._closed = False
        try:
            for view, location in tables.items():
                self.con.register(view, open_dataset(location))
        except BaseException:
            self.close()
            raise

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
