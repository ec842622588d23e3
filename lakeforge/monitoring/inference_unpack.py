"""Unpacking a serving endpoint's payloads into flat inference-log rows: one row per scored input
row, with its features, prediction, model id and time. Pure functions over the payload table's
columns; reading and writing Delta tables is inference.py's job.

Requests: every JSON shape the scoring path accepts (`dataframe_split`, `dataframe_records`,
`instances`, `inputs`; records, rows, columns or scalars) and CSV bodies. Unnamed inputs become
columns `input_0`, `input_1`, ...; a feature whose name is one of the flat table's own columns is
renamed `input_<name>`. Responses: `{"predictions": [...]}` (or a bare list, or columns as
`{"name": [...]}`) with one prediction per input row.

A prediction that is a list of class probabilities (two or more numbers in [0, 1] summing to 1, as
`predict_proba` gives) becomes `prediction` = the index of the most likely class, and
`prediction_proba` = the probability of class 1 for two classes (a double: what a monitor's ROC AUC
and log loss read) or the whole list for more (`array<double>`). A one-entry object
(`{"label": "a"}`) is unwrapped; any other object or list is kept as JSON text.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

REQUEST_ID, DATABRICKS_REQUEST_ID, TIMESTAMP, MODEL_ID = "request_id", "databricks_request_id", "timestamp", "model_id"
PREDICTION, PREDICTION_PROBA, LABEL, STATUS_CODE = "prediction", "prediction_proba", "label", "status_code"
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
PROBA_TYPE = pa.list_(pa.float64())
KEY_FIELDS = [pa.field(REQUEST_ID, pa.string()), pa.field(DATABRICKS_REQUEST_ID, pa.string()),
              pa.field(TIMESTAMP, TIMESTAMP_TYPE), pa.field(MODEL_ID, pa.string())]
RESERVED = {REQUEST_ID, DATABRICKS_REQUEST_ID, TIMESTAMP, MODEL_ID, PREDICTION, PREDICTION_PROBA, LABEL, STATUS_CODE}
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
PAYLOAD_COLUMNS = ["databricks_request_id", "timestamp_ms", "status_code", "request", "response",
                   "served_entity_id", "request_metadata"]
_INT64 = (-(2**63), 2**63 - 1)
_EPOCH_MS = (-62_135_596_800_000, 253_402_300_799_999)  # 0001-01-01 to 9999-12-31, in ms
_BAD_NAME_CHARS = str.maketrans({c: "_" for c in " ,;{}()\n\t="})  # not allowed in Parquet/Delta names


class Malformed(ValueError):
    """A payload that cannot be unpacked: counted and skipped, never fatal."""


# ---- requests -------------------------------------------------------------------------------------
def request_rows(text: str | None) -> list[dict[str, Any]]:
    """The input rows of a logged request body, each a {feature: value} dict."""
    if text is None:
        raise Malformed("no request body")
    try:
        doc = json.loads(text)
    except ValueError:
        return _csv_rows(text)
    if not isinstance(doc, dict):
        raise Malformed("the request is not a JSON object")
    keys = [k for k in FORMATS if k in doc]
    if len(keys) != 1:
        raise Malformed(f"the request holds {len(keys)} of {', '.join(FORMATS)}")
    key, value = keys[0], doc[keys[0]]
    if key == "dataframe_split":
        return _split_rows(value)
    if key == "dataframe_records" and not (isinstance(value, list) and all(isinstance(r, dict) for r in value)):
        raise Malformed("dataframe_records is not a list of objects")
    return _tensor_rows(value)


def _split_rows(value: Any) -> list[dict]:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise Malformed("dataframe_split has no data list")
    data = [r if isinstance(r, list) else [r] for r in value["data"]]
    columns = value.get("columns")
    if columns is None:
        columns = [f"input_{i}" for i in range(len(data[0]) if data else 0)]
    if not isinstance(columns, list):
        raise Malformed("dataframe_split.columns is not a list")
    if any(len(r) != len(columns) for r in data):
        raise Malformed("dataframe_split rows and columns differ in length")
    names = [str(c) for c in columns]
    return [dict(zip(names, r)) for r in data]


def _tensor_rows(value: Any) -> list[dict]:
    """`instances` / `inputs` (and records): records, positional rows, one column of scalars, or columns."""
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        if not lists:  # one scalar per column: a single row
            return [dict(value)]
        if len(lists) != len(value) or len({len(v) for v in lists}) != 1:
            raise Malformed("inputs columns are not lists of one length")
        names = list(value)
        return [dict(zip(names, row)) for row in zip(*value.values())]
    if not isinstance(value, list):
        raise Malformed("instances/inputs is neither a list nor an object")
    if all(isinstance(r, dict) for r in value):
        return value
    if all(isinstance(r, list) for r in value):
        width = len(value[0]) if value else 0
        if any(len(r) != width for r in value):
            raise Malformed("instances rows differ in length")
        return [{f"input_{i}": v for i, v in enumerate(r)} for r in value]
    if any(isinstance(r, (dict, list)) for r in value):
        raise Malformed("instances mixes rows of different shapes")
    return [{"input_0": v} for v in value]


def _csv_rows(text: str) -> list[dict]:
    lines = list(csv.reader(io.StringIO(text)))
    if len(lines) < 2 or not lines[0]:
        raise Malformed("the request is neither JSON nor CSV with a header row")
    header = lines[0]
    if any(len(r) != len(header) for r in lines[1:] if r):
        raise Malformed("CSV rows differ in length from the header")
    return [{h: _csv_value(v) for h, v in zip(header, r)} for r in lines[1:] if r]


def _csv_value(text: str) -> Any:
    if text == "":
        return None
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


# ---- responses ------------------------------------------------------------------------------------
def response_predictions(text: str | None, rows: int) -> list[Any]:
    """One prediction per input row from a logged response body."""
    try:
        doc = json.loads(text) if text is not None else None
    except ValueError:
        raise Malformed("the response is not JSON") from None
    if isinstance(doc, dict) and "predictions" in doc:
        preds = doc["predictions"]
    elif isinstance(doc, list):
        preds = doc
    else:
        raise Malformed("the response has no predictions")
    if isinstance(preds, dict) and preds and all(isinstance(v, list) and len(v) == rows for v in preds.values()):
        names = list(preds)
        preds = [dict(zip(names, row)) for row in zip(*preds.values())]
    elif not isinstance(preds, list):
        preds = [preds]
    if len(preds) != rows:
        raise Malformed(f"{len(preds)} predictions for {rows} input rows")
    return preds


def split_prediction(value: Any) -> tuple[Any, float | list[float] | None]:
    """(prediction, class probabilities or None) of one row's prediction."""
    if isinstance(value, dict) and len(value) == 1:
        (inner,) = value.values()
        if not isinstance(inner, (dict, list)):
            return inner, None
    if isinstance(value, list) and _is_proba(value):
        best = float(max(range(len(value)), key=value.__getitem__))
        return best, float(value[1]) if len(value) == 2 else [float(p) for p in value]
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":")), None
    return value, None


