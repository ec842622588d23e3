"""Which columns a monitor profiles, and as what kind of value.

- numeric (integers, floats, decimals): moments, min/max, zeros, NaNs, quantiles (t-digest), distinct
  count (HLL); numeric drift.
- categorical (strings, booleans): exact value counts up to a cap (frequent items, distinct count,
  categorical drift), string lengths, HLL for distinct counts beyond the cap.
- temporal (dates, timestamps): counts, nulls and distinct count; no value drift.
Binary and nested columns (structs, lists, maps) are not profiled, nor `spec.excluded_columns`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from lakeforge.lake.types import type_text
from lakeforge.monitoring.spec import MonitorSpec

NUMERIC, CATEGORICAL, TEMPORAL = "numeric", "categorical", "temporal"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str         # numeric | categorical | temporal
    data_type: str    # Spark's name: double, bigint, string, boolean, timestamp, ...
    arrow: pa.DataType

    @property
    def is_string(self) -> bool:
        return self.kind == CATEGORICAL and not pa.types.is_boolean(self.arrow)


def kind_of(t: pa.DataType) -> str | None:
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return NUMERIC
    if pa.types.is_boolean(t) or pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return CATEGORICAL
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return TEMPORAL
    return None


def profiled_columns(spec: MonitorSpec, schema: pa.Schema) -> list[Column]:
    """The columns of `schema` the monitor profiles, in schema order."""
    excluded = set(spec.excluded_columns)
    columns = []
    for f in schema:
        kind = kind_of(f.type)
        if kind is None or f.name in excluded:
            continue
        columns.append(Column(f.name, kind, type_text(f.type), f.type))
    return columns
