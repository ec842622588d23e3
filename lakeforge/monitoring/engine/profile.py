"""Profile metric rows (tables.PROFILE_METRICS) from window states.

Per (window, slice, model id): one row per profiled column and one ":table" row (count and
non_null_columns; model quality for inference logs). Definitions:

- `count`: rows of the window and slice, nulls included (the same on every row of the group);
  `num_nulls`, `num_nan`, `num_zeros`: rows whose value is null / NaN / zero.
- `percent_null`, `percent_nan`, `percent_zeros`, `percent_distinct`: percentages 0..100 of `count`
  (num_nulls / count * 100, ..., distinct_count / count * 100), as Databricks shows them; null when count is 0.
- `avg`, `stddev` (sample, ddof = 1; null under two values), `min`, `max`, `median`, `quantiles` (at
  tables.QUANTILES): over the values that are neither null nor NaN. Quantiles and median are exact (numpy's
  linear interpolation) for numeric columns with at most state.NUMERIC_VALUE_CAP distinct values in the
  window, otherwise from the t-digest (k = 400: within about 1% of rank; exact at 0 and 1, the min and max).
- `distinct_count`: non-null values; exact for strings and booleans below the value-count cap and for
  numbers with few distinct values, otherwise the HyperLogLog estimate (and always for dates/timestamps).
- `frequent_items`: the 10 most frequent values of string and boolean columns (ties by value), with counts.
- `min_length`, `max_length`, `avg_length`: UTF-8 character lengths of the non-null strings.
- Slices: the whole table, and for each slicing expression its 100 most frequent values in the window
  (by rows across all models, ties by value).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from datasketches import tdigest_double

from lakeforge.monitoring import tables
from lakeforge.monitoring.engine import model_quality, windows
from lakeforge.monitoring.engine.columns import CATEGORICAL, NUMERIC, Column
from lakeforge.monitoring.engine.state import (
    LEN_NONE,
    GroupState,
    distinct,
    exact_quantiles,
    stddev,
)

TOP_SLICES = 100
FREQUENT_ITEMS = 10


@dataclass
class RowContext:
    """What every profile row of a refresh shares."""
    columns: list[Column]
    monitor_version: int
    model_col: str | None = None             # inference logs: the key column's name
    problem_type: str | None = None          # inference logs: model quality on ":table" rows
    custom: dict = field(default_factory=dict)  # (granularity, start, slice_key, slice_value, model, column) -> {}


def window_struct(granularity: str, start_us: int, end_us: int | None = None) -> dict:
    if end_us is None:
        end_us = start_us if granularity == windows.SNAPSHOT else windows.end(granularity, start_us)
    return {"start": windows.to_datetime(start_us), "end": windows.to_datetime(end_us)}


def visible_groups(groups: dict) -> list:
    """Group keys shown in the metric tables: whole table, and the TOP_SLICES values of each expression."""
    ranked: dict = {}
    for slice_key, value, model in groups:
        if slice_key is not None and model is None:
            ranked.setdefault(slice_key, []).append(value)
    shown = set()
    for slice_key, values in ranked.items():
        values.sort(key=lambda v: (-groups[(slice_key, v, None)].rows, v))
        shown.update((slice_key, v) for v in values[:TOP_SLICES])
    return sorted((k for k in groups if k[0] is None or (k[0], k[1]) in shown), key=_group_order)


def _group_order(key) -> tuple:
    return tuple((x is not None, x or "") for x in key)


def profile_rows(ctx: RowContext, granularity: str, start_us: int, groups: dict, *, log_type: str,
                 version: int, span: dict | None = None) -> list[dict]:
    """The rows of one window (or of the baseline, with its span as window)."""
    window = span or window_struct(granularity, start_us)
    rows = []
    for key in visible_groups(groups):
        state = groups[key]
        slice_key, slice_value, model = key
        base = {"window": window, "granularity": granularity, "slice_key": slice_key, "slice_value": slice_value,
                "monitor_version": ctx.monitor_version, "log_type": log_type,
                "logging_table_commit_version": version}
        if ctx.model_col:
            base[ctx.model_col] = model
        custom = ctx.custom.get((granularity, start_us, *key), {})
        rows.append({**base, **table_row(ctx, state), **custom.get(tables.TABLE_COLUMN, {})})
        for i, column in enumerate(ctx.columns):
            rows.append({**base, **column_row(column, state, i), **custom.get(column.name, {})})
    return rows


def empty_rows(ctx: RowContext, granularity: str, start_us: int, *, version: int) -> list[dict]:
    """A window whose rows are all gone: count 0 for the whole table."""
    return profile_rows(ctx, granularity, start_us, {(None, None, None): GroupState.empty(len(ctx.columns))},
                        log_type=tables.INPUT, version=version)


def table_row(ctx: RowContext, state: GroupState) -> dict:
    non_null = [c.name for i, c in enumerate(ctx.columns) if state.rows - state.nulls[i] > 0]
    row = {"column_name": tables.TABLE_COLUMN, "data_type": None, "count": state.rows, "non_null_columns": non_null}
    if ctx.problem_type:
        row.update(model_quality.metrics(state.quality, ctx.problem_type))
    return row


def column_row(column: Column, state: GroupState, i: int) -> dict:
    count = state.rows
    nulls = int(state.nulls[i])
    row = {"column_name": column.name, "data_type": column.data_type, "count": count, "num_nulls": nulls,
           "percent_null": _percent(nulls, count)}
    n_distinct = distinct(state, i) if count - nulls > 0 else 0
    row["distinct_count"] = n_distinct
    row["percent_distinct"] = _percent(n_distinct, count)
    if column.kind == NUMERIC:
        n = int(state.n[i])
        row.update(num_nan=int(state.nans[i]), percent_nan=_percent(int(state.nans[i]), count),
                   num_zeros=int(state.zeros[i]), percent_zeros=_percent(int(state.zeros[i]), count))
        if n > 0:
            sd = float(stddev(state)[i])
            row.update(avg=float(state.mean[i]), stddev=None if np.isnan(sd) else sd,
                       min=float(state.vmin[i]), max=float(state.vmax[i]))
        if state.values[i]:  # few distinct values: exact
            *quantiles, median = exact_quantiles(state.values[i], [*tables.QUANTILES, 0.5])
            row.update(quantiles=quantiles, median=median)
        elif state.digest[i] is not None:
            digest = tdigest_double.deserialize(state.digest[i])
            quantiles = [_quantile(digest, q, state, i) for q in tables.QUANTILES]
            row.update(quantiles=quantiles, median=_quantile(digest, 0.5, state, i))
    elif column.kind == CATEGORICAL:
        counts = state.counts[i]
        if counts is not None:
            row["frequent_items"] = [{"item": v, "count": c} for v, c in counts.top(FREQUENT_ITEMS)]
        if column.is_string and state.len_max[i] >= 0:
            row.update(min_length=int(state.len_min[i]) if state.len_min[i] != LEN_NONE else None,
                       max_length=int(state.len_max[i]),
                       avg_length=float(state.len_sum[i]) / (count - nulls))
    return row


def _quantile(digest: tdigest_double, q: float, state: GroupState, i: int) -> float:
    if q <= 0.0:
        return float(state.vmin[i])
    if q >= 1.0:
        return float(state.vmax[i])
    return float(digest.get_quantile(q))


def _percent(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None
