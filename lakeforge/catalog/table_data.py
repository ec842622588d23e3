"""Table data: write Arrow data into a catalog table, read it back at any version, its history and
its change data feed.

- The first write to a missing table creates a MANAGED table (CREATE_TABLE on the schema) with the
  data's schema; if the data then fails to commit, the new table is removed again.
- Writes need MODIFY on the table, reads, history and changes need SELECT. Only Delta tables.
- Incoming columns meet the table's by the rules in `table_evolution`; after a schema change the
  catalog's columns follow in the same request.
- Every commit names the Lakeforge principal in its commit info (`lakeforge.principal`), so the
  Delta history shows who wrote, to any Delta reader.
- A Delta commit is atomic: a write that fails part-way (a bad value in a later batch, a truncated
  stream) commits nothing and the table stays at its previous version.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, SchemaMismatchError
from sqlalchemy.orm import Session

from lakeforge import names
from lakeforge.audit.context import note_securable
from lakeforge.catalog import securables as sec
from lakeforge.catalog.privileges import Kind, P
from lakeforge.catalog.storage import to_path
from lakeforge.catalog.store import SecurableRow
from lakeforge.catalog.table_evolution import MODES, SCHEMA_MODES, WritePlan, plan_write, storable_schema
from lakeforge.catalog.tables import TableService, columns_of
from lakeforge.errors import AlreadyExists, InvalidParameter, InvalidState, NotFound, RequestTooLarge
from lakeforge.identity.principal import Principal

log = logging.getLogger(__name__)

ARROW_STREAM = "application/vnd.apache.arrow.stream"
DEFAULT_MAX_UPLOAD = 2 * 1024**3
PRINCIPAL_KEY = "lakeforge.principal"
PRINCIPAL_ID_KEY = "lakeforge.principal_id"
WRITE_ID_KEY = "lakeforge.write_id"  # finds this write's version in the history, whoever committed after


@dataclass(frozen=True)
class DeltaTarget:
    """A catalog table the caller may act on, resolved to its Delta location."""

    id: str
    full_name: str
    path: Path


@dataclass(frozen=True)
class TableRead:
    version: int
    reader: pa.RecordBatchReader


class TableUpload:
    """An upload spooled to a temporary file, refused once it passes the size limit."""

    def __init__(self, directory: Path, limit: int):
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, suffix=".arrows")
        self.file = os.fdopen(fd, "wb")
        self.path = Path(name)
        self.limit = limit
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise RequestTooLarge(f"Table data uploads are limited to {self.limit} bytes")
        self.file.write(chunk)

    def close(self) -> None:
        self.file.close()

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


class TableDataService:
    def __init__(self, tables: TableService, settings):
        self.tables = tables
        self.catalog = tables.catalog
        self.db = tables.db
        self.spool_dir = Path(settings.home) / "tmp" / "table-uploads"
        # Settings may not declare the field yet; the default is the documented 2 GB.
        self.max_upload_bytes = int(getattr(settings, "max_table_upload_bytes", None) or DEFAULT_MAX_UPLOAD)

    # ---- write ---------------------------------------------------------------------------------
    def new_upload(self) -> TableUpload:
        return TableUpload(self.spool_dir, self.max_upload_bytes)

    def check_write(self, caller: Principal, full_name: str, mode: str, schema_mode: str | None) -> None:
        """Refuse early, before the body is read: bad parameters, no MODIFY on an existing table, or no
        CREATE_TABLE on the schema of a missing one."""
        _modes(mode, schema_mode)
        fn = names.parse(full_name, 3, "table name")
        with self.db.read() as s:
            try:
                self._resolve(s, caller, full_name, P.MODIFY)
            except NotFound:
                schema_row = sec.get_parent_row(s, Kind.TABLE, fn.catalog, fn.schema)
                self.catalog.check(s, caller, P.CREATE_TABLE, schema_row)
                note_securable(full_name)

    def write(self, caller: Principal, full_name: str, source: Path, mode: str = "append",
              schema_mode: str | None = None) -> dict:
        """Write the Arrow IPC stream in file `source` into `full_name`; creates a managed table if missing."""
        mode, schema_mode = _modes(mode, schema_mode)
        names.parse(full_name, 3, "table name")
        reader = _open_stream(source)
        if not reader.schema.names:
            raise InvalidParameter("The data has no columns")
        created = False
        try:
            target = self._target(caller, full_name, P.MODIFY)
        except NotFound:
            target = None
        if target is None:
            try:
                info = self.tables.create_from_arrow(caller, full_name, storable_schema(reader.schema))
                target, created = DeltaTarget(info["table_id"], full_name, to_path(info["storage_location"])), True
            except AlreadyExists:  # created by a concurrent first write: append to it like any writer
                target = self._target(caller, full_name, P.MODIFY)
        try:
            plan = self._plan(target, reader.schema, mode, schema_mode)
            version, rows = self._commit(caller, target, plan, reader, mode)
        except BaseException:
            if created:
                self._drop_new_table(target)
            raise
        try:
            self._sync_columns(caller, target)
        except Exception:  # the data is committed; the next write brings the columns up to date
            log.warning("could not update the catalog columns of %s", full_name, exc_info=True)
        return {"full_name": full_name, "version": version, "num_rows": rows, "created": created}

    @staticmethod
    def _plan(target: DeltaTarget, incoming: pa.Schema, mode: str, schema_mode: str | None) -> WritePlan:
        dt = _open_delta(target)
        plan = plan_write(pa.schema(dt.schema().to_arrow()), incoming, mode, schema_mode)
        if plan.delta_schema_mode == "overwrite":
            dropped = [c for c in dt.metadata().partition_columns if c not in plan.target.names]
            if dropped:
                raise InvalidParameter(f"The table is partitioned by {dropped}; the new schema must keep them")
        return plan

    def _commit(self, caller: Principal, target: DeltaTarget, plan: WritePlan, reader: pa.RecordBatchReader,
                mode: str) -> tuple[int, int]:
        rows, failure = 0, []

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal rows
            try:
                for batch in plan.batches(reader):
                    rows += batch.num_rows
                    yield batch
            except InvalidParameter as e:
                failure.append(e)
                raise
            except pa.ArrowException as e:  # a truncated or corrupt stream, found mid-way
                failure.append(InvalidParameter(f"The Arrow stream is malformed: {_first_line(e)}"))
                raise

        write_id = uuid.uuid4().hex
        props = CommitProperties(custom_metadata={PRINCIPAL_KEY: caller.name, PRINCIPAL_ID_KEY: caller.id,
                                                  WRITE_ID_KEY: write_id})
        try:
            write_deltalake(str(target.path), pa.RecordBatchReader.from_batches(plan.target, batches()), mode=mode,
                            schema_mode=plan.delta_schema_mode, commit_properties=props)
        except Exception as e:
            if failure:  # our own refusal, raised inside the Delta writer: nothing was committed
                raise failure[0] from None
            if isinstance(e, SchemaMismatchError):
                raise InvalidParameter(f"The data does not fit the table's schema: {_first_line(e)}") from None
            if isinstance(e, CommitFailedError):
                raise InvalidState(f"A concurrent change to '{target.full_name}' conflicted with this write; "
                                   f"nothing was committed, retry: {_first_line(e)}") from None
            raise
        return _version_of(target.path, write_id), rows

    def _drop_new_table(self, target: DeltaTarget) -> None:
        """Undo a table created by a write whose data then failed, unless someone else wrote to it since."""
        try:
            if DeltaTable(str(target.path)).version() > 0:
                return
            with self.db.write() as s:
                row = s.get(SecurableRow, target.id)
                if row is not None:
                    sec.delete_rows(s, [row])
            self.catalog.storage.remove(target.path.as_uri())
            self.catalog.access.invalidate()
        except Exception:
            log.warning("could not remove table %s after its first write failed", target.full_name, exc_info=True)

    def _sync_columns(self, caller: Principal, target: DeltaTarget) -> None:
        """The catalog's columns follow the Delta schema (comments and partition marks kept)."""
        dt = DeltaTable(str(target.path))
        schema = pa.schema(dt.schema().to_arrow())
        parts = list(dt.metadata().partition_columns)
        with self.db.write() as s:
            row = s.get(SecurableRow, target.id)
            if row is None:
                return
            spec = sec.load_json(row.spec)
            columns = columns_of(schema, spec.get("columns"), parts)
            if columns != spec.get("columns"):
                spec["columns"] = columns
                row.spec = json.dumps(spec)
                sec.touch(row, caller)

    # ---- read ----------------------------------------------------------------------------------
    def read(self, caller: Principal, full_name: str, version: int | None = None,
             columns: list[str] | None = None, limit: int | None = None) -> TableRead:
        """The table's rows at `version` (default: the latest), as a stream of record batches."""
        if limit is not None and limit < 0:
            raise InvalidParameter("limit must be 0 or more")
        target = self._target(caller, full_name, P.SELECT)
        dt = _delta_at(target, version)
        dataset = dt.to_pyarrow_dataset()
        picked = _pick_columns(dataset.schema, columns)
        reader = dataset.scanner(columns=picked).to_reader()
        if limit is not None:
            reader = pa.RecordBatchReader.from_batches(reader.schema, _head(reader, limit))
        return TableRead(dt.version(), reader)

    def history(self, caller: Principal, full_name: str, limit: int | None = None) -> dict:
        if limit is not None and limit < 1:
            raise InvalidParameter("limit must be 1 or more")
        target = self._target(caller, full_name, P.SELECT)
        return {"history": [_history_entry(h) for h in _open_delta(target).history(limit)]}

    def changes(self, caller: Principal, full_name: str, starting_version: int = 0,
                ending_version: int | None = None) -> TableRead:
        """The change data feed between two versions (inclusive): rows with _change_type,
        _commit_version and _commit_timestamp."""
        if starting_version < 0 or (ending_version is not None and ending_version < starting_version):
            raise InvalidParameter("Need 0 <= starting_version <= ending_version")
        target = self._target(caller, full_name, P.SELECT)
        dt = _open_delta(target)
        if dt.metadata().configuration.get("delta.enableChangeDataFeed") != "true":
            raise InvalidState(f"Table '{full_name}' does not record a change data feed")
        latest = dt.version()
        if starting_version > latest or (ending_version is not None and ending_version > latest):
            raise InvalidParameter(f"Table '{full_name}' has versions 0 to {latest}")
        try:
            reader = pa.RecordBatchReader.from_stream(dt.load_cdf(starting_version, ending_version))
            return TableRead(latest, _peeked(reader))
        except DeltaError as e:
            raise InvalidParameter(f"Cannot read the changes of '{full_name}': {_first_line(e)}") from None

    # ---- resolving tables ----------------------------------------------------------------------
    def _target(self, caller: Principal, full_name: str, privilege: P) -> DeltaTarget:
        with self.db.read() as s:
            return self._resolve(s, caller, full_name, privilege)

    def _resolve(self, s: Session, caller: Principal, full_name: str, privilege: P) -> DeltaTarget:
        row = sec.get_row(s, Kind.TABLE, full_name)
        self.catalog.check(s, caller, privilege, row)
        spec = sec.load_json(row.spec)
        if spec.get("table_type", "MANAGED") not in ("MANAGED", "EXTERNAL") \
                or spec.get("data_source_format", "DELTA") != "DELTA" or not row.storage_location:
            raise InvalidParameter(f"Table '{full_name}' is not a Delta table Lakeforge can read or write")
        return DeltaTarget(row.id, row.full_name, to_path(row.storage_location))


