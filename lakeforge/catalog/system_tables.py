"""Platform tables under `system.*` (audit, lineage, ...): registered in the catalog as managed
Delta tables so users query them like any other table."""

from __future__ import annotations

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session

from lakeforge.catalog import securables as sec
from lakeforge.catalog.privileges import Kind
from lakeforge.catalog.storage import to_path
from lakeforge.catalog.store import SecurableRow
from lakeforge.identity.principal import Principal
from lakeforge.lake import delta
from lakeforge.lake.types import columns_from_schema
from lakeforge.store import new_id


def table_spec(schema: pa.Schema, table_type: str = "MANAGED") -> dict:
    return {"table_type": table_type, "data_source_format": "DELTA", "columns": columns_from_schema(schema),
            "managed": table_type == "MANAGED"}


def ensure_system_table(s: Session, catalog, full_name: str, schema: pa.Schema, owner_row, comment: str) -> str:
    """Register (once) and create (once) a managed Delta table; returns its storage location."""
    row = s.scalar(select(SecurableRow).where(SecurableRow.kind == Kind.TABLE.value,
                                              SecurableRow.full_name == full_name))
    if row is None:
        catalog_name, schema_name, name = full_name.split(".")
        schema_row = sec.get_parent_row(s, Kind.TABLE, catalog_name, schema_name)
        catalog_row = s.get(SecurableRow, schema_row.parent_id)
        owner = Principal(id=owner_row.id, kind=owner_row.kind, name=owner_row.name)
        table_id = new_id()
        location = catalog.storage.location("tables", table_id, catalog_row, schema_row)
        row = sec.create_row(s, Kind.TABLE, name, schema_row, owner, comment=comment, storage_location=location,
                             spec=table_spec(schema), row_id=table_id)
    path = to_path(row.storage_location)
    if not delta.is_delta(path):
        delta.create_empty(path, schema, name=full_name, description=comment)
    return row.storage_location
