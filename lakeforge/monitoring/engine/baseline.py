"""The baseline table's state: the whole table as one window, per slice and model id.

Computed once per baseline Delta version (and monitor configuration) and cached in the state directory;
its profile rows go to the profile table with log_type BASELINE (one copy per granularity, the window
being the baseline's span: the range of its timestamp column, or its commit time when it has none).
Columns the baseline lacks (the timestamp or model id column, typically) are read as nulls; model
quality is not computed for the baseline.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pyarrow as pa

from lakeforge.monitoring.engine import custom_metrics, partials, windows
from lakeforge.monitoring.engine.scan import SourceTable, fold_order
from lakeforge.monitoring.engine.state import fold

WINDOW = ("baseline", 0)
START_COLUMN = "__lf_w0"


@dataclass
class BaselineState:
    key: str                   # path, version and monitor configuration it was computed for
    version: int
    span: dict                 # {"start", "end"}: datetimes
    groups: dict               # group key -> GroupState
    custom: dict = field(default_factory=dict)  # (slice_key, slice_value, model) -> {column: {metric: value}}
    rows_read: int = 0


def cache_key(path: str, version: int, fingerprint: str) -> str:
    return hashlib.sha256(f"{os.path.abspath(path)}\0{version}\0{fingerprint}".encode()).hexdigest()


def compute(path: str, plan: partials.Plan, spec, keys: list[pa.Field], profiled: list[pa.Field],
            all_fields: list[pa.Field], fingerprint: str, con, cancelled) -> BaselineState:
    source = SourceTable(path)
    versions, _ = source.file_versions({}, -1)
    order = fold_order(versions, source.files)
    plan = partials.Plan(plan.columns, [], plan.slicing_exprs, model_col=plan.model_col, fixed_window=WINDOW)
    states: dict = {}
    lo, hi, rows_read = None, None, 0
    collected = []
    aggregates = bool(custom_metrics.of_type(spec, "aggregate"))
    for chunk in source.read(order, all_fields if aggregates else keys, profiled):
        cancelled()
        rows_read += chunk.num_rows
        found, _ = partials.compute(chunk, plan, con)
        fold(states, found, registers=partial(partials.value_registers, con))
        if spec.timestamp_col and source.schema.get_field_index(spec.timestamp_col) >= 0:
            ts, valid = partials.timestamps_us(chunk.column(spec.timestamp_col))
            if valid.any():
                lo = min(lo, int(ts[valid].min())) if lo is not None else int(ts[valid].min())
                hi = max(hi, int(ts[valid].max())) if hi is not None else int(ts[valid].max())
        if aggregates:
            collected.append(chunk.table.append_column(START_COLUMN, pa.array(np.zeros(chunk.num_rows, np.int64))))
    if lo is None:
        lo = hi = source.commit_timestamp_us()
    values = {}
    if collected:
        rows = pa.concat_tables(collected)
        found = custom_metrics.aggregate_values(con, rows, spec, [(WINDOW[0], START_COLUMN)], plan.model_col)
        values = {key[2:]: v for key, v in found.items()}
    span = {"start": windows.to_datetime(lo), "end": windows.to_datetime(hi)}
    return BaselineState(cache_key(path, source.version, fingerprint), source.version, span,
                         states.get(WINDOW, {}), values, rows_read)
