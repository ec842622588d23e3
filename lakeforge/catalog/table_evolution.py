"""Schema evolution rules for table writes: how the columns of incoming data meet a table's columns.

Columns are matched by name (case-insensitively), never by position.

- Same columns, any order: written as they are.
- A table column missing from the data: filled with nulls if nullable; refused if NOT NULL.
- Types: the same type is cast to the table's exact Arrow type (string/large_string/string_view,
  timestamp units: Delta stores microseconds, and a cast that would lose a value fails). Safe widening
  is cast: tinyint -> smallint -> int -> bigint, tinyint/smallint/int -> double, float -> double,
  unsigned ints to a signed int that holds them, decimal(p,s) -> decimal(p',s') keeping the integer
  digits and the scale. Anything else (narrowing, string <-> number, date <-> timestamp, timestamp
  with <-> without time zone, changed nested types) is refused, naming the column and both types.
- Nulls in a NOT NULL column are refused (checked batch by batch, so it may fail mid-stream).
- A column the table lacks: refused, unless schema_mode=merge (then added at the end, nullable).
- mode=overwrite keeps the table's schema (the rules above apply); with schema_mode=overwrite the
  data's schema replaces it. schema_mode=overwrite needs mode=overwrite.

A new table takes the data's schema after `storable` (the closest type Delta can hold).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from lakeforge.errors import InvalidParameter
from lakeforge.lake.types import type_text

MODES = ("append", "overwrite")
SCHEMA_MODES = ("merge", "overwrite")
_INT_WIDTH = {pa.int8(): 8, pa.int16(): 16, pa.int32(): 32, pa.int64(): 64}
_UINT_WIDTH = {pa.uint8(): 8, pa.uint16(): 16, pa.uint32(): 32, pa.uint64(): 64}


def storable(t: pa.DataType, column: str) -> pa.DataType:
    """The Delta-storable type for a column of a new table or a merged column."""
    if pa.types.is_dictionary(t):
        return storable(t.value_type, column)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t) or pa.types.is_fixed_size_binary(t):
        return pa.binary()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz="UTC" if t.tz else None)
    if pa.types.is_date(t):
        return pa.date32()
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_unsigned_integer(t):
        width = _UINT_WIDTH[t]
        if width == 64:
            raise InvalidParameter(f"Column '{column}' is uint64, which no Delta type holds; cast it to int64")
        return {8: pa.int16(), 16: pa.int32(), 32: pa.int64()}[width]
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t) \
            or pa.types.is_large_list_view(t) or pa.types.is_fixed_size_list(t):
        return pa.list_(storable(t.value_type, column))
    if pa.types.is_map(t):
        return pa.map_(storable(t.key_type, column), storable(t.item_type, column))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, storable(f.type, column), f.nullable) for f in t])
    if pa.types.is_null(t):
        raise InvalidParameter(f"Column '{column}' has no type (all values are null); give it a type")
    if pa.types.is_time(t) or pa.types.is_duration(t) or pa.types.is_interval(t):
        raise InvalidParameter(f"Column '{column}' is {t}, which Delta tables cannot store")
    type_text(t)  # raises for anything else Delta cannot hold
    return t


def storable_schema(schema: pa.Schema) -> pa.Schema:
    check_unique(schema)
    return pa.schema([pa.field(f.name, storable(f.type, f.name), f.nullable) for f in schema])


def check_unique(schema: pa.Schema) -> None:
    seen = set()
    for name in schema.names:
        if name.lower() in seen:
            raise InvalidParameter(f"Column '{name}' appears more than once in the data")
        seen.add(name.lower())


def widens(source: pa.DataType, target: pa.DataType) -> bool:
    """True when every value of `source` is exactly a value of `target`."""
    if source in _INT_WIDTH and target in _INT_WIDTH:
        return _INT_WIDTH[source] <= _INT_WIDTH[target]
    if source in _UINT_WIDTH and target in _INT_WIDTH:
        return _UINT_WIDTH[source] < _INT_WIDTH[target]
    if pa.types.is_floating(target) and target.bit_width == 64:
        return (source in _INT_WIDTH and _INT_WIDTH[source] <= 32) or (
            source in _UINT_WIDTH and _UINT_WIDTH[source] <= 16) or pa.types.is_floating(source)
    if pa.types.is_float32(target):
        return pa.types.is_float16(source) or pa.types.is_float32(source)
    if pa.types.is_decimal(source) and pa.types.is_decimal(target):
        return (target.scale >= source.scale
                and target.precision - target.scale >= source.precision - source.scale)
    return False


def compatible(source: pa.DataType, target: pa.DataType) -> bool:
    """Data of type `source` may go into a column of type `target` (by the rules above)."""
    if pa.types.is_dictionary(source):
        source = source.value_type
    if pa.types.is_null(source):
        return True
    try:
        same = type_text(source) == type_text(target)
    except InvalidParameter:
        return False
    if same and not pa.types.is_unsigned_integer(source):
        return True
    return widens(source, target)


@dataclass(frozen=True)
class WritePlan:
    """What a write does to a table: the schema its batches are cast to and whether it changes."""

    target: pa.Schema  # the table's schema after the write; every batch is cast to it
    sources: dict[str, str]  # target column -> incoming column name (absent: filled with nulls)
    schema_changed: bool
    delta_schema_mode: str | None  # passed to write_deltalake

    def batches(self, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        for batch in reader:
            yield self.cast(batch)

    def cast(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = []
        for field in self.target:
            source = self.sources.get(field.name)
            if source is None:
                arrays.append(pa.nulls(batch.num_rows, field.type))
                continue
            column = batch.column(source)
            if pa.types.is_dictionary(column.type):
                column = column.dictionary_decode()
            if column.type != field.type:
                try:
                    column = pc.cast(column, field.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                    raise InvalidParameter(f"Column '{field.name}': cannot store the value as "
                                           f"{type_text(field.type)}: {_first_line(e)}") from None
            if not field.nullable and column.null_count:
                raise InvalidParameter(f"Column '{field.name}' is NOT NULL but the data has "
                                       f"{column.null_count} null value(s)")
            arrays.append(column)
        return pa.RecordBatch.from_arrays(arrays, schema=self.target)


def plan_write(table: pa.Schema, incoming: pa.Schema, mode: str, schema_mode: str | None) -> WritePlan:
    """Check the incoming schema against the table's by the module's rules; raise naming the column."""
    check_unique(incoming)
    if schema_mode == "overwrite":
        if mode != "overwrite":
            raise InvalidParameter("schema_mode=overwrite replaces the table's schema and needs mode=overwrite")
        target = storable_schema(incoming)
        return WritePlan(target, {f.name: f.name for f in target}, _differs(table, target), "overwrite")
    by_name = {name.lower(): name for name in incoming.names}
    fields, sources = [], {}
    for field in table:
        source = by_name.pop(field.name.lower(), None)
        if source is None:
            if not field.nullable:
                raise InvalidParameter(f"Column '{field.name}' is NOT NULL but missing from the data")
        else:
            given = incoming.field(source).type
            if not compatible(given, field.type):
                raise InvalidParameter(f"Column '{field.name}' is {type_text(field.type)} in the table but "
                                       f"{_describe(given)} in the data; only safe widening is cast",
                                       details=[_column_detail(field.name, type_text(field.type),
                                                               _describe(given))])
            sources[field.name] = source
        fields.append(field)
    extra = [name for name in incoming.names if name.lower() in by_name]
    if extra and schema_mode != "merge":
        raise InvalidParameter(f"Column(s) {extra} are not in the table; write with schema_mode=merge to add them")
    for name in extra:
        fields.append(pa.field(name, storable(incoming.field(name).type, name), nullable=True))
        sources[name] = name
    return WritePlan(pa.schema(fields), sources, bool(extra), "merge" if extra else None)


def _column_detail(column: str, table_type: str, data_type: str) -> dict:
    return {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "INCOMPATIBLE_COLUMN_TYPE",
            "domain": "lakeforge", "metadata": {"column": column, "table_type": table_type, "data_type": data_type}}


def _differs(a: pa.Schema, b: pa.Schema) -> bool:
    return [(f.name, type_text(f.type), f.nullable) for f in a] != [(f.name, type_text(f.type), f.nullable) for f in b]


def _describe(t: pa.DataType) -> str:
    try:
        return type_text(t.value_type if pa.types.is_dictionary(t) else t)
    except InvalidParameter:
        return str(t)


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]
