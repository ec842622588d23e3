"""A monitor's validated configuration as the engine sees it (the wire shape lives in config.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

SNAPSHOT, TIME_SERIES, INFERENCE_LOG = "snapshot", "time_series", "inference_log"
CLASSIFICATION, REGRESSION = "classification", "regression"

# Granularities as Databricks' legacy API spells them, in the order of their length.
GRANULARITIES = ["5 minutes", "30 minutes", "1 hour", "1 day", "1 week", "2 weeks", "3 weeks", "4 weeks",
                 "1 month", "1 year"]


@dataclass(frozen=True)
class CustomMetric:
    type: str                 # aggregate | derived | drift
    name: str                 # becomes a column of the metric table
    input_columns: tuple[str, ...]  # column names, or (":table",)
    definition: str           # one SQL expression, a Jinja template ({{input_column}}, {{prediction_col}}, ...)
    output_type: str          # "double" | "bigint" | "string" | "boolean" (from output_data_type)


@dataclass(frozen=True)
class MonitorSpec:
    profile_type: str                              # snapshot | time_series | inference_log
    timestamp_col: str | None = None               # time_series, inference_log
    granularities: tuple[str, ...] = ()            # canonical strings from GRANULARITIES
    model_id_col: str | None = None                # inference_log
    prediction_col: str | None = None
    label_col: str | None = None
    prediction_proba_col: str | None = None
    problem_type: str | None = None                # classification | regression
    slicing_exprs: tuple[str, ...] = ()
    custom_metrics: tuple[CustomMetric, ...] = ()
    monitor_version: int = 1
    # Columns left out of the per-column profile (e.g. a request id); the engine also skips columns
    # of types it cannot profile (structs, maps, binary) and the timestamp column's drift.
    excluded_columns: tuple[str, ...] = field(default_factory=tuple)
