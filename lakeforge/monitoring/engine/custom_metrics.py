"""Values of custom metrics (custom.py renders and translates their SQL; this module runs it in DuckDB).

- aggregate: not mergeable, so a window touched by a refresh is recomputed from all its rows: the rows of
  the current files that have rows in the window, grouped like the built-in metrics (window, slice value,
  model id), one GROUP BY per granularity, slicing expression and model grouping.
- derived: evaluated on each new profile row, in definition order (a derived metric may read earlier ones).
- drift: evaluated on each new drift row over the pair of profile rows it compares, joined as
  `current` and `base`.
A metric applies to the rows of its input columns (":table": the table-level row); other rows get null.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakeforge.errors import InvalidParameter
from lakeforge.monitoring import tables
from lakeforge.monitoring.engine import custom
from lakeforge.monitoring.spec import MonitorSpec

ROWS = "__lf_rows"


def of_type(spec: MonitorSpec, kind: str) -> list:
    return [m for m in spec.custom_metrics if m.type == kind]


def aggregate_values(con: duckdb.DuckDBPyConnection, rows: pa.Table, spec: MonitorSpec,
                     groupings: list[tuple[str, str]], model_col: str | None) -> dict:
    """Aggregate metric values of `rows`, which carry one window-start column per granularity
    (`groupings`: (granularity, column name)). Returns {(granularity, start, slice_key, slice_value,
    model, column_name): {metric name: value}}."""
    metrics = of_type(spec, custom.AGGREGATE)
    if not metrics or rows.num_rows == 0:
        return {}
    selects, targets = [], []
    for metric in metrics:
        for column in metric.input_columns:
            sql = custom.aggregate_sql(metric, column, prediction_col=spec.prediction_col, label_col=spec.label_col)
            selects.append(f"{sql} AS __lf_c{len(selects)}")
            targets.append((column, metric.name))
    values: dict = {}
    con.register(ROWS, rows)
    try:
        for granularity, window_col in groupings:
            for slice_key in [None, *spec.slicing_exprs]:
                for per_model in ([False, True] if model_col else [False]):
                    sv = f"CAST(({slice_key}) AS VARCHAR)" if slice_key is not None else "NULL::VARCHAR"
                    mv = f'CAST("{model_col}" AS VARCHAR)' if per_model else "NULL::VARCHAR"
                    where = [f'"{window_col}" IS NOT NULL']
                    if slice_key is not None:
                        where.append(f"{sv} IS NOT NULL")
                    if per_model:
                        where.append(f"{mv} IS NOT NULL")
                    sql = (f'SELECT "{window_col}" AS __lf_w, {sv} AS __lf_s, {mv} AS __lf_m, {", ".join(selects)} '
                           f'FROM {ROWS} WHERE {" AND ".join(where)} GROUP BY ALL')
                    for record in _fetch(con, sql):
                        w, s, m = record[:3]
                        for (column, name), value in zip(targets, record[3:]):
                            key = (granularity, int(w), slice_key, s, m)
                            values.setdefault(key, {}).setdefault(column, {})[name] = value
    finally:
        con.unregister(ROWS)
    return values


def add_derived(con: duckdb.DuckDBPyConnection, profile: pa.Table, spec: MonitorSpec) -> pa.Table:
    """Fill the derived metric columns of new profile rows (the table has every column of the schema)."""
    for metric in of_type(spec, custom.DERIVED):
        sql = custom.derived_sql(metric)
        applies = _applies(metric, "column_name")
        con.register("m", profile)
        try:
            result = _table(con, f"SELECT CASE WHEN {applies} THEN {sql} END AS v FROM m")
        finally:
            con.unregister("m")
        index = profile.schema.get_field_index(metric.name)
        profile = profile.set_column(index, profile.schema.field(index), _as(result, profile.schema.field(index)))
    return profile


def add_drift(con: duckdb.DuckDBPyConnection, drift: pa.Table, profile: pa.Table, spec: MonitorSpec,
              model_col: str | None, reference_model: list) -> pa.Table:
    """Fill the custom drift columns of new drift rows from the profile rows each compares
    (`reference_model`: per drift row, the model id of the reference group it was computed against)."""
    metrics = of_type(spec, custom.DRIFT)
    if not metrics or drift.num_rows == 0:
        return drift
    keyed = drift.append_column("__lf_rid", pa.array(np.arange(drift.num_rows), pa.int64()))
    keyed = keyed.append_column("__lf_ref_model", pa.array(reference_model, pa.string()))
    same = ["granularity", "slice_key", "slice_value", "column_name"]
    cur_on = [f'{custom.CURRENT}."{c}" IS NOT DISTINCT FROM d."{c}"' for c in same]
    cur_on += [f"{custom.CURRENT}.log_type = '{tables.INPUT}'", f'{custom.CURRENT}."window".start = d."window".start']
    base_on = [f'{custom.BASE}."{c}" IS NOT DISTINCT FROM d."{c}"' for c in same]
    base_on.append(f"""(CASE WHEN d.drift_type = '{tables.CONSECUTIVE}'
        THEN {custom.BASE}.log_type = '{tables.INPUT}' AND {custom.BASE}."window".start = d.window_cmp.start
        ELSE {custom.BASE}.log_type = '{tables.BASELINE}' END)""")
    if model_col:
        cur_on.append(f'{custom.CURRENT}."{model_col}" IS NOT DISTINCT FROM d."{model_col}"')
        base_on.append(f'{custom.BASE}."{model_col}" IS NOT DISTINCT FROM d.__lf_ref_model')
    con.register("d", keyed)
    con.register("m", profile)
    try:
        for metric in metrics:
            sql = (f"SELECT d.__lf_rid, CASE WHEN {_applies(metric, 'd.column_name')} THEN {custom.drift_sql(metric)} "
                   f"END AS v FROM d LEFT JOIN m AS {custom.CURRENT} ON {' AND '.join(cur_on)} "
                   f"LEFT JOIN m AS {custom.BASE} ON {' AND '.join(base_on)} ORDER BY d.__lf_rid")
            result = _table(con, sql)
            if result.num_rows != drift.num_rows:
                raise InvalidParameter(f"custom metric '{metric.name}': metric rows are not unique per key")
            index = drift.schema.get_field_index(metric.name)
            drift = drift.set_column(index, drift.schema.field(index), _as(result.column(1), drift.schema.field(index)))
    finally:
        con.unregister("d")
        con.unregister("m")
    return drift


def _applies(metric, column_expr: str) -> str:
    names = ", ".join("'" + c.replace("'", "''") + "'" for c in metric.input_columns)
    return f"{column_expr} IN ({names})"


def _fetch(con, sql: str) -> list[tuple]:
    try:
        return con.execute(sql).fetchall()
    except duckdb.Error as exc:
        raise InvalidParameter(f"A custom metric could not be computed: {str(exc).splitlines()[0]}") from None


def _table(con, sql: str) -> pa.Table:
    try:
        return con.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        raise InvalidParameter(f"A custom metric could not be computed: {str(exc).splitlines()[0]}") from None


def _as(values, f: pa.Field) -> pa.ChunkedArray:
    column = values.column(0) if isinstance(values, pa.Table) else values
    return pc.cast(column, f.type)