def _is_proba(values: list) -> bool:
    if len(values) < 2 or not all(_number(v) and 0.0 <= v <= 1.0 for v in values):
        return False
    return abs(sum(values) - 1.0) <= 1e-4


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not (isinstance(v, float) and math.isnan(v))


# ---- payload rows -> flat rows --------------------------------------------------------------------
@dataclass
class Unpacked:
    rows: list[dict] = field(default_factory=list)  # request_id, ..., "features": {...}, prediction, ...
    malformed: int = 0         # successful requests whose payload could not be unpacked
    failed_requests: int = 0   # requests answered with a status other than 200 (not unpacked)


def feature_name(name: str) -> str:
    name = name.translate(_BAD_NAME_CHARS) or "input"
    return f"input_{name}" if name.lower() in RESERVED else name


def unpack(payload: list[dict], model_id: Callable[[str | None, dict], str | None],
           timestamp_feature: str | None = None) -> Unpacked:
    """Flat rows of payload rows (dicts of PAYLOAD_COLUMNS). `model_id(served_entity_id, metadata)`
    names the model that answered. With `timestamp_feature`, that request column (the event time: an
    ISO-8601 string or epoch milliseconds) becomes the row's timestamp instead of the request's time,
    and is not kept as a feature; a row without a readable value keeps the request's time."""
    out = Unpacked()
    for p in payload:
        if p.get("status_code") != 200:
            out.failed_requests += 1
            continue
        try:
            features = request_rows(p.get("request"))
            predictions = response_predictions(p.get("response"), len(features))
            rid = p["databricks_request_id"]
            if not rid or p.get("timestamp_ms") is None:
                raise Malformed("no request id or time")
        except (Malformed, TypeError, KeyError, RecursionError):
            out.malformed += 1
            continue
        metadata = _as_dict(p.get("request_metadata"))
        model = model_id(p.get("served_entity_id"), metadata)
        for i, (row, value) in enumerate(zip(features, predictions)):
            prediction, proba = split_prediction(value)
            event_ms = _epoch_ms(row.pop(timestamp_feature, None)) if timestamp_feature else None
            out.rows.append({
                REQUEST_ID: rid if len(features) == 1 else f"{rid}#{i}", DATABRICKS_REQUEST_ID: rid,
                "timestamp_ms": p["timestamp_ms"] if event_ms is None else event_ms, MODEL_ID: model,
                "features": {feature_name(str(k)): v for k, v in row.items()},
                PREDICTION: prediction, PREDICTION_PROBA: proba, STATUS_CODE: p["status_code"]})
    return out


