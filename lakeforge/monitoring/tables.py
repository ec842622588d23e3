"""The two metric tables a monitor keeps, in the long layout of Databricks' monitors.

One row per (window, granularity, slice, [model id], column); `column_name = ':table'` holds the
table-level metrics (row count and, for inference logs, model quality). Databricks-compatible names,
so SQL written against Databricks' metric tables runs here. Custom metrics add one column each.
"""

from __future__ import annotations

import pyarrow as pa

TABLE_COLUMN = ":table"
INPUT, BASELINE = "INPUT", "BASELINE"  # log_type: the monitored table, or the baseline table
CONSECUTIVE, BASELINE_DRIFT = "CONSECUTIVE", "BASELINE"  # drift_type

TIMESTAMP = pa.timestamp("us", tz="UTC")
WINDOW = pa.struct([("start", TIMESTAMP), ("end", TIMESTAMP)])
FREQUENT_ITEMS = pa.list_(pa.struct([("item", pa.string()), ("count", pa.int64())]))
# Per-class figures next to their macro and weighted averages (classification).
CLASS_AVERAGES = pa.struct([("one_vs_all", pa.map_(pa.string(), pa.float64())),
                            ("macro", pa.float64()), ("weighted", pa.float64())])
CONFUSION_MATRIX = pa.struct([("labels", pa.list_(pa.string())),           # class order of both axes
                              ("counts", pa.list_(pa.list_(pa.int64())))])  # counts[label][prediction]
TEST = pa.struct([("statistic", pa.float64()), ("pvalue", pa.float64())])

KEYS = [
    ("window", WINDOW),
    ("granularity", pa.string()),       # e.g. "1 day"; the refresh time's window for snapshots: "snapshot"
    ("slice_key", pa.string()),         # null (with slice_value null) for the whole table
    ("slice_value", pa.string()),
    ("column_name", pa.string()),       # ":table" for table-level rows
    ("data_type", pa.string()),         # the column's type as Spark/Delta names it: double, bigint, string, ...
    ("monitor_version", pa.int64()),
]

PROFILE_METRICS = [
    ("log_type", pa.string()),          # INPUT | BASELINE
    ("logging_table_commit_version", pa.int64()),
    ("count", pa.int64()),
    ("num_nulls", pa.int64()),
    ("percent_null", pa.float64()),
    ("num_nan", pa.int64()),
    ("percent_nan", pa.float64()),
    ("num_zeros", pa.int64()),
    ("percent_zeros", pa.float64()),
    ("distinct_count", pa.int64()),
    ("percent_distinct", pa.float64()),
    ("avg", pa.float64()),
    ("stddev", pa.float64()),
    ("min", pa.float64()),
    ("max", pa.float64()),
    ("median", pa.float64()),
    ("quantiles", pa.list_(pa.float64())),  # at QUANTILES
    ("frequent_items", FREQUENT_ITEMS),
    ("min_length", pa.int64()),
    ("max_length", pa.int64()),
    ("avg_length", pa.float64()),
    ("non_null_columns", pa.list_(pa.string())),  # ":table" rows
]

# Model quality, on ":table" rows of inference-log monitors, over the rows whose label is present.
CLASSIFICATION_METRICS = [
    ("accuracy_score", pa.float64()),
    ("precision", CLASS_AVERAGES),
    ("recall", CLASS_AVERAGES),
    ("f1_score", CLASS_AVERAGES),
    ("roc_auc_score", pa.float64()),  # needs prediction_proba_col; one-vs-rest macro for multiclass
    ("log_loss", pa.float64()),       # needs prediction_proba_col
    ("confusion_matrix", CONFUSION_MATRIX),
]
REGRESSION_METRICS = [
    ("mean_squared_error", pa.float64()),
    ("root_mean_squared_error", pa.float64()),
    ("mean_absolute_error", pa.float64()),
    ("mean_absolute_percentage_error", pa.float64()),
    ("r2_score", pa.float64()),
]
LABELED_COUNT = ("num_labeled", pa.int64())  # rows the quality metrics were computed over

DRIFT_METRICS = [
    ("window_cmp", WINDOW),             # the window compared against (the baseline: the baseline's span)
    ("drift_type", pa.string()),        # CONSECUTIVE | BASELINE
    ("logging_table_commit_version", pa.int64()),
    ("count_delta", pa.float64()),
    ("avg_delta", pa.float64()),
    ("percent_null_delta", pa.float64()),
    ("percent_zeros_delta", pa.float64()),
    ("percent_distinct_delta", pa.float64()),
    ("non_null_columns_delta", pa.struct([("added", pa.int32()), ("missing", pa.int32())])),
    ("js_distance", pa.float64()),
    ("ks_test", TEST),
    ("wasserstein_distance", pa.float64()),
    ("population_stability_index", pa.float64()),
    ("chi_squared_test", TEST),
    ("tv_distance", pa.float64()),
    ("l_infinity_distance", pa.float64()),
]

QUANTILES = [0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0]


def _keys(model_id_col: str | None) -> list[tuple[str, pa.DataType]]:
    keys = list(KEYS)
    if model_id_col:  # inference logs: the model id column keeps its name, as in Databricks
        keys.insert(4, (model_id_col, pa.string()))
    return keys


def profile_schema(model_id_col: str | None = None, problem_type: str | None = None,
                   custom: list[tuple[str, pa.DataType]] = ()) -> pa.Schema:
    fields = _keys(model_id_col) + PROFILE_METRICS
    if problem_type == "classification":
        fields += [LABELED_COUNT] + CLASSIFICATION_METRICS
    elif problem_type == "regression":
        fields += [LABELED_COUNT] + REGRESSION_METRICS
    return pa.schema(fields + list(custom))


def drift_schema(model_id_col: str | None = None, custom: list[tuple[str, pa.DataType]] = ()) -> pa.Schema:
    return pa.schema(_keys(model_id_col) + DRIFT_METRICS + list(custom))
