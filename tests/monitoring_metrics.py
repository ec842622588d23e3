"""Synthetic metric tables in the schemas of lakeforge/monitoring/tables.py, for dashboard tests and
for drawing the docs' screenshot before a real refresh: an inference-log monitor over daily windows,
two model versions, a slice, numeric and string columns, and a column that drifts from day 4."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from lakeforge.monitoring.tables import (
    BASELINE,
    CONSECUTIVE,
    INPUT,
    TABLE_COLUMN,
    drift_schema,
    profile_schema,
)

MODEL_COL = "model_version"


def metric_tables(days: int = 10, *, slice_values=("EU", "US"), columns=("age", "income", "plan"),
                  models=("1", "2"), model_col: str = MODEL_COL, seed: int = 7) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    profile, drift = [], []
    slices = [(None, None)] + [("region", v) for v in slice_values]
    for d in range(days):
        window = {"start": start + timedelta(days=d), "end": start + timedelta(days=d + 1)}
        shifted = d >= 4
        for key, value in slices:
            for model in (None, *models):
                base = {"window": window, "granularity": "1 day", "slice_key": key, "slice_value": value,
                        model_col: model, "monitor_version": 1, "log_type": INPUT,
                        "logging_table_commit_version": days}
                n = int(rng.integers(800, 1200))
                quality = {"num_labeled": n // 2, "accuracy_score": 0.9 - 0.04 * shifted + rng.normal(0, .01),
                           "f1_score": {"one_vs_all": [("0", 0.8), ("1", 0.85)], "macro": 0.86 - 0.05 * shifted,
                                        "weighted": 0.87},
                           "roc_auc_score": 0.93 - 0.03 * shifted + rng.normal(0, .005)}
                profile.append({**base, "column_name": TABLE_COLUMN, "data_type": None, "count": n, **quality})
                for col in columns:
                    numeric = col != "plan"
                    avg = (42 + 6 * shifted if col == "age" else 5000.0) + rng.normal(0, .5)
                    profile.append({**base, "column_name": col, "data_type": "double" if numeric else "string",
                                    "count": n, "num_nulls": int(n * 0.01 * (1 + shifted * (col == "income"))),
                                    "percent_null": 1.0 * (1 + shifted * (col == "income")),
                                    "avg": avg if numeric else None, "stddev": 3.0 if numeric else None,
                                    "distinct_count": 60 if numeric else 3, "min_length": None if numeric else 4,
                                    "frequent_items": None if numeric else [{"item": "basic", "count": n // 2}]})
                    for drift_type in (CONSECUTIVE, BASELINE):
                        if drift_type == CONSECUTIVE and d == 0:
                            continue
                        js = 0.05 + (0.3 if (shifted and col == "age" and (drift_type == BASELINE or d == 4)) else 0)
                        drift.append({**{k: v for k, v in base.items() if k != "log_type"}, "column_name": col,
                                      "data_type": "double" if numeric else "string", "drift_type": drift_type,
                                      "window_cmp": window, "js_distance": js + rng.normal(0, .005),
                                      "ks_test": {"statistic": js, "pvalue": 0.5} if numeric else None,
                                      "chi_squared_test": None if numeric else {"statistic": 1.0, "pvalue": 0.6},
                                      "population_stability_index": 2 * js if numeric else None})
    # the baseline table's own profile: one row per column, the baseline's span as window
    span = {"start": start - timedelta(days=30), "end": start}
    for col in columns:
        profile.append({"window": span, "granularity": "1 day", "slice_key": None, "slice_value": None,
                        model_col: None, "column_name": col, "data_type": "double", "monitor_version": 1,
                        "log_type": BASELINE, "count": 30000, "avg": 42.0 if col == "age" else 5000.0})
    pschema = profile_schema(model_col, "classification")
    dschema = drift_schema(model_col)
    return pa.Table.from_pylist(profile, schema=pschema), pa.Table.from_pylist(drift, schema=dschema)


def monitor_info(table: str = "main.ml.churn_inference", model_col: str = MODEL_COL) -> dict:
    return {"table_name": table, "status": "MONITOR_STATUS_ACTIVE", "monitor_version": 1,
            "output_schema_name": "main.monitoring", "baseline_table_name": "main.ml.churn_training",
            "profile_metrics_table_name": "main.monitoring.churn_inference_profile_metrics",
            "drift_metrics_table_name": "main.monitoring.churn_inference_drift_metrics",
            "slicing_exprs": ["region"],
            "inference_log": {"timestamp_col": "ts", "granularities": ["1 day"], "model_id_col": model_col,
                              "prediction_col": "prediction", "label_col": "label",
                              "problem_type": "PROBLEM_TYPE_CLASSIFICATION"},
            "latest_refresh": {"refresh_id": 3, "state": "SUCCESS", "start_time_ms": 1772409600000,
                               "end_time_ms": 1772409660000, "trigger": "MANUAL"}}


def inference_log(days: int = 7, rows_per_day: int = 300, shift_from: int = 4, seed: int = 11,
                  start: datetime = datetime(2026, 3, 1, tzinfo=UTC)) -> pa.Table:
    """A raw inference log for a churn classifier: two model versions, a `region` slice, `age` that
    drifts upward from day `shift_from`, `income` with nulls, `plan` (a string), prediction, label and
    the positive class's probability. Accuracy drops after the shift."""
    rng = np.random.default_rng(seed)
    n = days * rows_per_day
    day = np.repeat(np.arange(days), rows_per_day)
    shifted = day >= shift_from
    ts = [start + timedelta(days=int(d), seconds=int(s)) for d, s in zip(day, rng.integers(0, 86_400, n))]
    age = rng.normal(40, 8, n) + 12 * shifted
    income = rng.lognormal(10, 0.4, n)
    income[rng.random(n) < 0.02 + 0.1 * shifted] = np.nan
    label = (rng.random(n) < 0.3).astype(np.int64)
    proba = np.clip(np.where(label == 1, rng.beta(5, 2, n), rng.beta(2, 5, n)) + 0.25 * shifted
                    * rng.normal(0, 1, n), 0, 1)
    return pa.table({
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        MODEL_COL: pa.array(rng.choice(["1", "2"], n)),
        "region": pa.array(rng.choice(["EU", "US", "APAC"], n, p=[0.5, 0.3, 0.2])),
        "age": age,
        "income": pa.array(income, from_pandas=True),
        "plan": pa.array(rng.choice(["basic", "plus", "pro"], n)),
        "prediction": (proba >= 0.5).astype(np.int64),
        "proba": proba,
        "label": label,
    })
