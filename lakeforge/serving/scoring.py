"""MLflow's scoring protocol as pure functions: parse a request body, check it against the model's
column signature, encode predictions and errors.

For the common case, a signature of named numeric or boolean columns, the request becomes a
`Frame`: the signature's columns, already converted to their numpy types, with no pandas object
built yet. Frames of concurrent requests are cheap to concatenate, so the worker builds one
DataFrame per batch and calls the flavor's predict directly instead of letting `pyfunc.predict`
enforce the schema again (about 3 ms a call). Every other model (tensor or string signatures, type
hints, no signature) gets the data exactly as MLflow's own scoring server parses it.
"""

from __future__ import annotations

import base64
import datetime
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd

JSON = "application/json"
CSV = "text/csv"
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
# Databricks clients add these next to the data; they mean nothing to the model.
_IGNORED_KEYS = frozenset({"params", "client_request_id", "usage_context"})
_NUMPY_TYPES = {"double": np.float64, "float": np.float32, "long": np.int64, "integer": np.int32,
                "boolean": np.bool_}
_KIND_NAMES = {"f": "double", "i": "long", "u": "long", "b": "boolean", "U": "string", "S": "binary"}


class ScoringError(Exception):
    """A request the model cannot score; carries the HTTP status and the error code."""

    def __init__(self, status: int, error_code: str, message: str):
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


def bad_request(message: str) -> ScoringError:
    return ScoringError(400, "BAD_REQUEST", message)


def invalid_value(message: str) -> ScoringError:
    return ScoringError(400, "INVALID_PARAMETER_VALUE", message)


def error_body(error_code: str, message: str) -> bytes:
    return orjson.dumps({"error_code": error_code, "message": message})


@dataclass(frozen=True)
class ColumnSchema:
    """The named scalar columns of a signature, with their numpy types (the fast path's input)."""

    names: tuple[str, ...]
    types: tuple[str, ...]
    dtypes: tuple[np.dtype, ...]
    required: tuple[bool, ...]

    @property
    def uniform(self) -> np.dtype | None:
        # One dtype for every column: the whole request converts with one numpy call.
        return self.dtypes[0] if self.dtypes and all(d == self.dtypes[0] for d in self.dtypes) else None


def column_schema(input_schema: Any) -> ColumnSchema | None:
    """The fast-path view of an MLflow input schema, or None when the schema needs MLflow's own
    enforcement (tensors, unnamed columns, strings, dates, arrays, objects)."""
    if input_schema is None or input_schema.is_tensor_spec() or not input_schema.has_input_names():
        return None
    names, types, required = [], [], []
    for spec in input_schema.inputs:
        type_name = getattr(spec.type, "name", None)
        if type_name not in _NUMPY_TYPES:
            return None
        names.append(spec.name)
        types.append(type_name)
        required.append(getattr(spec, "required", True))
    if not names or len(set(names)) != len(names):
        return None
    return ColumnSchema(tuple(names), tuple(types), tuple(np.dtype(_NUMPY_TYPES[t]) for t in types),
                        tuple(required))


@dataclass
class Frame:
    """Validated input rows: the signature's columns present in the request, in signature order,
    as one 2-D block (all columns of one dtype) or one array per column."""

    columns: tuple[str, ...]
    rows: int
    block: np.ndarray | None = None
    arrays: list[np.ndarray] | None = None
    index: list | None = None

    def array(self) -> np.ndarray:
        # Column-major, as the values of the DataFrame MLflow's schema enforcement builds column by
        # column: same layout, same BLAS summation order, bit-identical predictions.
        return np.asfortranarray(self.block)

    def to_dataframe(self) -> pd.DataFrame:
        if self.block is not None:
            return pd.DataFrame(self.array(), columns=list(self.columns), index=self.index, copy=False)
        return pd.DataFrame(dict(zip(self.columns, self.arrays)), index=self.index)


