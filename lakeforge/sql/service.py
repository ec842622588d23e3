"""SQL statements: plan, authorize every table, run in a worker, keep the result for polling.

Access: SELECT on every table read, MODIFY on an INSERT target, CREATE_TABLE on a CTAS target's
schema; all checked through the one access function before anything runs. Results are held in
memory for their submitter (and admins) only."""

from __future__ import annotations

import logging
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError

from lakeforge.audit.context import note_securable
from lakeforge.catalog import securables as sec
from lakeforge.catalog.privileges import Kind, P
from lakeforge.catalog.storage import to_path
from lakeforge.catalog.tables import TableService
from lakeforge.errors import (
    InvalidParameter,
    InvalidState,
    LakeforgeError,
    ResourceAlreadyExists,
)
from lakeforge.identity.principal import Principal
from lakeforge.sql import results, writes
from lakeforge.sql.engine import (
    QueryDatabase,
    QueryError,
    StatementEngine,
    UnreadableTable,
)
from lakeforge.sql.statements import TERMINAL, Statement, StatementStore

if TYPE_CHECKING:
    from lakeforge.sql.planner import Plan

log = logging.getLogger(__name__)

DEFAULT_CATALOG, DEFAULT_SCHEMA = "main", "default"
DEFAULT_WAIT = 10.0
MAX_RESULT_BYTES = 256 * 1024 * 1024  # a result beyond this is truncated, like byte_limit
_WAIT = re.compile(r"^(\d+)s$")
WRITE_RESULT = pa.schema([("num_affected_rows", pa.int64()), ("num_inserted_rows", pa.int64())])


@dataclass
class Submitted:
    statement: Statement
    wait: float  # seconds to wait for the result before answering PENDING/RUNNING
    mode: str  # on_wait_timeout: CONTINUE or CANCEL


@dataclass
class Options:
    row_limit: int | None = None
    byte_limit: int | None = None


def wait_seconds(value: str | None) -> float:
    if value is None or value == "":
        return DEFAULT_WAIT
    m = _WAIT.match(str(value).strip())
    seconds = int(m.group(1)) if m else -1
    if seconds != 0 and not 5 <= seconds <= 50:
        raise InvalidParameter(f"wait_timeout must be '0s' or between '5s' and '50s'; got '{value}'")
    return float(seconds)


def check_options(disposition: str | None, format: str | None, on_wait_timeout: str | None) -> str:
    if (disposition or "INLINE").upper() != "INLINE":
        raise InvalidParameter(f"disposition {disposition} is not supported; use INLINE")
    if (format or "JSON_ARRAY").upper() != "JSON_ARRAY":
        raise InvalidParameter(f"format {format} is not supported; use JSON_ARRAY")
    mode = (on_wait_timeout or "CONTINUE").upper()
    if mode not in ("CONTINUE", "CANCEL"):
        raise InvalidParameter(f"on_wait_timeout must be CONTINUE or CANCEL; got '{on_wait_timeout}'")
    return mode


def parameter_values(parameters: list[dict] | None) -> dict[str, tuple[str | None, str]]:
    out: dict[str, tuple[str | None, str]] = {}
    for i, p in enumerate(parameters or []):
        name = p.get("name")
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise InvalidParameter(f"parameters[{i}].name must be an identifier")
        if name in out:
            raise InvalidParameter(f"Parameter '{name}' is given twice")
        value = p.get("value")
        out[name] = (None if value is None else str(value), str(p.get("type") or "STRING"))
    return out