def _epoch_ms(value: Any) -> int | None:
    """An event time as epoch milliseconds: ISO-8601 text (a naive time is UTC) or a number of ms."""
    if _number(value):
        ms = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        ms = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000
    else:
        return None
    # years 1 to 9999, as a timestamp column holds them; anything else (infinity too) is unreadable
    return int(ms) if _EPOCH_MS[0] <= ms <= _EPOCH_MS[1] else None


def _as_dict(value: Any) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):  # Arrow maps read back as (key, value) pairs
        return dict(value)
    return {}


# ---- types ----------------------------------------------------------------------------------------
def feature_type(values: list) -> pa.DataType | None:
    """numbers -> double (bigint if all integers), strings -> string, booleans -> boolean, anything
    else (mixed kinds, lists, objects) -> string. None when no value is set yet."""
    seen = [v for v in values if v is not None]
    if not seen:
        return None
    if all(isinstance(v, bool) for v in seen):
        return pa.bool_()
    if all(isinstance(v, int) and not isinstance(v, bool) and _INT64[0] <= v <= _INT64[1] for v in seen):
        return pa.int64()
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seen):
        return pa.float64()
    return pa.string()


def prediction_type(values: list) -> pa.DataType | None:
    """double for numbers and booleans, string otherwise."""
    seen = [v for v in values if v is not None]
    if not seen:
        return None
    return pa.float64() if all(isinstance(v, (int, float)) for v in seen) else pa.string()


def convert(values: list, to: pa.DataType) -> tuple[pa.Array, int]:
    """`values` as an array of type `to`; values that do not fit become null. Returns (array, nulled)."""
    if _arrow_converts(values, to):  # Arrow's own conversion, when it follows the rules below (fast)
        try:
            return pa.array(values, type=to), 0
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
    out, nulled = [], 0
    for v in values:
        try:
            out.append(None if v is None else _convert_one(v, to))
        except (ValueError, TypeError, OverflowError):
            out.append(None)
            nulled += 1
    return pa.array(out, type=to), nulled


def _arrow_converts(values: list, to: pa.DataType) -> bool:
    """Whether pa.array(values, to) gives what _convert_one would, or fails: not for integers from
    fractions (Arrow truncates them) nor for lists (Arrow reads booleans as numbers there)."""
    if pa.types.is_floating(to) or pa.types.is_string(to) or pa.types.is_boolean(to):
        return True
    return pa.types.is_integer(to) and all(v is None or type(v) is int for v in values)


