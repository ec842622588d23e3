"""A monitor's configuration on the wire (Databricks' legacy `MonitorInfo`) and as the engine sees it
(`MonitorSpec`), and the rendering of `MonitorInfo` and `MonitorRefreshInfo`.

The stored config is the validated wire shape, canonicalized: granularities as Databricks spells them
("1 day", "2 weeks"; harmless variants such as "1 days", "1 DAY" or "AGGREGATION_GRANULARITY_1_DAY"
are accepted and stored canonical), enums checked against the values `databricks-sdk` knows.
An update (PUT) changes the fields it carries and keeps the others (so `update(table,
output_schema_name, schedule=...)` does not drop the profile type); an empty list or object clears an
optional field. `warehouse_id` and `data_classification_config` are accepted and ignored: the metric
tables are computed in the server, and there is no data classification. `notifications` are stored
and returned, but Lakeforge sends no email: a failed refresh shows in its `message`, in the
monitor's `latest_monitor_failure_msg` and status, and as a WARNING in the server log.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lakeforge import clock, names
from lakeforge.errors import InvalidParameter
from lakeforge.monitoring import schedule
from lakeforge.monitoring.spec import (
    CLASSIFICATION,
    GRANULARITIES,
    INFERENCE_LOG,
    REGRESSION,
    SNAPSHOT,
    TIME_SERIES,
    CustomMetric,
    MonitorSpec,
)

PROFILE_TYPES = (SNAPSHOT, TIME_SERIES, INFERENCE_LOG)
PROBLEM_TYPES = {"PROBLEM_TYPE_CLASSIFICATION": CLASSIFICATION, "PROBLEM_TYPE_REGRESSION": REGRESSION}
METRIC_TYPES = {"CUSTOM_METRIC_TYPE_AGGREGATE": "aggregate", "CUSTOM_METRIC_TYPE_DERIVED": "derived",
                "CUSTOM_METRIC_TYPE_DRIFT": "drift"}
PAUSE_STATUSES = ("PAUSED", "UNPAUSED", "UNSPECIFIED")
# Spark type names of `output_data_type` -> the engine's output types.
# (The engine reads `output_data_type` the same way, engine/custom.py; this copy checks the wire field
# without loading the engine at server start.)
OUTPUT_TYPES = {"double": "double", "float": "double", "real": "double", "decimal": "double", "long": "bigint",
                "bigint": "bigint", "integer": "bigint", "int": "bigint", "short": "bigint", "smallint": "bigint",
                "byte": "bigint", "tinyint": "bigint", "string": "string", "varchar": "string", "char": "string",
                "boolean": "boolean", "bool": "boolean"}

# Monitor status (MonitorInfoStatus) and refresh states/triggers (MonitorRefreshInfoState/Trigger).
ACTIVE, ERROR, FAILED_STATUS = "MONITOR_STATUS_ACTIVE", "MONITOR_STATUS_ERROR", "MONITOR_STATUS_FAILED"
PENDING, RUNNING, SUCCESS, FAILED, CANCELED = "PENDING", "RUNNING", "SUCCESS", "FAILED", "CANCELED"
ACTIVE_STATES = (PENDING, RUNNING)
MANUAL, SCHEDULE = "MANUAL", "SCHEDULE"

_UNITS = {"minute": "minutes", "minutes": "minutes", "min": "minutes", "mins": "minutes", "hour": "hour",
          "hours": "hour", "day": "day", "days": "day", "week": "week", "weeks": "week", "month": "month",
          "months": "month", "year": "year", "years": "year"}
_GRANULARITY = re.compile(r"^(?:AGGREGATION_GRANULARITY_)?(\d+)[\s_]*([A-Za-z]+)$")
_METRIC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
UPDATABLE = ("baseline_table_name", "custom_metrics", "data_classification_config", "notifications", "schedule",
             "slicing_exprs", "snapshot", "time_series", "inference_log", "assets_dir", "skip_builtin_dashboard")


# ---- parsing the wire shape ------------------------------------------------------------------------
def parse(body: dict[str, Any], current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The validated, canonical config of a create (`current` None) or update request."""
    if not isinstance(body, dict):
        raise InvalidParameter("The request body must be a JSON object")
    config: dict[str, Any] = dict(current or {})
    given = {k: v for k, v in body.items() if v is not None}
    output = given.get("output_schema_name", config.get("output_schema_name"))
    config["output_schema_name"] = str(names.parse(output, 2, "output_schema_name"))
    kinds = [k for k in PROFILE_TYPES if k in given]
    if len(kinds) > 1:
        raise InvalidParameter(f"A monitor has exactly one profile type; got {', '.join(kinds)}")
    if kinds:
        for k in PROFILE_TYPES:
            config.pop(k, None)
        config[kinds[0]] = _profile(kinds[0], given[kinds[0]])
    elif current is None:
        raise InvalidParameter("A monitor needs exactly one profile type: snapshot, time_series or inference_log")
    if "baseline_table_name" in given:
        baseline = given["baseline_table_name"]
        config["baseline_table_name"] = str(names.parse(baseline, 3, "baseline_table_name")) if baseline else None
    if "slicing_exprs" in given:
        config["slicing_exprs"] = _strings(given["slicing_exprs"], "slicing_exprs")
    if "custom_metrics" in given:
        config["custom_metrics"] = _custom_metrics(given["custom_metrics"])
    if "schedule" in given:
        config["schedule"] = _schedule(given["schedule"])
    if "notifications" in given:
        config["notifications"] = _object(given["notifications"], "notifications") or None
    if "data_classification_config" in given:
        config["data_classification_config"] = _object(given["data_classification_config"],
                                                       "data_classification_config") or None
    if "assets_dir" in given:
        config["assets_dir"] = _string(given["assets_dir"], "assets_dir") or None
    if "skip_builtin_dashboard" in given:
        if not isinstance(given["skip_builtin_dashboard"], bool):
            raise InvalidParameter("skip_builtin_dashboard must be a boolean")
        config["skip_builtin_dashboard"] = given["skip_builtin_dashboard"]
    return {k: v for k, v in config.items() if v is not None and v != []}


