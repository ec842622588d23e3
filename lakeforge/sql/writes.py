"""Writing query results into Delta tables: the Delta-compatible form of a result, and INSERT's
column alignment and type checks."""

from __future__ import annotations

import pyarrow as pa

from lakeforge.errors import InvalidParameter
from lakeforge.lake.types import type_text

_INT_WIDTH = {pa.int8(): 8, pa.int16(): 16, pa.int32(): 32, pa.int64(): 64}


def delta_type(t: pa.DataType) -> pa.DataType:
    """A type Delta can store for a DuckDB result type (unsigned ints, views, tz variants, NULL)."""
    if pa.types.is_unsigned_integer(t):
        return {8: pa.int16(), 16: pa.int32(), 32: pa.int64()}.get(t.bit_width, pa.decimal128(20, 0))
    if pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_null(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz="UTC" if t.tz else None)
    if pa.types.is_decimal(t) and t.precision > 38:
        return pa.float64()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return pa.list_(delta_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, delta_type(f.type)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(delta_type(t.key_type), delta_type(t.item_type))
    if pa.types.is_dictionary(t):
        return delta_type(t.value_type)
    return t


def for_delta(table: pa.Table) -> pa.Table:
    """The result with column types Delta accepts; a type with no Delta equivalent is a 400."""
    schema = delta_schema(table.schema)
    return table if schema == table.schema else table.cast(schema)


def delta_schema(schema: pa.Schema) -> pa.Schema:
    """The Delta form of a result schema; duplicate names or types Delta cannot store are a 400."""
    seen: set[str] = set()
    fields = []
    for f in schema:
        if f.name.lower() in seen:
            raise InvalidParameter(f"Column name '{f.name}' appears more than once; give each column its own alias")
        seen.add(f.name.lower())
        t = delta_type(f.type)
        try:
            type_text(t)
        except InvalidParameter:
            raise InvalidParameter(f"Column '{f.name}' has type {f.type}, which a Delta table cannot store") from None
        fields.append(pa.field(f.name, t, True))
    return pa.schema(fields)


def _compatible(src: pa.DataType, dst: pa.DataType) -> bool:
    """Casts INSERT allows without losing data: same type, widening numbers, NULL into anything."""
    src = delta_type(src)
    if src == dst or pa.types.is_null(src):
        return True
    if pa.types.is_integer(src):
        if pa.types.is_integer(dst):
            return _INT_WIDTH.get(src, 64) <= _INT_WIDTH.get(dst, 64)
        return pa.types.is_floating(dst) or pa.types.is_decimal(dst)
    if pa.types.is_floating(src):
        return pa.types.is_floating(dst) and dst.bit_width >= src.bit_width
    if pa.types.is_decimal(src):
        return (pa.types.is_decimal(dst) and dst.scale >= src.scale
                and dst.precision - dst.scale >= src.precision - src.scale) or pa.types.is_floating(dst)
    if pa.types.is_timestamp(src) and pa.types.is_timestamp(dst):
        return True
    if pa.types.is_date(src) and pa.types.is_timestamp(dst):
        return True
    return type_text(src) == type_text(dst)


def align_for_insert(source: pa.Schema, target: pa.Schema, columns: list[str] | None, table: str) -> list[tuple[int | None, pa.Field]]:
    """For each target column: which source column fills it (None: NULL).

    With a column list, source columns fill the listed columns in order. Without one, columns
    match by name when every source column names a target column, else by position (VALUES)."""
    by_name = {f.name.lower(): i for i, f in enumerate(target)}
    if columns is not None:
        unknown = [c for c in columns if c.lower() not in by_name]
        if unknown:
            raise InvalidParameter(f"Column(s) {unknown} do not exist in table '{table}'")
        wanted = [c.lower() for c in columns]
    elif all(n.lower() in by_name for n in source.names) and len({n.lower() for n in source.names}) == len(source):
        wanted = [n.lower() for n in source.names]
    else:
        wanted = [f.name.lower() for f in target][: len(source)]
    if len(wanted) != len(source):
        raise InvalidParameter(f"INSERT INTO '{table}' gives {len(source)} value(s) for {len(wanted)} column(s)")
    if len(source) > len(target):
        raise InvalidParameter(f"INSERT INTO '{table}' gives {len(source)} columns but the table has {len(target)}")
    fill = {w: i for i, w in enumerate(wanted)}
    out = []
    for f in target:
        i = fill.get(f.name.lower())
        if i is None:
            if not f.nullable:
                raise InvalidParameter(f"Column '{f.name}' of '{table}' is NOT NULL and gets no value")
        elif not _compatible(source.field(i).type, f.type):
            raise InvalidParameter(f"Column '{f.name}' of '{table}' is {type_text(f.type)} but the query gives "
                                   f"{source.field(i).type}")
        out.append((i, f))
    return out


def conform(data: pa.Table, mapping: list[tuple[int | None, pa.Field]]) -> pa.Table:
    """The query's rows in the target's column order and types."""
    arrays = []
    for i, f in mapping:
        if i is None:
            arrays.append(pa.nulls(data.num_rows, f.type))
        else:
            col = data.column(i)
            arrays.append(col if col.type == f.type else col.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(mapping_fields(mapping)))


def mapping_fields(mapping) -> list[pa.Field]:
    return [f for _, f in mapping]
