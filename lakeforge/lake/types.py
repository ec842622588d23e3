"""Column types: Unity Catalog / Spark type text <-> Arrow, for Delta tables."""

from __future__ import annotations

import json
import re

import pyarrow as pa

from lakeforge.errors import InvalidParameter

_SIMPLE: dict[str, pa.DataType] = {
    "boolean": pa.bool_(), "bool": pa.bool_(),
    "tinyint": pa.int8(), "byte": pa.int8(),
    "smallint": pa.int16(), "short": pa.int16(),
    "int": pa.int32(), "integer": pa.int32(),
    "bigint": pa.int64(), "long": pa.int64(),
    "float": pa.float32(), "real": pa.float32(),
    "double": pa.float64(),
    "string": pa.string(), "varchar": pa.string(), "char": pa.string(),
    "binary": pa.binary(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "timestamp_ntz": pa.timestamp("us"),
}
# type_name enum values of the spec for each simple type text.
_TYPE_NAME = {
    "boolean": "BOOLEAN", "tinyint": "BYTE", "smallint": "SHORT", "int": "INT", "bigint": "LONG",
    "float": "FLOAT", "double": "DOUBLE", "string": "STRING", "binary": "BINARY", "date": "DATE",
    "timestamp": "TIMESTAMP", "timestamp_ntz": "TIMESTAMP_NTZ",
}
_CANONICAL = {"bool": "boolean", "byte": "tinyint", "short": "smallint", "integer": "int", "long": "bigint",
              "real": "float", "varchar": "string", "char": "string"}


def parse_type(text: str) -> pa.DataType:
    """Parse Spark DDL type text (`decimal(10,2)`, `array<struct<a:int>>`, `map<string,int>`)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidParameter("Column type is required")
    parser = _Parser(text)
    t = parser.type()
    parser.end()
    return t


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = re.findall(r"[A-Za-z_][A-Za-z0-9_]*|\d+|[<>(),:]|`[^`]*`", text)
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise InvalidParameter(f"Invalid column type '{self.text}'")
        self.i += 1
        return tok

    def end(self) -> None:
        if self.peek() is not None:
            raise InvalidParameter(f"Invalid column type '{self.text}'")

    def type(self) -> pa.DataType:
        word = self.take().lower()
        if word in ("varchar", "char") and self.peek() == "(":
            self.take("("), self.take(), self.take(")")
            return pa.string()
        if word in ("decimal", "dec", "numeric"):
            precision, scale = 10, 0
            if self.peek() == "(":
                self.take("(")
                precision = int(self.take())
                if self.peek() == ",":
                    self.take(",")
                    scale = int(self.take())
                self.take(")")
            if not 1 <= precision <= 38 or not 0 <= scale <= precision:
                raise InvalidParameter(f"Invalid decimal precision/scale in '{self.text}'")
            return pa.decimal128(precision, scale)
        if word == "array":
            self.take("<")
            inner = self.type()
            self.take(">")
            return pa.list_(inner)
        if word == "map":
            self.take("<")
            k = self.type()
            self.take(",")
            v = self.type()
            self.take(">")
            return pa.map_(k, v)
        if word == "struct":
            self.take("<")
            fields = []
            while self.peek() != ">":
                name = self.take().strip("`")
                if self.peek() == ":":
                    self.take(":")
                fields.append(pa.field(name, self.type()))
                if self.peek() == ",":
                    self.take(",")
            self.take(">")
            return pa.struct(fields)
        if word in _SIMPLE:
            return _SIMPLE[word]
        raise InvalidParameter(f"Unsupported column type '{self.text}'")


def type_text(t: pa.DataType) -> str:
    """Spark DDL text for an Arrow type (what Spark, DuckDB and clients parse)."""
    if pa.types.is_boolean(t):
        return "boolean"
    for text, arrow in (("tinyint", pa.int8()), ("smallint", pa.int16()), ("int", pa.int32()),
                        ("bigint", pa.int64()), ("float", pa.float32()), ("double", pa.float64()),
                        ("date", pa.date32())):
        if t == arrow:
            return text
    if pa.types.is_unsigned_integer(t):
        return "bigint"
    if pa.types.is_float16(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return "binary"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp" if t.tz else "timestamp_ntz"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return f"array<{type_text(t.value_type)}>"
    if pa.types.is_map(t):
        return f"map<{type_text(t.key_type)},{type_text(t.item_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{type_text(f.type)}" for f in t) + ">"
    if pa.types.is_null(t):
        return "void"
    raise InvalidParameter(f"Unsupported Arrow type {t}")


def type_name(text: str) -> str:
    base = re.split(r"[<(]", text.strip().lower(), maxsplit=1)[0]
    base = _CANONICAL.get(base, base)
    if base in ("decimal", "dec", "numeric"):
        return "DECIMAL"
    return {"array": "ARRAY", "map": "MAP", "struct": "STRUCT", "void": "NULL"}.get(base) or _TYPE_NAME.get(base, "STRING")


def _spark_json_type(t: pa.DataType):
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return {"type": "array", "elementType": _spark_json_type(t.value_type), "containsNull": True}
    if pa.types.is_map(t):
        return {"type": "map", "keyType": _spark_json_type(t.key_type), "valueType": _spark_json_type(t.item_type),
                "valueContainsNull": True}
    if pa.types.is_struct(t):
        return {"type": "struct", "fields": [_spark_json_field(f.name, f.type, True) for f in t]}
    text = type_text(t)
    return {"bigint": "long", "tinyint": "byte", "smallint": "short", "int": "integer"}.get(text, text)


def _spark_json_field(name: str, t: pa.DataType, nullable: bool) -> dict:
    return {"name": name, "type": _spark_json_type(t), "nullable": nullable, "metadata": {}}


def column_info(name: str, t: pa.DataType, position: int, nullable: bool = True, comment: str | None = None) -> dict:
    """A Unity Catalog ColumnInfo for one Arrow field (every field DuckDB and Spark read)."""
    text = type_text(t)
    precision = t.precision if pa.types.is_decimal(t) else 0
    scale = t.scale if pa.types.is_decimal(t) else 0
    info = {"name": name, "type_text": text, "type_name": type_name(text),
            "type_json": json.dumps(_spark_json_field(name, t, nullable)), "type_precision": precision,
            "type_scale": scale, "position": position, "nullable": nullable}
    if comment:
        info["comment"] = comment
    return info


def columns_from_schema(schema: pa.Schema) -> list[dict]:
    return [column_info(f.name, f.type, i, f.nullable) for i, f in enumerate(schema)]


def schema_from_columns(columns: list[dict]) -> pa.Schema:
    """Arrow schema for UC ColumnInfo dicts (type_text preferred, else type_name)."""
    if not columns:
        raise InvalidParameter("A table needs at least one column")
    fields = []
    seen = set()
    for i, col in enumerate(sorted(columns, key=lambda c: c.get("position", 0) if c.get("position") is not None else 0)):
        name = col.get("name")
        if not name or not isinstance(name, str):
            raise InvalidParameter(f"Column {i} has no name")
        if name.lower() in seen:
            raise InvalidParameter(f"Duplicate column name '{name}'")
        seen.add(name.lower())
        text = col.get("type_text") or _text_for_type_name(col.get("type_name"), col)
        try:
            t = parse_type(text)
        except InvalidParameter as e:
            raise InvalidParameter(f"Column '{name}': {e.message}") from None
        fields.append(pa.field(name, t, nullable=col.get("nullable", True) is not False))
    return pa.schema(fields)


def _text_for_type_name(name: str | None, col: dict) -> str:
    if not name:
        raise InvalidParameter(f"Column '{col.get('name')}' needs type_text or type_name")
    upper = str(name).upper()
    if upper == "DECIMAL":
        return f"decimal({col.get('type_precision') or 10},{col.get('type_scale') or 0})"
    inverse = {v: k for k, v in _TYPE_NAME.items()}
    if upper not in inverse:
        raise InvalidParameter(f"Column '{col.get('name')}': type_name {name} needs a type_text")
    return inverse[upper]