def _profile(kind: str, raw: Any) -> dict[str, Any]:
    raw = _object(raw, kind)
    if kind == SNAPSHOT:
        return {}
    out = {"timestamp_col": _column(raw.get("timestamp_col"), f"{kind}.timestamp_col"),
           "granularities": granularities(raw.get("granularities"), f"{kind}.granularities")}
    if kind == INFERENCE_LOG:
        problem = raw.get("problem_type")
        if problem not in PROBLEM_TYPES:
            raise InvalidParameter(f"inference_log.problem_type must be one of {', '.join(PROBLEM_TYPES)}"
                                   + (f"; got '{problem}'" if problem else ""))
        out["problem_type"] = problem
        for key in ("model_id_col", "prediction_col"):
            out[key] = _column(raw.get(key), f"inference_log.{key}")
        for key in ("label_col", "prediction_proba_col"):
            if raw.get(key) is not None:
                out[key] = _column(raw[key], f"inference_log.{key}")
    return out


def granularities(raw: Any, field: str = "granularities") -> list[str]:
    """Canonical granularity strings, in the order given, without repeats; 400 naming an unknown one."""
    if not isinstance(raw, list) or not raw:
        raise InvalidParameter(f"{field} must be a non-empty list, e.g. [\"1 day\"]")
    out: list[str] = []
    for value in raw:
        canonical = canonical_granularity(value)
        if canonical is None:
            raise InvalidParameter(f"{field}: unknown granularity '{value}'; use one of "
                                   + ", ".join(f"'{g}'" for g in GRANULARITIES))
        if canonical not in out:
            out.append(canonical)
    return out