class SqlService:
    def __init__(self, tables: TableService, lineage, workers: int = 4, ttl_seconds: float = 3600.0,
                 max_bytes: int = 1 << 30):
        self.tables = tables
        self.catalog = tables.catalog
        self.db = tables.db
        self.lineage = lineage
        self.store = StatementStore(ttl_seconds, max_bytes)
        self.workers = workers
        self.pool: ThreadPoolExecutor | None = None
        self.database: QueryDatabase | None = None

    def registered(self, extensions: list) -> SqlService:
        """Hand the worker pool's start/stop to the application context; returns self."""
        extensions.append(self)
        return self

    def start(self) -> None:
        self.database = QueryDatabase()
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="lakeforge-sql")

    def stop(self) -> None:
        for st in self.store.all():
            if st.state not in TERMINAL and st.engine is not None:
                st.engine.interrupt()
        if self.pool:
            self.pool.shutdown(wait=False, cancel_futures=True)
        if self.database:
            self.database.close()

    # ---- execute -------------------------------------------------------------------------------
    def execute(self, caller: Principal, statement: str, **options) -> dict:
        """Submit a statement and wait for it up to its wait_timeout in this thread."""
        sub = self.submit(caller, statement, **options)
        if not sub.statement.done.wait(sub.wait):
            self.timed_out(caller, sub)
        return self.response(sub.statement)

    def timed_out(self, caller: Principal, sub: Submitted) -> None:
        """wait_timeout passed: with on_wait_timeout=CANCEL the statement is canceled."""
        if sub.mode == "CANCEL":
            self.cancel(caller, sub.statement.statement_id)
            sub.statement.done.wait(5.0)  # a write stops at its next step

    def submit(self, caller: Principal, statement: str, *, catalog: str | None = None, schema: str | None = None,
               parameters: list[dict] | None = None, row_limit: int | None = None, byte_limit: int | None = None,
               disposition: str | None = None, format: str | None = None, wait_timeout: str | None = None,
               on_wait_timeout: str | None = None) -> Submitted:
        """Plan, authorize and start a statement; the caller decides how to wait for it."""
        from lakeforge.sql import planner  # sqlglot takes ~0.3 s to import: not on the start-up path

        mode = check_options(disposition, format, on_wait_timeout)
        wait = wait_seconds(wait_timeout)
        for name, value in (("row_limit", row_limit), ("byte_limit", byte_limit)):
            if value is not None and value < 0:
                raise InvalidParameter(f"{name} must be non-negative")
        plan = planner.plan(statement, catalog or DEFAULT_CATALOG, schema or DEFAULT_SCHEMA,
                            parameter_values(parameters))
        if plan.target or plan.sources:
            note_securable(plan.target or plan.sources[0])
        locations, target_exists = self._authorize(caller, plan)
        st = Statement(statement_id=str(uuid.uuid4()), owner_id=caller.id, kind=plan.kind)
        if plan.kind == "CTAS" and target_exists:  # IF NOT EXISTS over an existing table: nothing to do
            self._succeed(st, self._write_result(0))
            return Submitted(self.store.add(st), wait, mode)
        views = {full: f"__lakeforge_t{i}" for i, full in enumerate(plan.sources)}
        sql = planner.rewrite(plan.query, views, plan.source_nodes)
        opts = Options(row_limit if plan.kind == "QUERY" else None, byte_limit)
        try:
            engine = StatementEngine(self.database, {views[f]: locations[f] for f in plan.sources})
        except UnreadableTable as e:
            name = next(f for f in plan.sources if locations[f] == e.location)
            raise InvalidState(f"The data of table '{name}' cannot be read: {e.reason}") from None
        mapping = None
        if plan.kind != "QUERY":  # bind the query first, so a write that cannot fit is a 400 before it runs
            try:
                if plan.kind == "INSERT":
                    mapping = self._insert_mapping(engine, sql, plan, locations[plan.target])
                else:
                    writes.delta_schema(engine.schema(sql))
            except QueryError as e:
                engine.close()
                st.finish("FAILED", {"error_code": "BAD_REQUEST", "message": _first_line(e, 2000)})
                return Submitted(self.store.add(st), wait, mode)
            except BaseException:
                engine.close()
                raise
        st.engine = engine
        self.store.add(st)
        st.future = self.pool.submit(self._run, caller, st, engine, plan, sql, mapping, locations, opts)
        return Submitted(st, wait, mode)

    def _authorize(self, caller: Principal, plan: Plan) -> tuple[dict[str, str], bool]:
        """Storage locations of every table the plan touches; raises 404/403 before anything runs."""
        locations: dict[str, str] = {}
        exists = False
        with self.db.read() as s:
            if plan.kind == "INSERT":
                row = sec.get_row(s, Kind.TABLE, plan.target)
                self.catalog.check(s, caller, P.MODIFY, row)
                locations[plan.target] = row.storage_location
            elif plan.kind == "CTAS":
                cat, sch, _name = plan.target.split(".")
                schema_row = sec.get_parent_row(s, Kind.TABLE, cat, sch)
                self.catalog.check(s, caller, P.CREATE_TABLE, schema_row)
                try:
                    sec.get_row(s, Kind.TABLE, plan.target)
                    exists = True
                except LakeforgeError:
                    exists = False
                if exists and not plan.if_not_exists:
                    raise ResourceAlreadyExists(f"Table '{plan.target}' already exists; use CREATE TABLE IF NOT "
                                                "EXISTS or INSERT INTO")
            for full_name in plan.sources:
                row = sec.get_row(s, Kind.TABLE, full_name)
                self.catalog.check(s, caller, P.SELECT, row)
                locations[full_name] = row.storage_location
        return locations, exists

    def _insert_mapping(self, engine: StatementEngine, sql: str, plan: Plan, location: str):
        try:
            target = pa.schema(DeltaTable(str(to_path(location))).schema().to_arrow())
        except (DeltaError, OSError) as e:
            raise InvalidState(f"The data of table '{plan.target}' cannot be read: {_first_line(e)}") from None
        return writes.align_for_insert(engine.schema(sql), target, plan.insert_columns, plan.target)

    # ---- the worker ----------------------------------------------------------------------------
    def _run(self, caller: Principal, st: Statement, engine: StatementEngine, plan: Plan, sql: str, mapping,
             locations, opts: Options):
        if not st.start():  # canceled before it began
            engine.close()
            return
        try:
            limit = opts.row_limit
            data = engine.run(sql if limit is None else f"SELECT * FROM ({sql}) LIMIT {int(limit) + 1}")
            engine.close()
            if st.cancel_requested:
                st.finish("CANCELED")
                return
            if plan.kind == "CTAS":
                data = self._create_table(caller, plan.target, data)
            elif plan.kind == "INSERT":
                data = self._insert(plan.target, locations[plan.target], data, mapping)
            if plan.kind != "QUERY":
                self._record_lineage(caller, plan, st.statement_id)
            self._succeed(st, data, limit, opts.byte_limit)
        except QueryError as e:
            if st.cancel_requested:
                st.finish("CANCELED")
            else:
                st.finish("FAILED", {"error_code": "BAD_REQUEST", "message": _first_line(e, 2000)})
        except LakeforgeError as e:
            st.finish("FAILED", {"error_code": _service_code(e), "message": e.message})
        except (DeltaError, OSError) as e:
            st.finish("FAILED", {"error_code": "IO_ERROR", "message": _first_line(e)})
        except Exception as e:  # reported on the statement, never lost in the pool
            log.exception("statement %s failed", st.statement_id)
            st.finish("FAILED", {"error_code": "INTERNAL_ERROR", "message": f"{type(e).__name__}: {_first_line(e)}"})
        finally:
            engine.close()
            self.store.settled(st)

    def _succeed(self, st: Statement, data: pa.Table, row_limit: int | None = None,
                 byte_limit: int | None = None) -> None:
        truncated = False
        if row_limit is not None and data.num_rows > row_limit:
            data, truncated = data.slice(0, row_limit), True
        budget = min(byte_limit, MAX_RESULT_BYTES) if byte_limit else MAX_RESULT_BYTES
        if data.num_rows and data.nbytes > budget:
            keep = max(0, int(budget / (data.nbytes / data.num_rows)))
            data, truncated = data.slice(0, keep), True
        st.result, st.truncated = data, truncated
        st.chunks = results.plan_chunks(data)
        st.manifest = {"format": "JSON_ARRAY", "schema": results.manifest_schema(data.schema),
                       "total_chunk_count": len(st.chunks),
                       "chunks": [{"chunk_index": c.chunk_index, "row_offset": c.row_offset,
                                   "row_count": c.row_count} for c in st.chunks],
                       "total_row_count": data.num_rows, "truncated": truncated}
        st.finish("SUCCEEDED")

    def _write_result(self, rows: int) -> pa.Table:
        return pa.Table.from_pylist([{"num_affected_rows": rows, "num_inserted_rows": rows}], WRITE_RESULT)

    def _create_table(self, caller: Principal, target: str, data: pa.Table) -> pa.Table:
        data = writes.for_delta(data)
        info = self.tables.create_from_arrow(caller, target, data.schema)
        if data.num_rows:
            try:
                write_deltalake(str(to_path(info["storage_location"])), data, mode="append")
            except BaseException:
                # A failed CTAS leaves no table behind.
                self.tables.delete_table(caller, target)
                raise
        return self._write_result(data.num_rows)

    def _insert(self, target: str, location: str, data: pa.Table, mapping) -> pa.Table:
        rows = writes.conform(data, mapping)
        if rows.num_rows:
            # One Delta commit: on failure the table stays at its previous version.
            write_deltalake(str(to_path(location)), rows, mode="append")
        return self._write_result(rows.num_rows)

    def _record_lineage(self, caller: Principal, plan: Plan, statement_id: str) -> None:
        edges = [("TABLE", src, "TABLE", plan.target) for src in plan.sources if src != plan.target]
        if not edges:
            return
        try:
            self.lineage.record(caller, edges, "QUERY", statement_id)
        except Exception:  # the data is written; a lost lineage edge must not fail the statement
            log.exception("could not record lineage for statement %s", statement_id)

    # ---- read, cancel --------------------------------------------------------------------------
    def get(self, caller: Principal, statement_id: str) -> dict:
        return self.response(self.store.get(caller, statement_id))

    def chunk(self, caller: Principal, statement_id: str, chunk_index: int) -> dict:
        st = self.store.get(caller, statement_id)
        if st.state != "SUCCEEDED":
            raise InvalidState(f"Statement '{statement_id}' is {st.state}; results exist only once it SUCCEEDED")
        if not 0 <= chunk_index < len(st.chunks):
            raise InvalidParameter(f"chunk_index {chunk_index} is out of range: the result has {len(st.chunks)} "
                                   "chunk(s)")
        return self._chunk(st, chunk_index)

    def cancel(self, caller: Principal, statement_id: str) -> dict:
        st = self.store.get(caller, statement_id)
        if st.state in TERMINAL:
            return {}
        st.cancel_requested = True
        engine = st.engine
        if st.future is not None and st.future.cancel():
            st.finish("CANCELED")
            if engine is not None:
                engine.close()
        else:
            if engine is not None:
                engine.interrupt()
            if st.kind == "QUERY":  # nothing to undo: canceled now, whatever the worker still does
                st.finish("CANCELED")
        return {}

    def response(self, st: Statement) -> dict:
        status = {"state": st.state}
        if st.error:
            status["error"] = st.error
        out = {"statement_id": st.statement_id, "status": status}
        if st.state == "SUCCEEDED":
            out["manifest"] = st.manifest
            out["result"] = self._chunk(st, 0)
        return out

    def _chunk(self, st: Statement, index: int) -> dict:
        c = st.chunks[index]
        data = results.data_array(st.result.slice(c.row_offset, c.row_count))
        out = {"chunk_index": c.chunk_index, "row_offset": c.row_offset, "row_count": c.row_count,
               "data_array": data}
        if index + 1 < len(st.chunks):
            out["next_chunk_index"] = index + 1
            out["next_chunk_internal_link"] = f"/api/2.0/sql/statements/{st.statement_id}/result/chunks/{index + 1}"
        return out


def _first_line(e: BaseException, limit: int = 500) -> str:
    text = str(e).strip() or type(e).__name__
    return text[:limit]


def _service_code(e: LakeforgeError) -> str:
    """ServiceErrorCode values the SDK knows; others read as None there."""
    return {"RESOURCE_ALREADY_EXISTS": "ALREADY_EXISTS", "ALREADY_EXISTS": "ALREADY_EXISTS",
            "NOT_FOUND": "NOT_FOUND", "RESOURCE_DOES_NOT_EXIST": "NOT_FOUND"}.get(e.error_code, "BAD_REQUEST")