# ---- helpers -------------------------------------------------------------------------------------
def _modes(mode: str | None, schema_mode: str | None) -> tuple[str, str | None]:
    mode = str(mode or "append").strip().lower()
    if mode not in MODES:
        raise InvalidParameter(f"mode must be one of {', '.join(MODES)}; got '{mode}'")
    schema_mode = str(schema_mode).strip().lower() if schema_mode else None
    if schema_mode is not None and schema_mode not in SCHEMA_MODES:
        raise InvalidParameter(f"schema_mode must be one of {', '.join(SCHEMA_MODES)}; got '{schema_mode}'")
    if schema_mode == "overwrite" and mode != "overwrite":
        raise InvalidParameter("schema_mode=overwrite replaces the table's schema and needs mode=overwrite")
    return mode, schema_mode


def _open_stream(source: Path) -> pa.RecordBatchReader:
    try:
        return pa.ipc.open_stream(pa.memory_map(str(source)))
    except (pa.ArrowException, OSError) as e:
        raise InvalidParameter(f"The body must be an Arrow IPC stream ({ARROW_STREAM}): {_first_line(e)}") from None


def _open_delta(target: DeltaTarget) -> DeltaTable:
    try:
        return DeltaTable(str(target.path))
    except DeltaError as e:  # the catalog entry outlived its data (deleted or corrupt outside Lakeforge)
        raise InvalidState(f"The Delta table of '{target.full_name}' cannot be read: {_first_line(e)}") from None