def canonical_granularity(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    m = _GRANULARITY.match(value.strip())
    if not m:
        return None
    n, unit = int(m.group(1)), _UNITS.get(m.group(2).lower())
    if unit is None:
        return None
    text = f"{n} {unit}" if unit == "minutes" or n == 1 else f"{n} {unit}s"
    return text if text in GRANULARITIES else None


def _custom_metrics(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise InvalidParameter("custom_metrics must be a list")
    out, seen = [], set()
    for i, m in enumerate(raw):
        m = _object(m, f"custom_metrics[{i}]")
        name = m.get("name")
        if not isinstance(name, str) or not _METRIC_NAME.match(name):
            raise InvalidParameter(f"custom_metrics[{i}].name must be a column name (letters, digits, '_'); "
                                   f"got {name!r}")
        label = f"Custom metric '{name}'"
        if name.lower() in seen:
            raise InvalidParameter(f"{label} is defined twice")
        seen.add(name.lower())
        if m.get("type") not in METRIC_TYPES:
            raise InvalidParameter(f"{label}: type must be one of {', '.join(METRIC_TYPES)}; got {m.get('type')!r}")
        definition = m.get("definition")
        if not isinstance(definition, str) or not definition.strip():
            raise InvalidParameter(f"{label}: definition (a SQL expression) is required")
        columns = _strings(m.get("input_columns"), f"{label}: input_columns")
        if not columns:
            raise InvalidParameter(f"{label}: input_columns needs at least one column, or [\":table\"]")
        output = m.get("output_data_type")
        output_type(output, label)
        out.append({"name": name, "type": m["type"], "definition": definition, "input_columns": columns,
                    "output_data_type": output})
    return out


def output_type(raw: Any, label: str) -> str:
    """The engine's type of a custom metric's `output_data_type`: a Spark StructField as JSON
    (`{"name": ..., "type": "double", ...}`), or a bare type name (`"double"`)."""
    text = raw
    if isinstance(raw, str) and raw.strip().startswith("{"):
        try:
            text = json.loads(raw).get("type")
        except (ValueError, AttributeError):
            raise InvalidParameter(f"{label}: output_data_type is not a valid Spark StructField JSON") from None
    kind = OUTPUT_TYPES.get(text.strip().lower().split("(")[0]) if isinstance(text, str) else None
    if kind is None:
        raise InvalidParameter(f"{label}: output_data_type {raw!r} is not supported; use double, bigint, string "
                               "or boolean (a Spark StructField JSON or the bare type name)")
    return kind


def _schedule(raw: Any) -> dict[str, Any] | None:
    raw = _object(raw, "schedule")
    if not raw:
        return None
    expression = _string(raw.get("quartz_cron_expression"), "schedule.quartz_cron_expression")
    timezone_id = _string(raw.get("timezone_id"), "schedule.timezone_id") or "UTC"
    schedule.check(expression, timezone_id)
    pause = raw.get("pause_status") or "UNPAUSED"
    if pause not in PAUSE_STATUSES:
        raise InvalidParameter(f"schedule.pause_status must be one of {', '.join(PAUSE_STATUSES)}; got '{pause}'")
    return {"quartz_cron_expression": expression.strip(), "timezone_id": timezone_id.strip(),
            "pause_status": "PAUSED" if pause == "PAUSED" else "UNPAUSED"}


def active_schedule(config: dict[str, Any]) -> dict[str, Any] | None:
    """The schedule the scheduler follows: None when there is none or it is paused."""
    sched = config.get("schedule")
    return sched if sched and sched.get("pause_status") != "PAUSED" else None


def _object(raw: Any, field: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidParameter(f"{field} must be an object")
    return raw


def _string(raw: Any, field: str) -> str | None:
    if raw is not None and not isinstance(raw, str):
        raise InvalidParameter(f"{field} must be a string")
    return raw


def _column(raw: Any, field: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidParameter(f"{field} is required")
    return raw.strip()


def _strings(raw: Any, field: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(v, str) and v.strip() for v in raw):
        raise InvalidParameter(f"{field} must be a list of non-empty strings")
    return [v.strip() for v in raw]


def profile_type(config: dict[str, Any]) -> str:
    return next(k for k in PROFILE_TYPES if k in config)


# ---- the engine's view -----------------------------------------------------------------------------
def to_spec(config: dict[str, Any], monitor_version: int) -> MonitorSpec:
    kind = profile_type(config)
    p = config[kind]
    metrics = tuple(CustomMetric(type=METRIC_TYPES[m["type"]], name=m["name"], input_columns=tuple(m["input_columns"]),
                                 definition=m["definition"], output_type=output_type(m["output_data_type"], m["name"]))
                    for m in config.get("custom_metrics", []))
    return MonitorSpec(profile_type=kind, timestamp_col=p.get("timestamp_col"),
                       granularities=tuple(p.get("granularities", ())), model_id_col=p.get("model_id_col"),
                       prediction_col=p.get("prediction_col"), label_col=p.get("label_col"),
                       prediction_proba_col=p.get("prediction_proba_col"),
                       problem_type=PROBLEM_TYPES.get(p.get("problem_type")),
                       slicing_exprs=tuple(config.get("slicing_exprs", ())), custom_metrics=metrics,
                       monitor_version=monitor_version)


def metric_table_names(output_schema: str, table_full_name: str) -> tuple[str, str]:
    short = table_full_name.rsplit(".", 1)[-1]
    return f"{output_schema}.{short}_profile_metrics", f"{output_schema}.{short}_drift_metrics"


def dashboard_path(table_full_name: str) -> str:
    """The monitor's dashboard page (dashboard.py serves it), given as `dashboard_id`."""
    return f"/monitors/{table_full_name}"


# ---- rendering -------------------------------------------------------------------------------------
def render_monitor(row, table_full_name: str) -> dict[str, Any]:
    """MonitorInfo of a monitor row. `monitor_version` is a string, as Databricks sends it."""
    config = json.loads(row.config)
    out: dict[str, Any] = {k: config.get(k) for k in ("output_schema_name", "assets_dir", "baseline_table_name",
                                                      "custom_metrics", "data_classification_config",
                                                      "notifications", "schedule", "slicing_exprs", *PROFILE_TYPES)}
    out.update({"table_name": table_full_name, "status": row.status, "monitor_version": str(row.monitor_version),
                "profile_metrics_table_name": row.profile_table_name,
                "drift_metrics_table_name": row.drift_table_name,
                "latest_monitor_failure_msg": row.failure_message})
    if not config.get("skip_builtin_dashboard"):
        out["dashboard_id"] = dashboard_path(table_full_name)
    return out


def render_refresh(row) -> dict[str, Any]:
    """MonitorRefreshInfo; `start_time_ms` is when it was requested. Lakeforge extensions: progress
    (0..1) and progress_message while it runs, run_start_time_ms, and what the engine reports."""
    out: dict[str, Any] = {"refresh_id": row.id, "state": row.state, "trigger": row.trigger,
                           "start_time_ms": clock.to_ms(row.created_at), "end_time_ms": clock.to_ms(row.ended_at),
                           "message": row.message, "run_start_time_ms": clock.to_ms(row.started_at),
                           "progress": row.progress, "progress_message": row.progress_message}
    if row.cancel_requested and row.state in ACTIVE_STATES:
        out["cancel_requested"] = True
    if row.result:
        out.update(json.loads(row.result))
    return out


__all__ = [
    "active_schedule",
    "canonical_granularity",
    "granularities",
    "metric_table_names",
    "parse",
    "profile_type",
    "render_monitor",
    "render_refresh",
    "to_spec",
]
