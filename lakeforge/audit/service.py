"""Reading the audit log: filters over `system.access.audit`, for the API and the CLI."""

from __future__ import annotations

from typing import Any

import duckdb
from deltalake import DeltaTable
from sqlalchemy import select

from lakeforge import clock
from lakeforge.audit.log import TABLE, AuditLog
from lakeforge.catalog.privileges import Kind, P
from lakeforge.catalog.service import CatalogService
from lakeforge.catalog.storage import to_path
from lakeforge.catalog.store import SecurableRow
from lakeforge.errors import InvalidParameter
from lakeforge.identity.principal import Principal

FILTERS = ("principal", "service", "action", "securable", "request_id", "status_code")


class AuditQueries:
    def __init__(self, catalog: CatalogService, log: AuditLog):
        self.catalog = catalog
        self.log = log

    def search(self, caller: Principal, *, since_ms: int | None = None, until_ms: int | None = None,
               limit: int = 100, **filters: Any) -> dict:
        """Newest first. Reading the audit log is reading the table: SELECT on system.access.audit."""
        with self.catalog.db.read() as s:
            row = s.scalar(select(SecurableRow).where(SecurableRow.kind == Kind.TABLE.value,
                                                      SecurableRow.full_name == TABLE))
            self.catalog.check(s, caller, P.SELECT, row)
            path = to_path(row.storage_location)
        if not 1 <= limit <= 10_000:
            raise InvalidParameter("limit must be between 1 and 10000")
        self.log.flush()  # answer with every acknowledged request, not only what the flusher moved
        where, params = [], []
        for name in FILTERS:
            value = filters.get(name)
            if value is not None:
                where.append(f"{name} = ?")
                params.append(value)
        if since_ms is not None:
            where.append("event_time >= ?")
            params.append(clock.from_ms(since_ms))
        if until_ms is not None:
            where.append("event_time < ?")
            params.append(clock.from_ms(until_ms))
        dataset = DeltaTable(str(path)).to_pyarrow_dataset()
        con = duckdb.connect()
        try:
            con.register("audit", dataset)
            sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
            sql += " ORDER BY event_time DESC LIMIT ?"
            rows = con.sql(sql, params=[*params, limit]).to_arrow_table().to_pylist()
        finally:
            con.close()
        for r in rows:
            r["event_time"] = clock.to_ms(r["event_time"])
            r["event_date"] = r["event_date"].isoformat() if r.get("event_date") else None
        return {"events": rows}


__all__ = ["AuditQueries"]