def _delta_at(target: DeltaTarget, version: int | None) -> DeltaTable:
    if version is None:
        return _open_delta(target)
    if version < 0:
        raise InvalidParameter("version must be 0 or more")
    try:
        return DeltaTable(str(target.path), version=version)
    except DeltaError:
        latest = _open_delta(target).version()
        raise InvalidParameter(f"Table '{target.full_name}' has no version {version}; its versions are 0 to "
                               f"{latest}") from None


def _pick_columns(schema: pa.Schema, columns: list[str] | None) -> list[str] | None:
    if not columns:
        return None
    by_name = {n.lower(): n for n in schema.names}
    unknown = [c for c in columns if c.lower() not in by_name]
    if unknown:
        raise InvalidParameter(f"Column(s) {unknown} are not in the table; its columns are {schema.names}")
    return [by_name[c.lower()] for c in columns]


def _head(reader: pa.RecordBatchReader, limit: int) -> Iterator[pa.RecordBatch]:
    left = limit
    for batch in reader:
        if left <= 0:
            break
        batch = batch.slice(0, left) if batch.num_rows > left else batch
        left -= batch.num_rows
        yield batch


def _peeked(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """Read the first batch now, so errors surface before a response starts."""
    it = iter(reader)
    first = next(it, None)

    def chained():
        if first is not None:
            yield first
            yield from it

    return pa.RecordBatchReader.from_batches(reader.schema, chained())


def _version_of(path: Path, write_id: str) -> int:
    dt = DeltaTable(str(path))
    for entry in dt.history(20):
        if entry.get(WRITE_ID_KEY) == write_id:
            return int(entry["version"])
    return dt.version()


def _history_entry(h: dict) -> dict:
    metrics = h.get("operationMetrics") or {}
    rows = metrics.get("num_added_rows", metrics.get("num_output_rows"))
    return {"version": h.get("version"), "timestamp": h.get("timestamp"), "operation": h.get("operation"),
            "operation_parameters": h.get("operationParameters") or {}, "user": h.get(PRINCIPAL_KEY),
            "user_id": h.get(PRINCIPAL_ID_KEY), "num_rows": rows, "operation_metrics": metrics,
            "engine": h.get("engineInfo")}


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


__all__ = ["ARROW_STREAM", "TableDataService", "TableRead", "TableUpload"]
