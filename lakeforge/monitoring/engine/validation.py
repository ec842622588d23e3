"""Checks a monitor's configuration against the table (and baseline) it reads, before anything runs.

Every problem is an InvalidParameter (400) whose message names it: the column, the expression, the
custom metric. SQL is checked by DuckDB itself: each expression is bound against empty Arrow tables of
the right schema (the monitored table for slicing expressions and aggregate metrics, a metric row for
derived and drift metrics), so a missing column, a type mismatch or a syntax error is caught at create
time. The DuckDB connection has external access off: an expression cannot read files.
"""

from __future__ import annotations

import json
import re

import duckdb
import pyarrow as pa

from lakeforge.errors import InvalidParameter
from lakeforge.lake.types import type_text
from lakeforge.monitoring import tables
from lakeforge.monitoring.engine import custom
from lakeforge.monitoring.engine.columns import kind_of, profiled_columns
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

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NO_FUNCTION = re.compile(r"argument types '(\w+)\(([^']*)\)'")
_ERROR_PREFIX = re.compile(r"^\w+ Error: ")
_UNKNOWN_COLUMN = re.compile(r'Referenced column "([^"]+)" not found|does not have a column named "([^"]+)"')


def validate(spec: MonitorSpec, schema: pa.Schema, baseline_schema: pa.Schema | None = None) -> None:
    """Raise InvalidParameter naming the first problem of `spec` on a table of `schema`."""
    _check_profile(spec, schema)
    with _connection(schema) as con:
        for expr in spec.slicing_exprs:
            _check_slice(con, expr)
        _check_custom_metrics(con, spec, schema)
    if baseline_schema is not None:
        _check_baseline(spec, schema, baseline_schema)


# ---- profile type and named columns ----

def _check_profile(spec: MonitorSpec, schema: pa.Schema) -> None:
    if spec.profile_type not in (SNAPSHOT, TIME_SERIES, INFERENCE_LOG):
        raise InvalidParameter(f"unknown profile type {spec.profile_type!r}")
    if spec.profile_type in (TIME_SERIES, INFERENCE_LOG):
        ts = _column(schema, spec.timestamp_col, "timestamp_col", spec.profile_type)
        if not (pa.types.is_timestamp(ts.type) or pa.types.is_date(ts.type)):
            raise InvalidParameter(f"timestamp column '{ts.name}' is {type_text(ts.type)}, not a timestamp or date")
        if not spec.granularities:
            raise InvalidParameter(f"granularities are required for {spec.profile_type} monitors")
        for granularity in spec.granularities:
            if granularity not in GRANULARITIES:
                raise InvalidParameter(f"unknown granularity '{granularity}' (one of: {', '.join(GRANULARITIES)})")
    if spec.profile_type == INFERENCE_LOG:
        _check_inference(spec, schema)
    for name in spec.excluded_columns:
        if schema.get_field_index(name) < 0:
            raise InvalidParameter(f"excluded column '{name}' not found in the table")


def _check_inference(spec: MonitorSpec, schema: pa.Schema) -> None:
    if spec.problem_type not in (CLASSIFICATION, REGRESSION):
        raise InvalidParameter("problem_type is required for inference_log monitors: classification or regression"
                               if not spec.problem_type else f"unknown problem_type '{spec.problem_type}'")
    _column(schema, spec.model_id_col, "model_id_col", INFERENCE_LOG)
    prediction = _column(schema, spec.prediction_col, "prediction_col", INFERENCE_LOG)
    label = _column(schema, spec.label_col, "label_col", INFERENCE_LOG) if spec.label_col else None
    if spec.problem_type == REGRESSION:
        for role, f in (("prediction", prediction), ("label", label)):
            if f is not None and not _is_numeric(f.type):
                raise InvalidParameter(f"regression needs a numeric {role} column: '{f.name}' is {type_text(f.type)}")
        if spec.prediction_proba_col:
            raise InvalidParameter("prediction_proba_col applies to classification only")
    elif spec.prediction_proba_col:
        proba = _column(schema, spec.prediction_proba_col, "prediction_proba_col", INFERENCE_LOG)
        t = proba.type
        is_list = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
        if not (_is_numeric(t) or (is_list and _is_numeric(t.value_type))):
            raise InvalidParameter(f"probability column '{proba.name}' is {type_text(t)}: expected a double "
                                   "(binary) or an array of doubles (one per class)")