def merge_frames(frames: list[Frame]) -> Frame:
    """One frame holding the rows of all `frames` (same columns), in order."""
    index = None
    if any(f.index is not None for f in frames):
        index = [i for f in frames for i in (f.index if f.index is not None else range(f.rows))]
    rows = sum(f.rows for f in frames)
    if frames[0].block is not None:
        return Frame(frames[0].columns, rows, block=np.concatenate([f.block for f in frames]), index=index)
    arrays = [np.concatenate([f.arrays[i] for f in frames]) for i in range(len(frames[0].columns))]
    return Frame(frames[0].columns, rows, arrays=arrays, index=index)


# ---- requests --------------------------------------------------------------------------------------
def parse_content_type(content_type: str) -> str:
    """The media type, lower-cased; 400 naming the problem for anything but JSON or CSV in UTF-8
    (MLflow's scoring server answers 415; Lakeforge keeps one status for every malformed request)."""
    mime, *parameters = (part.strip() for part in (content_type or "").split(";"))
    mime = mime.lower()
    if mime not in (JSON, CSV):
        raise ScoringError(400, "BAD_REQUEST", f"Content type '{content_type}' is not supported; "
                                               f"send '{JSON}' or '{CSV}'")
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        if key.strip().lower() != "charset" or value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise ScoringError(400, "BAD_REQUEST", f"Content type '{content_type}' is not supported; "
                                                   "the only parameter accepted is charset=utf-8")
    return mime


def parse_json(body: bytes) -> tuple[str, Any, dict | None]:
    """(format key, its value, params) of a JSON scoring request."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise bad_request(f"Malformed JSON body: {e}") from None
    if not isinstance(doc, dict):
        raise bad_request(f"The JSON body must be an object with exactly one of {', '.join(FORMATS)}; "
                          f"got {type(doc).__name__}")
    keys = [k for k in FORMATS if k in doc]
    unknown = [k for k in doc if k not in FORMATS and k not in _IGNORED_KEYS]
    if len(keys) != 1 or unknown:
        found = f"got {', '.join(map(repr, doc)) or 'no fields'}"
        raise bad_request(f"The JSON body must hold exactly one of {', '.join(FORMATS)} "
                          f"(and optionally params); {found}")
    params = doc.get("params")
    if params is not None and not isinstance(params, dict):
        raise bad_request(f"'params' must be a JSON object, got {type(params).__name__}")
    return keys[0], doc[keys[0]], params


def parse_csv(body: bytes) -> pd.DataFrame:
    try:
        return pd.read_csv(io.BytesIO(body))
    except Exception as e:  # pandas raises a different class for each way a CSV can be broken
        raise bad_request(f"Malformed CSV body (a header row and then one line per row): {e}") from None


def frame_from_json(schema: ColumnSchema, key: str, value: Any) -> Frame | None:
    """A Frame for the JSON shapes that name their columns; None for the shapes (unnamed
    `instances` or `inputs`) that MLflow's own parser handles."""
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value or set(value) - {"columns", "data", "index"}:
            raise bad_request("dataframe_split must be an object with 'data' and optionally 'columns' and "
                              "'index' (pandas 'split' orient)")
        return _frame_from_rows(schema, value.get("columns"), value["data"], value.get("index"))
    if (key in ("dataframe_records", "instances", "inputs") and isinstance(value, list)
            and all(isinstance(r, dict) for r in value)):
        return _frame_from_records(schema, value)
    if key == "dataframe_records":
        raise bad_request("dataframe_records must be a list of objects, one per row")
    if key == "inputs" and isinstance(value, dict):
        return _frame_from_columns(schema, value)
    return None


def frame_from_dataframe(schema: ColumnSchema, df: pd.DataFrame) -> Frame:
    if df.columns.has_duplicates:
        raise bad_request("The request names a column more than once")
    present = [i for i, n in enumerate(schema.names) if n in df.columns]
    _check_missing(schema, present)
    uniform = schema.uniform
    if uniform is not None and uniform.kind == "f":
        try:
            return Frame(_names(schema, present), len(df),
                         block=df[list(_names(schema, present))].to_numpy(dtype=uniform))
        except (ValueError, TypeError):
            pass  # the per-column conversion below names the offending column
    arrays = [_convert(schema.names[i], df[schema.names[i]].to_numpy(), schema, i) for i in present]
    return _frame(schema, present, arrays, len(df), None)


