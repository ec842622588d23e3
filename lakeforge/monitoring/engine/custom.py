"""Custom metrics as Databricks defines them: one SQL expression per metric, a Jinja template.

- aggregate: computed over the monitored table's rows of each window and slice, once per input column
  (`{{input_column}}` is that column) or once per window for `[":table"]`; a column of the profile table.
- derived: computed from one profile metric row (same window, slice and column): its expression reads the
  built-in and aggregate metric columns (and derived metrics defined before it) by name.
- drift: computed from two profile metric rows, `{{current_df}}` and `{{base_df}}` (the window and the one
  it is compared with); a column of the drift table.

Template variables: `{{input_column}}`, `{{prediction_col}}`, `{{label_col}}`, `{{current_df}}`,
`{{base_df}}`. A variable that is not set (e.g. `{{label_col}}` on a monitor without labels, or
`{{input_column}}` on a `:table` metric) is an error (StrictUndefined), as is any other name. Names are
substituted as they are (Databricks' examples quote them with backticks when needed).

Definitions are Spark SQL, as on Databricks; the `*_sql` helpers translate the rendered expression to
DuckDB (sqlglot, Spark dialect in, DuckDB out: backticks become double quotes, `percentile_approx`
becomes `approx_quantile`, ...) and cast it to the metric's output type. A definition must be a single
expression: no subqueries, joins or several statements.
"""

from __future__ import annotations

import json

import pyarrow as pa
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from lakeforge.errors import InvalidParameter
from lakeforge.monitoring.spec import CustomMetric

AGGREGATE, DERIVED, DRIFT = "aggregate", "derived", "drift"
TYPES = (AGGREGATE, DERIVED, DRIFT)
TABLE = ":table"
CURRENT, BASE = "current", "base"  # aliases of the two metric rows a drift expression reads

OUTPUT_TYPES = {"double": pa.float64(), "bigint": pa.int64(), "string": pa.string(), "boolean": pa.bool_()}
_DUCKDB_TYPES = {"double": "DOUBLE", "bigint": "BIGINT", "string": "VARCHAR", "boolean": "BOOLEAN"}
# Spark type names (as in a StructField's "type") -> the four output types.
_SPARK_TYPES = {
    "double": "double", "float": "double", "decimal": "double", "real": "double",
    "bigint": "bigint", "long": "bigint", "int": "bigint", "integer": "bigint", "smallint": "bigint",
    "short": "bigint", "tinyint": "bigint", "byte": "bigint",
    "string": "string", "varchar": "string", "char": "string",
    "boolean": "boolean", "bool": "boolean",
}

_jinja = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def output_type(output_data_type: str) -> str:
    """"double" | "bigint" | "string" | "boolean" from a Spark StructField as JSON
    ('{"name":"x","type":"double","nullable":true,"metadata":{}}') or a plain Spark type name."""
    text = (output_data_type or "").strip()
    spark = text
    if text.startswith("{"):
        try:
            spark = json.loads(text).get("type")
        except (ValueError, AttributeError):
            raise InvalidParameter(f"output_data_type is not a StructField JSON: {text[:80]}") from None
    if not isinstance(spark, str):
        raise InvalidParameter(f"unsupported output_data_type {text[:80]}: use double, bigint, string or boolean")
    name = spark.strip().lower().split("(")[0]  # decimal(10,2) -> decimal
    if name not in _SPARK_TYPES:
        raise InvalidParameter(f"unsupported output_data_type {spark!r}: use double, bigint, string or boolean")
    return _SPARK_TYPES[name]


def arrow_type(name: str) -> pa.DataType:
    """The metric table column type of an output type name."""
    try:
        return OUTPUT_TYPES[name]
    except KeyError:
        raise InvalidParameter(f"unsupported custom metric output type {name!r}") from None


def render(metric: CustomMetric, input_column: str | None = None, prediction_col: str | None = None,
           label_col: str | None = None, current_df: str = CURRENT, base_df: str = BASE) -> str:
    """The metric's definition with the template variables substituted (Spark SQL, as written).
    Variables passed as None are undefined: a template that uses one is an InvalidParameter."""
    values = {"input_column": input_column, "prediction_col": prediction_col, "label_col": label_col,
              "current_df": current_df, "base_df": base_df}
    try:
        return _jinja.from_string(metric.definition).render({k: v for k, v in values.items() if v is not None})
    except TemplateError as exc:
        raise InvalidParameter(f"custom metric '{metric.name}': {_template_problem(exc)}") from None


def aggregate_sql(metric: CustomMetric, column: str, *, prediction_col: str | None = None,
                  label_col: str | None = None) -> str:
    """DuckDB expression of an aggregate metric over the rows of one window and slice (evaluate it in a
    GROUP BY over the monitored table), for one input column (or ":table")."""
    text = render(metric, input_column=None if column == TABLE else column,
                  prediction_col=prediction_col, label_col=label_col)
    return _typed(metric, to_duckdb(text, metric.name))


def derived_sql(metric: CustomMetric) -> str:
    """DuckDB expression of a derived metric over one profile metric row, whose columns are the built-in
    and aggregate metric names."""
    return _typed(metric, to_duckdb(render(metric), metric.name))


def drift_sql(metric: CustomMetric, current_df: str = CURRENT, base_df: str = BASE) -> str:
    """DuckDB expression of a drift metric over a join of two profile metric rows aliased `current_df`
    and `base_df` (by default "current" and "base")."""
    return _typed(metric, to_duckdb(render(metric, current_df=current_df, base_df=base_df), metric.name))


def to_duckdb(text: str, name: str) -> str:
    """One Spark SQL expression in DuckDB's dialect; InvalidParameter naming metric `name` if it is not a
    single expression without subqueries."""
    import sqlglot  # here only: about 20 MB and 0.3 s to import, for monitors with custom metrics
    from sqlglot import exp

    try:
        statements = sqlglot.parse(text, read="spark")
    except sqlglot.errors.SqlglotError as exc:
        raise InvalidParameter(f"custom metric '{name}': invalid SQL: {_first_line(str(exc))}") from None
    statements = [s for s in statements if s is not None]
    if len(statements) != 1:
        raise InvalidParameter(f"custom metric '{name}': the definition must be one SQL expression")
    tree = statements[0]
    if isinstance(tree, (exp.Query, exp.Command, exp.DDL, exp.DML)) or tree.find(exp.Query, exp.Subquery):
        raise InvalidParameter(f"custom metric '{name}': the definition must be one SQL expression "
                               "(no queries, subqueries or joins)")
    try:
        return tree.sql(dialect="duckdb")
    except sqlglot.errors.SqlglotError as exc:
        raise InvalidParameter(f"custom metric '{name}': {_first_line(str(exc))}") from None


def _typed(metric: CustomMetric, sql: str) -> str:
    return f"CAST(({sql}) AS {_DUCKDB_TYPES[metric.output_type]})" if metric.output_type in _DUCKDB_TYPES else sql


_UNSET = {
    "input_column": "{{input_column}} is set only for metrics on named input columns, not [':table']",
    "prediction_col": "{{prediction_col}} is set only for inference_log monitors",
    "label_col": "{{label_col}} is set only for inference_log monitors with a label column",
}


def _template_problem(exc: TemplateError) -> str:
    message = str(exc.message if getattr(exc, "message", None) else exc)
    if message.endswith(" is undefined"):
        name = message.removesuffix(" is undefined").strip("'")
        return _UNSET.get(name) or (f"unknown template variable '{name}' "
                                    "(input_column, prediction_col, label_col, current_df, base_df)")
    return f"invalid template: {_first_line(message)}"


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message
