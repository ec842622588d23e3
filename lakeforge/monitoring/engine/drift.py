"""Drift metric rows (tables.DRIFT_METRICS): a window's states against a reference's, group by group.

CONSECUTIVE compares a window with the window just before it (same granularity, slice and model id),
only when that window exists in the monitor's state; BASELINE compares it with the baseline table's
state for the same slice and model id, or for the same slice across all models when the baseline has no
rows of that model (or no model id column). Rows exist for the groups shown in the profile table.

- `count_delta`, `avg_delta`, `percent_null_delta`, `percent_zeros_delta`, `percent_distinct_delta`:
  current minus reference (profile.py's definitions; percentages in points 0..100).
- numeric columns: `ks_test`, `wasserstein_distance`, `population_stability_index`, `js_distance` from
  the exact value counts when both sides have few distinct values (stats.numeric_drift_exact), else from
  the two t-digests (stats.numeric_drift); string and boolean columns: `chi_squared_test`, `tv_distance`,
  `l_infinity_distance`, `js_distance` from the exact value counts, nulls left out (stats.categorical_drift);
  dates and timestamps: the deltas only.
- ":table": `count_delta` and `non_null_columns_delta` (columns with values now and not in the reference:
  added; the other way round: missing).
"""

from __future__ import annotations

from lakeforge.monitoring import tables
from lakeforge.monitoring.engine import stats
from lakeforge.monitoring.engine.columns import CATEGORICAL, NUMERIC
from lakeforge.monitoring.engine.profile import RowContext, visible_groups
from lakeforge.monitoring.engine.state import GroupState, distinct

REFERENCE_MODEL = "__lf_ref_model"


def drift_rows(ctx: RowContext, granularity: str, current: dict, reference: dict, *, drift_type: str,
               window: dict, window_cmp: dict, version: int, fall_back_to_all_models: bool = False) -> list[dict]:
    rows = []
    for key in visible_groups(current):
        ref_key = key
        if ref_key not in reference and fall_back_to_all_models and key[2] is not None:
            ref_key = (key[0], key[1], None)
        ref = reference.get(ref_key)
        if ref is None:
            continue
        cur = current[key]
        base = {"window": window, "window_cmp": window_cmp, "drift_type": drift_type, "granularity": granularity,
                "slice_key": key[0], "slice_value": key[1], "monitor_version": ctx.monitor_version,
                "logging_table_commit_version": version}
        if ctx.model_col:
            base[ctx.model_col] = key[2]
            base[REFERENCE_MODEL] = ref_key[2]  # which reference group was compared (custom drift metrics)
        rows.append({**base, **_table_drift(ctx, cur, ref)})
        for i, column in enumerate(ctx.columns):
            rows.append({**base, "column_name": column.name, "data_type": column.data_type,
                         **column_drift(column, cur, ref, i)})
    return rows


def _table_drift(ctx: RowContext, cur: GroupState, ref: GroupState) -> dict:
    now = {c.name for i, c in enumerate(ctx.columns) if cur.rows - cur.nulls[i] > 0}
    before = {c.name for i, c in enumerate(ctx.columns) if ref.rows - ref.nulls[i] > 0}
    return {"column_name": tables.TABLE_COLUMN, "data_type": None, "count_delta": float(cur.rows - ref.rows),
            "non_null_columns_delta": {"added": len(now - before), "missing": len(before - now)}}


def column_drift(column, cur: GroupState, ref: GroupState, i: int) -> dict:
    row = {"count_delta": float(cur.rows - ref.rows)}
    if cur.rows and ref.rows:
        row["percent_null_delta"] = 100.0 * (cur.nulls[i] / cur.rows - ref.nulls[i] / ref.rows)
        row["percent_distinct_delta"] = 100.0 * (_distinct(cur, i) / cur.rows - _distinct(ref, i) / ref.rows)
    if column.kind == NUMERIC:
        if cur.rows and ref.rows:
            row["percent_zeros_delta"] = 100.0 * (cur.zeros[i] / cur.rows - ref.zeros[i] / ref.rows)
        if cur.n[i] > 0 and ref.n[i] > 0:
            row["avg_delta"] = float(cur.mean[i] - ref.mean[i])
        if cur.values[i] and ref.values[i]:  # few distinct values on both sides: exact
            row.update(stats.numeric_drift_exact(ref.values[i], cur.values[i]))
        elif cur.digest[i] is not None and ref.digest[i] is not None:
            row.update(stats.numeric_drift(ref.digest[i], cur.digest[i], int(ref.n[i]), int(cur.n[i])))
    elif column.kind == CATEGORICAL and cur.counts[i] is not None and ref.counts[i] is not None:
        (ref_values, ref_n), (cur_values, cur_n) = ref.counts[i].sorted_counts(), cur.counts[i].sorted_counts()
        if ref_values == cur_values:  # the usual case: the same values on both sides, their sorted counts cached
            row.update(stats.categorical_drift_counts(ref_n, cur_n))
        else:
            row.update(stats.categorical_drift(ref.counts[i].counts, cur.counts[i].counts))
    return row


def _distinct(state: GroupState, i: int) -> int:
    return distinct(state, i) if state.rows - state.nulls[i] > 0 else 0