def _frame_from_rows(schema: ColumnSchema, columns: Any, data: Any, index: Any) -> Frame:
    if not isinstance(data, list):
        raise bad_request("dataframe_split.data must be a list of rows")
    if columns is None:
        columns = list(range(len(data[0]) if data and isinstance(data[0], list) else 1))
    if not isinstance(columns, list) or len(set(map(str, columns))) != len(columns):
        raise bad_request("dataframe_split.columns must be a list of distinct column names")
    if len(columns) == 1 and any(not isinstance(r, list) for r in data):
        data = [r if isinstance(r, list) else [r] for r in data]  # pandas reads scalars as one-column rows
    if any(not isinstance(r, list) or len(r) != len(columns) for r in data):
        raise bad_request(f"dataframe_split.data must be a list of rows of {len(columns)} values, "
                          "one per column")
    if index is not None and (not isinstance(index, list) or len(index) != len(data)):
        raise bad_request("dataframe_split.index must be a list with one entry per row")
    position = {c: i for i, c in enumerate(columns)}
    present = [i for i, n in enumerate(schema.names) if n in position]
    _check_missing(schema, present)
    picks = [position[schema.names[i]] for i in present]
    uniform = schema.uniform
    if uniform is not None and uniform.kind == "f" and data:
        try:
            block = np.asarray(data, dtype=uniform)
        except (ValueError, TypeError, OverflowError):
            block = None  # the per-column conversion below names the offending column
        if block is not None and block.ndim == 2:
            if picks != list(range(len(columns))):
                block = block[:, picks]
            return Frame(_names(schema, present), len(data), block=block, index=index)
    arrays = [_convert(schema.names[i], [r[p] for r in data], schema, i) for i, p in zip(present, picks)]
    return _frame(schema, present, arrays, len(data), index)


def _frame_from_records(schema: ColumnSchema, records: list[dict]) -> Frame:
    seen = set().union(*records) if records else set()
    present = [i for i, n in enumerate(schema.names) if n in seen]
    _check_missing(schema, present)
    names = _names(schema, present)
    # A record without a column is a missing value (NaN), as pandas reads records.
    return _frame_from_rows(schema, list(names), [[r.get(n) for n in names] for r in records], None)


def _frame_from_columns(schema: ColumnSchema, columns: dict) -> Frame:
    present = [i for i, n in enumerate(schema.names) if n in columns]
    _check_missing(schema, present)
    values = [columns[schema.names[i]] for i in present]
    if all(not isinstance(v, list) for v in values):
        values = [[v] for v in values]  # one scalar per column: a single row
    lengths = {len(v) if isinstance(v, list) else -1 for v in values}
    if len(lengths) > 1 or -1 in lengths:
        raise bad_request("inputs must map each column to a list of values of the same length")
    rows = lengths.pop() if lengths else 0
    arrays = [_convert(schema.names[i], v, schema, i) for i, v in zip(present, values)]
    return _frame(schema, present, arrays, rows, None)


def _frame(schema: ColumnSchema, present: list[int], arrays: list[np.ndarray], rows: int, index) -> Frame:
    if schema.uniform is not None:
        block = np.column_stack(arrays) if arrays else np.empty((rows, 0), dtype=schema.uniform)
        return Frame(_names(schema, present), rows, block=block, index=index)
    return Frame(_names(schema, present), rows, arrays=arrays, index=index)


def _names(schema: ColumnSchema, present: list[int]) -> tuple[str, ...]:
    return tuple(schema.names[i] for i in present)