def _column(schema: pa.Schema, name: str | None, option: str, profile_type: str) -> pa.Field:
    if not name:
        raise InvalidParameter(f"{option} is required for {profile_type} monitors")
    index = schema.get_field_index(name)
    if index < 0:
        raise InvalidParameter(f"column '{name}' ({option}) not found in the table")
    return schema.field(index)


def _is_string(schema: pa.Schema, column: str) -> bool:
    t = schema.field(column).type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


# ---- SQL: slicing expressions and custom metrics ----

def _check_slice(con: duckdb.DuckDBPyConnection, expr: str) -> None:
    where = f"slicing expression '{_short(expr)}'"
    _single_expression(con, expr, where)
    _bind(con, f"SELECT count(*) FROM t GROUP BY (\n{expr}\n)", where)


def _check_custom_metrics(con: duckdb.DuckDBPyConnection, spec: MonitorSpec, schema: pa.Schema) -> None:
    reserved = {name.lower() for name in _builtin_columns(spec)}
    seen: set[str] = set()
    row_columns: list[tuple[str, pa.DataType]] = []  # aggregate, then derived metrics, as a metric row has them
    for metric in spec.custom_metrics:
        what = f"custom metric '{metric.name}'"
        if metric.type not in custom.TYPES:
            raise InvalidParameter(f"{what}: unknown type '{metric.type}' (aggregate, derived or drift)")
        if not _NAME.match(metric.name or ""):
            raise InvalidParameter(f"{what}: the name must be a column name (letters, digits, underscores)")
        if metric.name.lower() in reserved:
            raise InvalidParameter(f"{what}: the name is a built-in metric column")
        if metric.name.lower() in seen:
            raise InvalidParameter(f"{what}: defined twice")
        seen.add(metric.name.lower())
        arrow = custom.arrow_type(metric.output_type)
        if not metric.input_columns:
            raise InvalidParameter(f"{what}: input_columns is empty (column names or [':table'])")
        for column in metric.input_columns:
            if column != custom.TABLE and schema.get_field_index(column) < 0:
                raise InvalidParameter(f"{what}: input column '{column}' not found in the table")
        if metric.type == custom.AGGREGATE:
            _check_aggregate(con, spec, schema, metric)
            row_columns.append((metric.name, arrow))
    metric_row = tables.profile_schema(*_inference_keys(spec), row_columns)
    for metric in spec.custom_metrics:
        if metric.type == custom.DERIVED:
            _check_on_metric_rows(con, metric_row, metric, custom.derived_sql(metric), "FROM m", "column_name")
            metric_row = metric_row.append(pa.field(metric.name, custom.arrow_type(metric.output_type)))
    for metric in spec.custom_metrics:
        if metric.type == custom.DRIFT:
            _check_on_metric_rows(con, metric_row, metric, custom.drift_sql(metric),
                                  f"FROM m AS {custom.CURRENT}, m AS {custom.BASE}", f"{custom.CURRENT}.column_name")


def _check_aggregate(con: duckdb.DuckDBPyConnection, spec: MonitorSpec, schema: pa.Schema,
                     metric: CustomMetric) -> None:
    what = f"custom metric '{metric.name}'"
    for column in metric.input_columns:
        sql = custom.aggregate_sql(metric, column, prediction_col=spec.prediction_col, label_col=spec.label_col)
        try:
            # GROUP BY (): a plain row expression is an error, an aggregate binds.
            con.execute(f"SELECT {sql} FROM t GROUP BY ()").fetchall()
        except duckdb.Error as exc:
            message = str(exc)
            found = _NO_FUNCTION.search(message)
            if found and "VARCHAR" in found.group(2) and column != custom.TABLE and _is_string(schema, column):
                raise InvalidParameter(f"{what}: {found.group(1).lower()}({found.group(2)}) "
                                       f"on string column '{column}'") from None
            if "must appear in the GROUP BY clause" in message:
                raise InvalidParameter(f"{what}: an aggregate metric must aggregate the rows "
                                       "(e.g. avg(...), count(...))") from None
            raise InvalidParameter(f"{what}: {_duckdb_problem(message)}") from None


