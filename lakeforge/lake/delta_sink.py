"""A Delta table fed through a write-ahead log, exactly once.

Each sealed segment is appended in one Delta commit that carries an application transaction
(app_id, segment number). After a crash, segments whose number is at or below the table's recorded
transaction version were already committed and are only deleted, never appended twice. The sink
opens its own log so that new segments are always numbered past that version.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from lakeforge.lake.wal import WriteAheadLog

log = logging.getLogger(__name__)


class DeltaSink:
    def __init__(self, wal_dir: Path, table_path: Path, schema: pa.Schema, app_id: str, *, fsync: bool = False,
                 to_table: Callable[[bytes], pa.Table] | None = None, partition_by: list[str] | None = None,
                 on_commit: Callable[[int], None] | None = None,
                 to_rows: Callable[[list[dict]], list[dict]] | None = None):
        """`to_table` turns a segment's newline-delimited JSON into an Arrow table of `schema`;
        or `to_rows` maps parsed records to row dicts; by default the records are the rows."""
        self.wal = WriteAheadLog(wal_dir, fsync=fsync, first_seq=committed_version(table_path, app_id) + 1)
        self.table_path = table_path
        self.schema = schema
        self.app_id = app_id
        self.to_rows = to_rows or (lambda records: records)
        self.to_table = to_table or self._rows_table
        self.partition_by = partition_by
        self.on_commit = on_commit
        self._lock = threading.Lock()

    def flush(self) -> int:
        """Seal the active segment and move every sealed segment into the table. Returns rows written."""
        with self._lock:
            written = 0
            sealed = self.wal.seal()
            if not sealed:
                return 0
            done_upto = committed_version(self.table_path, self.app_id)
            for seq in sealed:
                if seq <= done_upto:
                    self.wal.drop(seq)
                    continue
                data = self.wal.read_bytes(seq)
                table = self.to_table(data) if data else None
                if table is not None and table.num_rows:
                    write_deltalake(str(self.table_path), table, mode="append", partition_by=self.partition_by,
                                    commit_properties=CommitProperties(
                                        app_transactions=[Transaction(app_id=self.app_id, version=seq)]))
                    written += table.num_rows
                    if self.on_commit:
                        self.on_commit(table.num_rows)
                self.wal.drop(seq)
            return written

    def _rows_table(self, data: bytes) -> pa.Table:
        import orjson

        rows = self.to_rows([orjson.loads(line) for line in data.splitlines() if line])
        return pa.Table.from_pylist(rows, schema=self.schema)


def committed_version(table_path: Path, app_id: str) -> int:
    """The last segment number this app committed to the table (0 when none or no table yet)."""
    try:
        dt = DeltaTable(str(table_path))
    except Exception:
        return 0
    return dt.transaction_version(app_id) or 0


def drain_orphans(wal_parent: Path, name: str, workers: int, make_sink: Callable[[Path, int], DeltaSink]) -> int:
    """Flush the logs of worker indexes that no longer run (the server was restarted with fewer
    workers), so their acknowledged records still reach the table. Returns rows written."""
    written = 0
    for path in sorted(wal_parent.glob(f"{name}-w*")):
        index = path.name.rsplit("-w", 1)[1]
        if index.isdigit() and int(index) >= workers and any(path.iterdir()):
            sink = make_sink(path, int(index))
            sink.wal.close()
            written += sink.flush()
    return written
