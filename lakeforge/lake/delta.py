"""Delta table operations the platform needs: create empty managed tables, read schemas."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable

# Managed tables record every change so monitors and sync jobs can read increments.
MANAGED_TABLE_CONFIG = {"delta.enableChangeDataFeed": "true"}


def create_empty(path: Path, schema: pa.Schema, *, partition_by: list[str] | None = None,
                 name: str | None = None, description: str | None = None) -> DeltaTable:
    path.mkdir(parents=True, exist_ok=True)
    return DeltaTable.create(str(path), schema, mode="error", partition_by=partition_by, name=name,
                             description=description, configuration=MANAGED_TABLE_CONFIG)


def is_delta(path: Path) -> bool:
    return (path / "_delta_log").is_dir()


def arrow_schema(path: Path) -> pa.Schema:
    return pa.schema(DeltaTable(str(path)).schema().to_arrow())