def _check_on_metric_rows(con: duckdb.DuckDBPyConnection, metric_row: pa.Schema, metric: CustomMetric, sql: str,
                          source: str, plain_column: str) -> None:
    """Bind a derived or drift expression over empty metric rows; selecting a plain column beside it
    makes an aggregate (which would mix rows) a binder error."""
    con.register("m", metric_row.empty_table())
    try:
        con.execute(f"SELECT {sql}, {plain_column} {source}").fetchall()
    except duckdb.Error as exc:
        message = str(exc)
        if "must appear in the GROUP BY clause" in message:
            raise InvalidParameter(f"custom metric '{metric.name}': a {metric.type} metric reads metric rows "
                                   "one by one and cannot aggregate them") from None
        if found := _UNKNOWN_COLUMN.search(message):
            raise InvalidParameter(f"custom metric '{metric.name}': '{found.group(1) or found.group(2)}' is not a metric column "
                                   f"(a {metric.type} metric reads built-in and custom metrics by name)") from None
        raise InvalidParameter(f"custom metric '{metric.name}': {_duckdb_problem(message)}") from None
    finally:
        con.unregister("m")


def _single_expression(con: duckdb.DuckDBPyConnection, expr: str, where: str) -> None:
    """One expression, no subquery: checked on DuckDB's own parse of SELECT (<expr>) FROM t."""
    sql = f"SELECT (\n{expr}\n) FROM t"
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    if tree.get("error"):
        raise InvalidParameter(f"{where}: invalid SQL: {_duckdb_problem(tree.get('error_message', ''))}")
    statements = tree["statements"]
    node = statements[0]["node"] if len(statements) == 1 else {}
    if (node.get("type") != "SELECT_NODE" or len(node.get("select_list", [])) != 1 or node.get("where_clause")
            or node.get("group_expressions") or node.get("modifiers") or node.get("having")
            or (node.get("from_table") or {}).get("table_name") != "t" or '"SUBQUERY"' in json.dumps(node)):
        raise InvalidParameter(f"{where}: must be one SQL expression over the table's columns (no subqueries)")


def _bind(con: duckdb.DuckDBPyConnection, sql: str, where: str) -> None:
    try:
        con.execute(sql).fetchall()
    except duckdb.Error as exc:
        message = str(exc)
        if "cannot contain aggregates" in message:
            raise InvalidParameter(f"{where}: must be a row expression, not an aggregate") from None
        raise InvalidParameter(f"{where}: {_duckdb_problem(message)}") from None


class _connection:
    """An in-memory DuckDB with `t` = an empty table of the monitored schema, and no file access."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        self.con = duckdb.connect()
        self.con.execute("SET enable_external_access = false")
        self.con.register("t", self.schema.empty_table())
        return self.con

    def __exit__(self, *exc) -> None:
        self.con.close()


def _builtin_columns(spec: MonitorSpec) -> list[str]:
    model_id_col, problem_type = _inference_keys(spec)
    fields = [*tables.profile_schema(model_id_col, problem_type), *tables.drift_schema(model_id_col)]
    every_quality = [name for name, _ in (*tables.CLASSIFICATION_METRICS, *tables.REGRESSION_METRICS,
                                          tables.LABELED_COUNT)]
    return [f.name for f in fields] + every_quality


def _inference_keys(spec: MonitorSpec) -> tuple[str | None, str | None]:
    """The model id column and problem type as the metric tables use them (inference logs only)."""
    if spec.profile_type != INFERENCE_LOG:
        return None, None
    return spec.model_id_col, spec.problem_type


def _duckdb_problem(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else "invalid SQL"
    line = _ERROR_PREFIX.sub("", line)
    return line if len(line) <= 200 else line[:197] + "..."


def _short(expr: str) -> str:
    return expr if len(expr) <= 80 else expr[:77] + "..."


# ---- baseline ----

def _check_baseline(spec: MonitorSpec, schema: pa.Schema, baseline: pa.Schema) -> None:
    """The baseline needs every profiled column with a type of the same kind (numeric, categorical,
    temporal: an int baseline column for a double one is fine, a string one is not). The timestamp and
    model id columns may be absent (training data often has neither)."""
    optional = {spec.timestamp_col, spec.model_id_col}
    columns = [c for c in profiled_columns(spec, schema) if c.name not in optional]
    missing = [c.name for c in columns if baseline.get_field_index(c.name) < 0]
    if missing:
        names = ", ".join(f"'{name}'" for name in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise InvalidParameter(f"the baseline table lacks column(s) {names} that the monitor profiles")
    for c in columns:
        other = baseline.field(c.name).type
        if kind_of(other) != c.kind:
            raise InvalidParameter(f"baseline column '{c.name}' is {type_text(other)}, "
                                   f"the table's is {type_text(c.arrow)}")