def _convert_one(v: Any, to: pa.DataType) -> Any:
    if pa.types.is_string(to) or pa.types.is_large_string(to):
        return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    if pa.types.is_floating(to):
        if isinstance(v, (int, float, str)):  # booleans count as 0/1; numeric text is read as a number
            return float(v)
        raise TypeError
    if pa.types.is_integer(to):
        number = float(v) if isinstance(v, str) else v
        if isinstance(number, float) and number.is_integer():
            number = int(number)
        if not isinstance(number, int) or not _INT64[0] <= number <= _INT64[1]:
            raise ValueError  # a fraction, or not a number
        return int(number)
    if pa.types.is_boolean(to):
        if isinstance(v, bool):
            return v
        raise TypeError
    if pa.types.is_list(to) and pa.types.is_floating(to.value_type):
        if isinstance(v, list) and all(_number(x) for x in v):
            return [float(x) for x in v]
        raise TypeError
    raise TypeError


def flat_table(rows: list[dict], existing: pa.Schema | None, labels: list | None = None) -> tuple[pa.Table, int]:
    """The flat table of unpacked rows. Columns already in `existing` keep its type and order; new
    ones are added after them (keys, features, prediction, prediction_proba, label, status code when
    there is no existing schema). Returns (table, values nulled because they did not fit their column)."""
    have = {f.name: f.type for f in existing} if existing is not None else {}
    features: dict[str, list] = {}
    for i, r in enumerate(rows):
        for name, value in r["features"].items():
            column = features.get(name)
            if column is None:
                column = features[name] = [None] * len(rows)
            column[i] = value
    predictions = [r[PREDICTION] for r in rows]
    probas = [r[PREDICTION_PROBA] for r in rows]
    columns: dict[str, tuple[pa.DataType, Any]] = {
        REQUEST_ID: (pa.string(), [r[REQUEST_ID] for r in rows]),
        DATABRICKS_REQUEST_ID: (pa.string(), [r[DATABRICKS_REQUEST_ID] for r in rows]),
        TIMESTAMP: (TIMESTAMP_TYPE, None),
        MODEL_ID: (pa.string(), [r[MODEL_ID] for r in rows]),
    }
    for name, values in features.items():
        kind = have.get(name) or feature_type(values)
        if kind is not None:  # a feature never set yet gets its column once it has a value
            columns[name] = (kind, values)
    kind = have.get(PREDICTION) or prediction_type(predictions) or pa.float64()
    columns[PREDICTION] = (kind, predictions)
    if PREDICTION_PROBA in have or any(p is not None for p in probas):
        multiclass = any(isinstance(p, list) for p in probas)
        columns[PREDICTION_PROBA] = (PROBA_TYPE if multiclass else pa.float64(), probas)
    columns[LABEL] = (have.get(LABEL) or kind, labels if labels is not None else [None] * len(rows))
    columns[STATUS_CODE] = (pa.int32(), [r[STATUS_CODE] for r in rows])

    arrays, nulled = {}, 0
    ms = pa.array([r["timestamp_ms"] for r in rows], pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    for name, (kind, values) in columns.items():
        if name == TIMESTAMP:
            arrays[name] = ms.cast(TIMESTAMP_TYPE)
            continue
        arrays[name], bad = convert(values, have.get(name, kind))
        nulled += bad
    names = list(have) + [n for n in arrays if n not in have]
    fields = [pa.field(n, have[n] if n in have else arrays[n].type) for n in names]
    data = [arrays[n] if n in arrays else pa.nulls(len(rows), have[n]) for n in names]
    return pa.Table.from_arrays(data, schema=pa.schema(fields)), nulled


__all__ = ["Malformed", "Unpacked", "convert", "feature_type", "flat_table", "prediction_type", "request_rows",
           "response_predictions", "split_prediction", "unpack"]
