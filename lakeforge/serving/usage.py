"""Usage accounting for serving endpoints: in-process counters per endpoint, served entity and
requester (for the usage API and Prometheus), and the durable usage log, the Delta table
`system.serving.endpoint_usage`, fed through a write-ahead log exactly once as the audit log is."""

from __future__ import annotations

import io
import logging
import threading
import time
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from lakeforge.lake.delta_sink import DeltaSink

log = logging.getLogger(__name__)

# Latency histogram bounds in ms: Renard R5 steps (x1.585), 0.25 ms .. 60 s, plus an overflow
# bucket. Fixed so that Prometheus gets the same buckets and percentiles cost no per-call sorting.
BOUNDS_MS: tuple[float, ...] = (
    0.25, 0.4, 0.63, 1, 1.6, 2.5, 4, 6.3, 10, 16, 25, 40, 63, 100, 160, 250, 400, 630,
    1000, 1600, 2500, 4000, 6300, 10000, 16000, 25000, 40000, 60000,
)


class _Entity:
    """One served entity's figures: counts per status code, latency histogram and extremes."""

    __slots__ = ("buckets", "codes", "input_bytes", "latency_max", "latency_min", "latency_sum", "output_bytes")

    def __init__(self):
        self.codes: dict[int, int] = {}
        self.buckets = [0] * (len(BOUNDS_MS) + 1)
        self.latency_sum = 0.0
        self.latency_min = float("inf")
        self.latency_max = 0.0
        self.input_bytes = 0
        self.output_bytes = 0


class _Endpoint:
    __slots__ = ("entities", "requesters", "since_ms")

    def __init__(self):
        self.since_ms = int(time.time() * 1000)
        self.entities: dict[str, _Entity] = {}
        self.requesters: dict[str, list[int]] = {}  # requester -> [requests, errors, rate_limited]


@dataclass(frozen=True)
class EntitySeries:
    """A copy of one served entity's counters, for exposition."""

    endpoint: str
    served_entity: str
    codes: dict[int, int]
    buckets: list[int]  # per bucket, not cumulative; the last one is the overflow
    latency_sum_ms: float


class UsageCounters:
    """In-process usage figures. `record` takes one lock: safe from the event loop and threads alike."""

    def __init__(self):
        self._lock = threading.Lock()
        self._endpoints: dict[str, _Endpoint] = {}

    def record(self, endpoint: str, served_entity: str, requester: str, status: int, latency_ms: float,
               input_bytes: int = 0, output_bytes: int = 0) -> None:
        bucket = bisect_left(BOUNDS_MS, latency_ms)  # upper bounds are inclusive, as Prometheus's `le`
        error = 1 if status >= 400 else 0
        with self._lock:
            ep = self._endpoints.get(endpoint) or self._endpoints.setdefault(endpoint, _Endpoint())
            e = ep.entities.get(served_entity) or ep.entities.setdefault(served_entity, _Entity())
            e.codes[status] = e.codes.get(status, 0) + 1
            e.buckets[bucket] += 1
            e.latency_sum += latency_ms
            e.latency_min = min(e.latency_min, latency_ms)
            e.latency_max = max(e.latency_max, latency_ms)
            e.input_bytes += input_bytes
            e.output_bytes += output_bytes
            r = ep.requesters.get(requester)
            if r is None:
                ep.requesters[requester] = [1, error, 0]
            else:
                r[0] += 1
                r[1] += error

    def record_rate_limited(self, endpoint: str, requester: str) -> None:
        """A call denied by a rate limit: it reached no served entity, so it is counted apart."""
        with self._lock:
            ep = self._endpoints.get(endpoint) or self._endpoints.setdefault(endpoint, _Endpoint())
            r = ep.requesters.get(requester)
            if r is None:
                ep.requesters[requester] = [0, 0, 1]
            else:
                r[2] += 1

    def forget(self, endpoint: str) -> None:
        with self._lock:
            self._endpoints.pop(endpoint, None)

    def endpoints(self) -> list[str]:
        with self._lock:
            return sorted(self._endpoints)

    def snapshot(self, endpoint: str) -> dict:
        """Figures since counting began for `endpoint` (this process's start, or the last `forget`)."""
        with self._lock:
            ep = self._endpoints.get(endpoint) or _Endpoint()
            entities = [(name, dict(e.codes), list(e.buckets), e.latency_sum, e.latency_min, e.latency_max,
                         e.input_bytes, e.output_bytes) for name, e in ep.entities.items()]
            requesters = {name: list(r) for name, r in ep.requesters.items()}
            since = ep.since_ms
        served = []
        all_buckets = [0] * (len(BOUNDS_MS) + 1)
        totals = {"requests": 0, "errors": 0, "input_bytes": 0, "output_bytes": 0}
        lat_sum, lat_min, lat_max = 0.0, float("inf"), 0.0
        for name, codes, buckets, s, lo, hi, in_b, out_b in sorted(entities):
            requests = sum(codes.values())
            errors = sum(n for code, n in codes.items() if code >= 400)
            served.append({"name": name, "requests": requests, "errors": errors,
                           "input_bytes": in_b, "output_bytes": out_b,
                           "latency_ms": latency_summary(buckets, s, lo, hi)})
            all_buckets = [a + b for a, b in zip(all_buckets, buckets, strict=True)]
            lat_sum, lat_min, lat_max = lat_sum + s, min(lat_min, lo), max(lat_max, hi)
            for k, v in (("requests", requests), ("errors", errors), ("input_bytes", in_b), ("output_bytes", out_b)):
                totals[k] += v
        totals["rate_limited"] = sum(r[2] for r in requesters.values())
        totals["latency_ms"] = latency_summary(all_buckets, lat_sum, lat_min, lat_max)
        return {
            "endpoint_name": endpoint,
            "since": since,
            "served_entities": served,
            "requesters": [{"requester": name, "requests": r[0], "errors": r[1], "rate_limited": r[2]}
                           for name, r in sorted(requesters.items())],
            "totals": totals,
        }

    def series(self) -> tuple[list[EntitySeries], dict[str, int]]:
        """Copies of every entity's counters and the rate-limited calls per endpoint (for metrics)."""
        with self._lock:
            entities = [EntitySeries(ep_name, name, dict(e.codes), list(e.buckets), e.latency_sum)
                        for ep_name, ep in self._endpoints.items() for name, e in ep.entities.items()]
            limited = {ep_name: sum(r[2] for r in ep.requesters.values()) for ep_name, ep in self._endpoints.items()}
        return entities, limited


