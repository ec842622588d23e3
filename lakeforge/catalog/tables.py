"""Tables: managed Delta tables the catalog creates and owns, external Delta tables it registers,
staging tables, and the temporary credentials engines ask for before they read or write.

A table's type-specific data lives in its row's `spec`:
{"table_type": "MANAGED"|"EXTERNAL", "data_source_format": "DELTA", "columns": [ColumnInfo], "managed": bool}.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lakeforge import clock, names
from lakeforge.audit.context import note_securable
from lakeforge.catalog import securables as sec
from lakeforge.catalog.access import METASTORE, Securable
from lakeforge.catalog.privileges import Kind, P
from lakeforge.catalog.service import CatalogService
from lakeforge.catalog.storage import ManagedStorage, empty_credential, to_path, to_uri
from lakeforge.catalog.store import SecurableRow
from lakeforge.errors import AlreadyExists, InvalidParameter
from lakeforge.identity.principal import Principal
from lakeforge.lake import delta
from lakeforge.lake.types import column_info, schema_from_columns, type_text
from lakeforge.store import new_id

log = logging.getLogger(__name__)

TABLE_TYPES = ("MANAGED", "EXTERNAL")
TABLE_OPERATIONS = {"READ": (P.SELECT,), "READ_WRITE": (P.SELECT, P.MODIFY)}
PATH_OPERATIONS = ("PATH_READ", "PATH_READ_WRITE", "PATH_CREATE_TABLE")
# Written into an allocated staging location; names the table that may be created there.
STAGING_MARKER = "_lakeforge_staging.json"


# ---- helpers shared with volumes ---------------------------------------------------------------
def choice(value: str | None, allowed, field: str) -> str:
    """An enum field from the wire, case-insensitive; anything else names the accepted values."""
    text = str(value or "").strip().upper()
    if text not in allowed:
        accepted = ", ".join(allowed)
        raise InvalidParameter(f"{field} must be one of {accepted}" + (f"; got '{value}'" if value else ""))
    return text


def check_external_location(s: Session, storage: ManagedStorage, uri: str | None,
                            protected: tuple[Path, ...] = ()) -> tuple[str, Path]:
    """Validate storage for an external table or volume; returns (normalised file:// URI, path).

    External data must not overlap managed storage, the platform's own files, or any other object's
    location: otherwise registering it would hand out access that grants on the other object deny."""
    if not uri or not str(uri).strip():
        raise InvalidParameter("storage_location is required for EXTERNAL objects")
    path = to_path(str(uri).strip()).resolve()
    loc = to_uri(path)
    if "__unitystorage" in path.parts:
        raise InvalidParameter(f"Storage location '{loc}' lies inside managed storage")
    for guarded in (storage.root, *protected):
        guarded = guarded.resolve()
        if path == guarded or guarded in path.parents or path in guarded.parents:
            raise InvalidParameter(f"Storage location '{loc}' overlaps Lakeforge's own storage")
    ancestors = [to_uri(p) for p in (path, *path.parents)]
    prefix = loc.rstrip("/") + "/"
    clash = s.scalar(select(SecurableRow.full_name).where(or_(
        SecurableRow.storage_location.in_(ancestors), SecurableRow.storage_root.in_(ancestors),
        SecurableRow.storage_location.startswith(prefix, autoescape=True),
        SecurableRow.storage_root.startswith(prefix, autoescape=True))).limit(1))
    if clash:
        raise InvalidParameter(f"Storage location '{loc}' overlaps the storage of '{clash}'")
    return loc, path


# ---- columns -----------------------------------------------------------------------------------
def check_columns(columns: list[dict] | None) -> list[dict]:
    """Shape checks the type parser does not make: numbers where numbers go, text where text goes."""
    for i, col in enumerate(columns or []):
        label = col.get("name") or i
        for key in ("position", "partition_index", "type_precision", "type_scale"):
            value = col.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise InvalidParameter(f"Column '{label}': {key} must be a non-negative integer")
        for key in ("name", "type_text", "type_name", "comment"):
            if col.get(key) is not None and not isinstance(col[key], str):
                raise InvalidParameter(f"Column '{label}': {key} must be a string")
    return columns or []


def columns_of(schema: pa.Schema, requested: list[dict] | None = None,
               partition_by: list[str] | None = None) -> list[dict]:
    """ColumnInfo for each field, keeping the comments of `requested` and marking partition columns."""
    comments = {str(c.get("name", "")).lower(): c.get("comment") for c in requested or []}
    parts = [p.lower() for p in partition_by or []]
    out = []
    for i, f in enumerate(schema):
        info = column_info(f.name, f.type, i, f.nullable, comments.get(f.name.lower()))
        if f.name.lower() in parts:
            info["partition_index"] = parts.index(f.name.lower())
        out.append(info)
    return out


def partition_columns(columns: list[dict]) -> list[str]:
    marked = [c for c in columns if c.get("partition_index") is not None]
    return [c["name"] for c in sorted(marked, key=lambda c: c["partition_index"])]


def read_delta(path: Path, uri: str) -> tuple[pa.Schema, list[str], dict[str, str]]:
    """Schema, partition columns and configuration of the Delta table at `path`."""
    if not delta.is_delta(path):
        raise InvalidParameter(f"Storage location '{uri}' is not a Delta table (no _delta_log)")
    try:
        dt = DeltaTable(str(path))
        meta = dt.metadata()
        return pa.schema(dt.schema().to_arrow()), list(meta.partition_columns), dict(meta.configuration or {})
    except (DeltaError, OSError) as e:  # a corrupt or unreadable log is the caller's input problem
        reason = (str(e).splitlines() or [type(e).__name__])[0]  # the kernel appends a backtrace
        raise InvalidParameter(f"Could not read the Delta table at '{uri}': {reason}") from None


def match_columns(requested: list[dict] | None, actual: pa.Schema, uri: str) -> None:
    """Columns given for an existing Delta table must be exactly its columns, in order."""
    if not requested:
        return
    wanted = schema_from_columns(requested)
    if [f.name.lower() for f in wanted] != [f.name.lower() for f in actual]:
        raise InvalidParameter(f"Columns {wanted.names} do not match the columns {actual.names} of the Delta "
                               f"table at '{uri}'")
    for w, a in zip(wanted, actual):
        if type_text(w.type) != type_text(a.type):
            raise InvalidParameter(f"Column '{w.name}' is {type_text(w.type)} in the request but "
                                   f"{type_text(a.type)} in the Delta table at '{uri}'")


def table_spec(table_type: str, columns: list[dict]) -> dict:
    return {"table_type": table_type, "data_source_format": "DELTA", "columns": columns,
            "managed": table_type == "MANAGED"}


# ---- managed tables, reusable inside any transaction -------------------------------------------
def register_managed_table(s: Session, storage: ManagedStorage, schema_row: SecurableRow, name: str,
                           schema: pa.Schema, owner: Principal, *, comment: str | None = None,
                           properties: dict | None = None, partition_by: list[str] | None = None,
                           columns: list[dict] | None = None, table_id: str | None = None) -> SecurableRow:
    """Add a managed table's row and create its empty Delta table (change data feed on), inside the
    caller's transaction: a Delta failure raises and rolls the row back. If the caller's commit fails
    afterwards it must `storage.remove(row.storage_location)`; TableService.create_from_arrow does."""
    names.check_name(name, "name")
    unknown = [p for p in partition_by or [] if p.lower() not in {n.lower() for n in schema.names}]
    if unknown:
        raise InvalidParameter(f"Partition column(s) {unknown} are not columns of the table")
    catalog_row = s.get(SecurableRow, schema_row.parent_id)
    table_id = table_id or new_id()
    location = storage.location("tables", table_id, catalog_row, schema_row)
    cols = columns_of(schema, columns, partition_by)
    props = {**(properties or {}), **delta.MANAGED_TABLE_CONFIG}
    row = sec.create_row(s, Kind.TABLE, name, schema_row, owner, comment=comment, properties=props,
                         storage_location=location, spec=table_spec("MANAGED", cols), row_id=table_id)
    path = to_path(location)
    if delta.is_delta(path):  # a promoted staging table whose data the client already wrote
        return row
    existed = path.exists()
    try:
        delta.create_empty(path, schema, partition_by=partition_columns(cols) or None, name=row.full_name,
                           description=comment)
    except BaseException:
        if not existed:
            storage.remove(location)
        raise
    return row


def render_table(row, owner_name: str | None, *, columns: bool = True, properties: bool = True,
                 usernames: bool = True) -> dict[str, Any]:
    """TableInfo of a table row: a SecurableRow, or a Core row with the same columns (`securables.find`)."""
    spec = sec.load_json(row.spec)
    info = {"name": row.name, "catalog_name": row.catalog_name, "schema_name": row.schema_name,
            "full_name": row.full_name, "table_type": spec.get("table_type", "MANAGED"),
            "data_source_format": spec.get("data_source_format", "DELTA"), "table_id": row.id,
            "storage_location": row.storage_location, **sec.common_fields(row, owner_name)}
    if columns:
        info["columns"] = spec.get("columns") or []
    if not properties:
        info.pop("properties", None)
    if not usernames:
        for key in ("owner", "created_by", "updated_by"):
            info.pop(key, None)
    return info


class TableService:
    def __init__(self, catalog: CatalogService, home: Path | None = None):
        self.catalog = catalog
        self.db = catalog.db
        self.access = catalog.access
        self.storage = catalog.storage
        self.protected = (home,) if home else ()

    # ---- create --------------------------------------------------------------------------------
    def create_table(self, caller: Principal, catalog_name: str, schema_name: str, name: str, table_type: str | None,
                     data_source_format: str | None = None, columns: list[dict] | None = None,
                     storage_location: str | None = None, comment: str | None = None,
                     properties: dict | None = None) -> dict:
        full_name = str(names.parse(f"{catalog_name}.{schema_name}.{name}", 3, "table name"))
        note_securable(full_name)
        table_type = choice(table_type, TABLE_TYPES, "table_type")
        choice(data_source_format or "DELTA", ("DELTA",), "data_source_format")
        columns = check_columns(columns)
        created: list[str] = []  # locations this call created, removed again if the commit fails
        staged: list[Path] = []  # staging markers to remove once the table is committed
        try:
            with self.db.write() as s:
                schema_row = sec.get_parent_row(s, Kind.TABLE, catalog_name, schema_name)
                self.catalog.check(s, caller, P.CREATE_TABLE, schema_row)
                if table_type == "EXTERNAL":
                    row = self._register_external(s, caller, schema_row, name, columns, storage_location, comment,
                                                  properties)
                elif storage_location:
                    row = self._promote_staging(s, caller, schema_row, name, columns, storage_location, comment,
                                                properties)
                    staged.append(to_path(row.storage_location) / STAGING_MARKER)
                else:
                    schema = schema_from_columns(columns or [])
                    row = register_managed_table(s, self.storage, schema_row, name, schema, caller, comment=comment,
                                                 properties=properties, columns=columns,
                                                 partition_by=partition_columns(columns or []) or None)
                    created.append(row.storage_location)
                info = self.table_info(s, row)
        except BaseException:
            for location in created:
                self.storage.remove(location)
            raise
        for marker in staged:
            marker.unlink(missing_ok=True)
        return info

    def create_from_arrow(self, caller: Principal, full_name: str, schema: pa.Schema, *,
                          comment: str | None = None, properties: dict | None = None,
                          partition_by: list[str] | None = None) -> dict:
        """A managed table from an Arrow schema (for SQL CREATE TABLE and table writes); needs CREATE_TABLE."""
        fn = names.parse(full_name, 3, "table name")
        note_securable(full_name)
        location = None
        try:
            with self.db.write() as s:
                schema_row = sec.get_parent_row(s, Kind.TABLE, fn.catalog, fn.schema)
                self.catalog.check(s, caller, P.CREATE_TABLE, schema_row)
                row = register_managed_table(s, self.storage, schema_row, fn.name, schema, caller, comment=comment,
                                             properties=properties, partition_by=partition_by)
                location = row.storage_location
                info = self.table_info(s, row)
        except BaseException:
            self.storage.remove(location)
            raise
        return info

    def _register_external(self, s, caller, schema_row, name, columns, storage_location, comment, properties):
        # Reading arbitrary server paths is a metastore-level right until external locations exist.
        self.access.authorize(caller, P.MANAGE, METASTORE)
        loc, path = check_external_location(s, self.storage, storage_location, self.protected)
        actual, parts, config = read_delta(path, loc)
        match_columns(columns, actual, loc)
        props = {**config, **(properties or {})}
        return sec.create_row(s, Kind.TABLE, name, schema_row, caller, comment=comment, properties=props,
                              storage_location=loc, spec=table_spec("EXTERNAL", columns_of(actual, columns, parts)))

    def _promote_staging(self, s, caller, schema_row, name, columns, storage_location, comment, properties):
        """A MANAGED table with a storage_location takes over a staging location of the same name."""
        path = to_path(storage_location).resolve()
        catalog_row = s.get(SecurableRow, schema_row.parent_id)
        expected = to_path(self.storage.location("tables", path.name, catalog_row, schema_row))
        marker = path / STAGING_MARKER
        if path != expected or not marker.is_file():
            raise InvalidParameter("storage_location of a MANAGED table must be a staging location allocated by "
                                   "POST /staging-tables in the same schema")
        staged_for = json.loads(marker.read_text()).get("full_name")
        full_name = f"{schema_row.full_name}.{name}"
        if staged_for != full_name:
            raise InvalidParameter(f"The staging location was allocated for '{staged_for}', not '{full_name}'")
        if s.get(SecurableRow, path.name) is not None:
            raise AlreadyExists(f"The staging location '{storage_location}' is already in use")
        if delta.is_delta(path):
            schema, parts, _ = read_delta(path, to_uri(path))
            match_columns(columns, schema, to_uri(path))
        else:
            schema, parts = schema_from_columns(columns or []), partition_columns(columns or [])
        return register_managed_table(s, self.storage, schema_row, name, schema, caller, comment=comment,
                                      properties=properties, partition_by=parts or None, columns=columns,
                                      table_id=path.name)

    def create_staging_table(self, caller: Principal, catalog_name: str, schema_name: str, name: str) -> dict:
        """Allocate a managed location for a table a client will write before it is created."""
        full_name = str(names.parse(f"{catalog_name}.{schema_name}.{name}", 3, "table name"))
        note_securable(full_name)
        with self.db.read() as s:
            schema_row = sec.get_parent_row(s, Kind.TABLE, catalog_name, schema_name)
            self.catalog.check(s, caller, P.CREATE_TABLE, schema_row)
            if s.scalar(select(SecurableRow.id).where(SecurableRow.kind == Kind.TABLE.value,
                                                      SecurableRow.full_name == full_name)):
                raise AlreadyExists(f"Table '{full_name}' already exists.")
            staging_id = new_id()
            location = self.storage.location("tables", staging_id, s.get(SecurableRow, schema_row.parent_id),
                                             schema_row)
        path = to_path(location)
        path.mkdir(parents=True, exist_ok=False)
        (path / STAGING_MARKER).write_text(json.dumps({"full_name": full_name, "created_by": caller.name,
                                                       "created_at": clock.to_ms(clock.now())}))
        return {"id": staging_id, "name": name, "catalog_name": catalog_name, "schema_name": schema_name,
                "staging_location": location}

    # ---- read ----------------------------------------------------------------------------------
    def get_table(self, caller: Principal, full_name: str) -> dict:
        found = self.find_table(caller, full_name)
        return render_table(found.row, found.owner_name)

    def find_table(self, caller: Principal, full_name: str) -> sec.Found:
        """The table (one query), once the caller may see it (BROWSE)."""
        found = sec.find(self.db, Kind.TABLE, full_name)
        self.check_table_visible(caller, found.securable)
        return found

    def check_table_visible(self, caller: Principal, securable: Securable) -> None:
        self.access.authorize(caller, P.BROWSE, securable)

    def table_exists(self, caller: Principal, full_name: str) -> dict:
        names.parse(full_name, 3, "table name")
        note_securable(full_name)
        with self.db.read() as s:
            row = s.scalar(select(SecurableRow).where(SecurableRow.kind == Kind.TABLE.value,
                                                      SecurableRow.full_name == full_name))
            if row is not None:
                self.catalog.check(s, caller, P.BROWSE, row)
            return {"table_exists": row is not None}

    def list_tables(self, caller: Principal, catalog_name: str, schema_name: str, max_results: int | None = None,
                    page_token: str | None = None, omit_columns: bool = False, omit_properties: bool = False,
                    omit_username: bool = False) -> dict:
        with self.db.read() as s:
            schema_row = sec.get_parent_row(s, Kind.TABLE, catalog_name, schema_name)
            self.catalog.check(s, caller, P.USE_SCHEMA, schema_row)
            page = sec.list_rows(s, Kind.TABLE, schema_row.id, page_token, self.catalog.page_size(max_results),
                                 self.catalog.visible(s, caller))
            owners = self.catalog.owner_names(s, page.rows)
            tables = [self.table_info(s, r, owners, columns=not omit_columns, properties=not omit_properties,
                                      usernames=not omit_username) for r in page.rows]
            return {"tables": tables, "next_page_token": page.next_page_token}

    def table_info(self, s: Session, row: SecurableRow, owners: dict | None = None, *, columns: bool = True,
                   properties: bool = True, usernames: bool = True) -> dict[str, Any]:
        owners = owners if owners is not None else self.catalog.owner_names(s, [row])
        return render_table(row, owners.get(row.owner_id), columns=columns, properties=properties,
                            usernames=usernames)

    # ---- change --------------------------------------------------------------------------------
    def update_table(self, caller: Principal, full_name: str, owner: str | None = None,
                     comment: str | None = None) -> dict:
        with self.db.write() as s:
            row = sec.get_row(s, Kind.TABLE, full_name)
            self.catalog.check(s, caller, P.MANAGE, row)
            self.catalog.apply_update(s, caller, row, comment=comment, owner=owner)
            return self.table_info(s, row)

    def delete_table(self, caller: Principal, full_name: str) -> None:
        self.catalog.delete(caller, Kind.TABLE, full_name)

    # ---- credentials ---------------------------------------------------------------------------
    def table_credentials(self, caller: Principal, table_id: str | None, operation: str | None) -> dict:
        operation = choice(operation, tuple(TABLE_OPERATIONS), "operation")
        return self.catalog.temporary_credentials(caller, Kind.TABLE, table_id, TABLE_OPERATIONS[operation])

    def path_credentials(self, caller: Principal, url: str | None, operation: str | None) -> dict:
        """Credentials for a raw storage path (Spark asks before creating external tables): admins only,
        as there are no external locations to grant on yet."""
        operation = choice(operation, PATH_OPERATIONS, "operation")
        if not url:
            raise InvalidParameter("url is required")
        self.access.authorize(caller, P.MANAGE, METASTORE)
        return empty_credential(to_uri(to_path(url)))


__all__ = ["TableService", "check_external_location", "choice", "register_managed_table", "render_table"]
