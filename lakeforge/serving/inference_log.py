"""Inference tables: every request and response of an endpoint, as rows of a Delta table.

A record goes into the endpoint's write-ahead log (an inline write, microseconds) before the
response is sent; a background flusher moves sealed segments into the Delta table
`{catalog}.{schema}.{prefix}_payload` in batches, exactly once (Delta application transactions; see
lake/delta_sink.py). After a crash the next start flushes what the log holds. Columns follow
Databricks' payload table.
"""

from __future__ import annotations

import io
import logging
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from lakeforge.errors import AlreadyExists, InvalidParameter
from lakeforge.lake.delta_sink import DeltaSink

log = logging.getLogger(__name__)

PAYLOAD_SCHEMA = pa.schema([
    pa.field("client_request_id", pa.string()),
    pa.field("databricks_request_id", pa.string(), nullable=False),
    pa.field("date", pa.date32(), nullable=False),
    pa.field("timestamp_ms", pa.int64(), nullable=False),
    pa.field("status_code", pa.int32(), nullable=False),
    pa.field("execution_time_ms", pa.int64()),
    pa.field("request", pa.string()),
    pa.field("response", pa.string()),
    pa.field("served_entity_id", pa.string()),
    pa.field("requester", pa.string()),
    pa.field("request_metadata", pa.map_(pa.string(), pa.string())),
])

# How a record sits in the log: request_metadata as a JSON object, read back as a struct.
_META = ("endpoint_name", "model_name", "model_version", "served_entity_name")
_RECORD = pa.schema([
    *[f for f in PAYLOAD_SCHEMA if f.name not in ("date", "request_metadata")],
    pa.field("request_metadata", pa.struct([pa.field(k, pa.string()) for k in _META])),
])


def _to_table(data: bytes) -> pa.Table:
    raw = pa_json.read_json(io.BytesIO(data), parse_options=pa_json.ParseOptions(
        explicit_schema=_RECORD, unexpected_field_behavior="ignore"))
    ts = raw.column("timestamp_ms")
    date = pc.cast(pc.cast(ts, pa.timestamp("ms", tz="UTC")), pa.date32())
    meta = raw.column("request_metadata").combine_chunks()
    keys = pa.array(list(_META) * len(meta), pa.string())
    values = pa.concat_arrays([meta.field(k) for k in _META]) if len(meta) else pa.array([], pa.string())
    # interleave per row: row i holds keys _META with the i-th value of each field
    order = [j * len(meta) + i for i in range(len(meta)) for j in range(len(_META))]
    values = values.take(pa.array(order, pa.int64())) if len(meta) else values
    offsets = pa.array([i * len(_META) for i in range(len(meta) + 1)], pa.int32())
    metadata = pa.MapArray.from_arrays(offsets, keys, values)
    columns = {"date": date, "request_metadata": metadata}
    return pa.table({f.name: columns.get(f.name, raw.column(f.name) if f.name in raw.column_names else None)
                     for f in PAYLOAD_SCHEMA}, schema=PAYLOAD_SCHEMA)


def ensure_payload_table(tables, owner, full_name: str) -> str:
    """Create the payload table as a managed table owned by the endpoint's owner, or reuse one that
    exists with the payload columns. Returns its storage location."""
    try:
        info = tables.create_from_arrow(owner, full_name, PAYLOAD_SCHEMA,
                                        comment="Inference table: requests and responses of a serving endpoint")
    except AlreadyExists:
        info = tables.get_table(owner, full_name)
        have = {c["name"] for c in info.get("columns", [])}
        missing = [n for n in PAYLOAD_SCHEMA.names if n not in have]
        if missing:
            raise InvalidParameter(f"Table '{full_name}' exists but is not an inference table (missing columns "
                                   f"{', '.join(missing)}); choose another table_name_prefix") from None
    return info["storage_location"]


class InferenceLog:
    def __init__(self, wal_dir: Path, table_path: Path, *, app_id: str, fsync: bool = False):
        self.table_path = table_path
        self.sink = DeltaSink(wal_dir, table_path, PAYLOAD_SCHEMA, app_id=app_id, fsync=fsync, to_table=_to_table)
        self.wal = self.sink.wal
        self._closed = False
        self._lock = threading.Lock()

    async def append(self, record: dict) -> None:
        """Durable (in the log file) once this returns; called before the response is sent."""
        await self.wal.append(record)

    def flush(self) -> int:
        with self._lock:
            try:
                return self.sink.flush()
            except Exception:  # records stay in the log; the next tick retries
                log.exception("inference table flush failed for %s; will retry", self.table_path)
                return 0

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.wal.close()
        self.flush()


class InferenceLogFlusher:
    """One background thread moving every endpoint's log into its table every few seconds."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.logs: dict[str, InferenceLog] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="inference-log-flusher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            for inference_log in list(self.logs.values()):
                inference_log.flush()

    def flush_all(self) -> int:
        return sum(inference_log.flush() for inference_log in list(self.logs.values()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        for inference_log in list(self.logs.values()):
            inference_log.close()
