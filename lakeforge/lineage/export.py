"""Lineage edges into the Delta table `system.access.table_lineage`, durably and exactly once.

The metadata database is the source of truth (the graph API reads it). After each commit the new
edges are appended to a write-ahead log; a flusher moves sealed segments into Delta with DeltaSink
(one commit per segment, never twice). Every row carries its database id as `edge_id`.

A crash between the database commit and the log append would leave edges that never reach the
table, so `start()` reconciles: once the log is flushed, database edges missing from the table are
appended again. It looks back RECONCILE_WINDOW ids from the table's highest `edge_id`, which covers
ids that concurrent transactions commit out of order; an empty table is backfilled completely.
`edge_id` is also the key readers may dedupe on, should two replicas ever both export an edge.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from sqlalchemy import select

from lakeforge.catalog.storage import to_path
from lakeforge.catalog.system_tables import ensure_system_table
from lakeforge.lake.delta_sink import DeltaSink, drain_orphans
from lakeforge.lake.wal import WriteAheadLog
from lakeforge.lineage.store import LineageEdgeRow

log = logging.getLogger(__name__)

TABLE = "system.access.table_lineage"
SCHEMA = pa.schema([
    pa.field("event_time", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("source_type", pa.string()),
    pa.field("source_name", pa.string()),
    pa.field("target_type", pa.string()),
    pa.field("target_name", pa.string()),
    pa.field("entity_type", pa.string()),
    pa.field("entity_id", pa.string()),
    pa.field("created_by", pa.string()),
    pa.field("edge_id", pa.int64()),
])
APP_ID = "lakeforge-lineage"
RECONCILE_WINDOW = 10_000
BATCH = 1_000


def to_record(row: LineageEdgeRow) -> dict:
    at = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=timezone.utc)
    return {"edge_id": row.id, "ts": int(at.timestamp() * 1_000_000), "source_type": row.source_type,
            "source_name": row.source_name, "target_type": row.target_type, "target_name": row.target_name,
            "entity_type": row.entity_type, "entity_id": row.entity_id, "created_by": row.created_by}


def _to_rows(records: list[dict]) -> list[dict]:
    rows = []
    for record in records:
        for e in record["edges"]:
            rows.append({**{f.name: e.get(f.name) for f in SCHEMA},
                         "event_time": datetime.fromtimestamp(e["ts"] / 1_000_000, tz=timezone.utc)})
    return rows


class LineageExport:
    def __init__(self, db, catalog, wal_dir: Path, *, app_id: str = APP_ID, fsync: bool = True,
                 flush_seconds: float = 2.0, workers: int = 1):
        self.app_id = app_id
        self.workers = workers
        self.db = db
        self.catalog = catalog
        self.wal_dir = wal_dir
        self.fsync = fsync
        self.flush_seconds = flush_seconds
        self.table_path: Path | None = None
        self.wal: WriteAheadLog | None = None
        self.sink: DeltaSink | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        with self.db.write() as s:
            admin = self.catalog.identity.find_principal(s, "admin")
            location = ensure_system_table(s, self.catalog, TABLE, SCHEMA, admin,
                                           "Lineage edges between assets, with the entity that made them")
        self.table_path = to_path(location)
        self.sink = DeltaSink(self.wal_dir, self.table_path, SCHEMA, app_id=self.app_id, fsync=self.fsync,
                              to_rows=_to_rows)
        self.wal = self.sink.wal
        drain_orphans(self.wal_dir.parent, "lineage", self.workers,
                      lambda path, i: DeltaSink(path, self.table_path, SCHEMA, app_id=f"{APP_ID}-w{i}", to_rows=_to_rows))
        self.flush()
        self.reconcile()
        self._thread = threading.Thread(target=self._run, name="lineage-flusher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        if self.wal:
            self.wal.close()
            self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    # ---- writing -------------------------------------------------------------------------------
    def append(self, rows: list[LineageEdgeRow]) -> None:
        """Called after the database commit; durable once it returns. A failure here loses nothing:
        the edges are in the database and the next start re-exports them."""
        if not rows:
            return
        if self.wal is None:
            log.warning("lineage export not started; %d edge(s) will be exported at the next start", len(rows))
            return
        try:
            self.wal.append_sync({"edges": [to_record(r) for r in rows]})
        except Exception:
            log.exception("lineage write-ahead log append failed; %d edge(s) will be re-exported at the next "
                          "start", len(rows))

    def flush(self) -> int:
        if self.sink is None:
            return 0
        try:
            return self.sink.flush()
        except Exception:  # records stay in the log and are retried at the next tick
            log.exception("lineage flush failed; will retry")
            return 0

    # ---- start-up reconciliation ---------------------------------------------------------------
    def reconcile(self) -> int:
        """Append database edges that never reached the table. Returns how many."""
        high = self._max_exported()
        floor = max(0, high - RECONCILE_WINDOW)
        exported = self._exported_since(floor)
        missing: list[dict] = []
        with self.db.read() as s:
            q = select(LineageEdgeRow).where(LineageEdgeRow.id > floor).order_by(LineageEdgeRow.id)
            for row in s.scalars(q.execution_options(yield_per=BATCH)):
                if row.id not in exported:
                    missing.append(to_record(row))
        for i in range(0, len(missing), BATCH):
            self.wal.append_sync({"edges": missing[i:i + BATCH]})
        if missing:
            log.warning("re-exporting %d lineage edge(s) missing from %s", len(missing), TABLE)
            self.flush()
        return len(missing)

    def _max_exported(self) -> int:
        dt = DeltaTable(str(self.table_path))
        actions = pa.table(dt.get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return 0
        if "max.edge_id" in actions.column_names:  # file statistics: no data read
            value = pc.max(actions.column("max.edge_id")).as_py()
        else:
            value = pc.max(dt.to_pyarrow_table(columns=["edge_id"]).column("edge_id")).as_py()
        return int(value or 0)

    def _exported_since(self, floor: int) -> set[int]:
        table = DeltaTable(str(self.table_path)).to_pyarrow_table(columns=["edge_id"],
                                                                  filters=[("edge_id", ">", floor)])
        return {v for v in table.column("edge_id").to_pylist() if v is not None}


__all__ = ["SCHEMA", "TABLE", "LineageExport", "to_record"]