def latency_summary(buckets: list[int], total_ms: float, lowest: float, highest: float) -> dict:
    """p50/p90/p99 interpolated linearly inside the histogram bucket (as Prometheus's
    histogram_quantile), clamped to the latencies actually seen; the mean is exact."""
    count = sum(buckets)
    if not count:
        return {"p50": None, "p90": None, "p99": None, "mean": None}
    return {"p50": _quantile(0.5, buckets, count, lowest, highest),
            "p90": _quantile(0.9, buckets, count, lowest, highest),
            "p99": _quantile(0.99, buckets, count, lowest, highest),
            "mean": total_ms / count}


def _quantile(q: float, buckets: list[int], count: int, lowest: float, highest: float) -> float:
    rank = q * count
    seen = 0
    for i, n in enumerate(buckets):
        if n and seen + n >= rank:
            lo = BOUNDS_MS[i - 1] if i else 0.0
            hi = BOUNDS_MS[i] if i < len(BOUNDS_MS) else highest
            value = lo + (hi - lo) * (rank - seen) / n
            return min(max(value, lowest), highest)
        seen += n
    return highest


# ---- durable usage log ---------------------------------------------------------------------------
USAGE_TABLE = "system.serving.endpoint_usage"
USAGE_SCHEMA = pa.schema([
    pa.field("event_time", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("event_date", pa.date32(), nullable=False),
    pa.field("endpoint_name", pa.string(), nullable=False),
    pa.field("served_entity_name", pa.string()),
    pa.field("requester", pa.string()),
    pa.field("request_id", pa.string()),
    pa.field("status_code", pa.int32()),
    pa.field("execution_time_ms", pa.float64()),
    pa.field("input_bytes", pa.int64()),
    pa.field("output_bytes", pa.int64()),
])

# How records sit in the write-ahead log: `ts` is epoch microseconds.
_RECORD = pa.schema([pa.field("ts", pa.int64()),
                     *[f for f in USAGE_SCHEMA if f.name not in ("event_time", "event_date")]])


def _to_table(data: bytes) -> pa.Table:
    """Parse a segment with Arrow's native JSON reader (no Python object per record)."""
    raw = pa_json.read_json(io.BytesIO(data), parse_options=pa_json.ParseOptions(
        explicit_schema=_RECORD, unexpected_field_behavior="ignore"))
    event_time = raw.column("ts").cast(pa.timestamp("us", tz="UTC"))
    columns = {"event_time": event_time, "event_date": pc.cast(event_time, pa.date32())}
    return pa.table({f.name: columns[f.name] if f.name in columns else raw.column(f.name) for f in USAGE_SCHEMA},
                    schema=USAGE_SCHEMA)


class UsageLog:
    """Rows of `system.serving.endpoint_usage` for endpoints with usage tracking enabled.

    Records are written to the log inline without fsync (microseconds; they survive a crash of the
    process, not of the machine: usage is accounting, not an audit trail). Each server process needs
    its own `wal_dir` and `app_id`."""

    def __init__(self, wal_dir: Path, table_path: Path, *, app_id: str, flush_seconds: float = 2.0):
        self.table_path = table_path
        self.sink = DeltaSink(wal_dir, table_path, USAGE_SCHEMA, app_id=app_id, fsync=False, to_table=_to_table)
        self.wal = self.sink.wal
        self.flush_seconds = flush_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def append(self, record: dict) -> None:
        """`record` holds the columns of USAGE_SCHEMA except event_time/event_date, and `ts` (epoch
        microseconds; now when missing)."""
        if "ts" not in record:
            record = {**record, "ts": time.time_ns() // 1000}
        self.wal.append_sync(record)

    def start(self) -> None:
        self.flush()  # records a crash left in the log go into the table before anything new
        self._thread = threading.Thread(target=self._run, name="usage-flusher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def flush(self) -> int:
        try:
            return self.sink.flush()
        except Exception:  # records stay in the log and are retried at the next tick
            log.exception("usage log flush failed; will retry")
            return 0

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        self.wal.close()
        self.flush()