def _check_missing(schema: ColumnSchema, present: list[int]) -> None:
    have = set(present)
    missing = [n for i, n in enumerate(schema.names) if schema.required[i] and i not in have]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise invalid_value(f"Missing column{plural} {', '.join(map(repr, missing))} required by the "
                            "model signature")


def _convert(name: str, values: Any, schema: ColumnSchema, i: int) -> np.ndarray:
    """One column converted to the signature's type. Like MLflow: numbers widen and numeric
    strings parse; unlike a bare astype, floats never truncate to integers and only booleans
    are booleans."""
    target = schema.dtypes[i]
    try:
        src = values if isinstance(values, np.ndarray) else np.asarray(values)
    except (ValueError, TypeError, OverflowError):
        src = np.asarray(values, dtype=object)
    if src.ndim != 1:
        raise invalid_value(f"Column {name!r} must hold one scalar value per row")
    try:
        if target.kind == "f" and src.dtype.kind in "fiubUO":
            return src.astype(target, copy=False)
        if target.kind == "i" and src.dtype.kind in "iubU":
            out = src.astype(target)
            if src.dtype.kind in "iu" and src.size and not np.array_equal(out, src):
                raise OverflowError
            return out
        if target.kind == "i" and src.dtype.kind == "f" and np.all(np.isfinite(src)) and np.all(src % 1 == 0):
            return src.astype(target)
        if target.kind == "b" and src.dtype.kind == "b":
            return src
    except (ValueError, TypeError, OverflowError):
        pass
    raise invalid_value(f"Column {name!r} has values of type {_type_name(src, target)} that cannot be "
                        f"converted to {schema.types[i]} as the model signature requires")


def _type_name(src: np.ndarray, target: np.dtype) -> str:
    if src.dtype.kind != "O":
        return _KIND_NAMES.get(src.dtype.kind, str(src.dtype))
    for v in src:  # name the first value that does not convert
        try:
            np.asarray([v], dtype=target)
        except (ValueError, TypeError, OverflowError):
            return "null" if v is None else {"str": "string", "float": "double", "int": "long",
                                             "bool": "boolean"}.get(type(v).__name__, type(v).__name__)
    return "object"


# ---- responses ------------------------------------------------------------------------------------
def jsonable(predictions: Any) -> Any:
    """What MLflow's scoring server makes of model output: DataFrames (and Series) as records."""
    if isinstance(predictions, pd.DataFrame):
        return predictions.to_dict(orient="records")
    if isinstance(predictions, pd.Series):
        return pd.DataFrame(predictions).to_dict(orient="records")
    return predictions


def encode_predictions(predictions: Any) -> bytes:
    return orjson.dumps({"predictions": jsonable(predictions)}, default=_default,
                        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def _default(o: Any) -> Any:
    if isinstance(o, np.ndarray):  # the arrays orjson does not take natively (objects, strides)
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (bytes, bytearray)):
        return base64.encodebytes(o).decode("ascii")
    if isinstance(o, (pd.Timestamp, datetime.date, datetime.time)):
        return o.isoformat()
    if o is pd.NA or o is pd.NaT:
        return None
    if isinstance(o, (pd.Series, pd.DataFrame)):
        return jsonable(o)
    if hasattr(o, "model_dump"):  # pydantic outputs of the GenAI model types
        return o.model_dump()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def split_predictions(predictions: Any, counts: list[int]) -> list[Any] | None:
    """The predictions of a merged batch cut back into one piece per request, or None when the
    output does not have one entry per input row."""
    total = sum(counts)
    if isinstance(predictions, (pd.DataFrame, pd.Series)):
        if len(predictions) != total:
            return None
        take = predictions.iloc.__getitem__
    elif isinstance(predictions, (np.ndarray, list)) and getattr(predictions, "ndim", 1) >= 1:
        if len(predictions) != total:
            return None
        take = predictions.__getitem__
    else:
        return None
    pieces, start = [], 0
    for n in counts:
        pieces.append(take(slice(start, start + n)))
        start += n
    return pieces
