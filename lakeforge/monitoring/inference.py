"""Inference logs: a serving endpoint's payload table unpacked into a flat, managed Delta table that
an `inference_log` monitor can watch, with labels that arrive later merged in by request id.

- The spec lives in the flat table's catalog properties (`lakeforge.inference_log.*`): no metadata
  table of its own. The table's owner is whoever registered it.
- Progress lives in the flat table's Delta log, as application transactions written in the same
  commit as the rows: `lakeforge.inference_log.payload.<payload table id>` holds the payload
  version unpacked so far, `lakeforge.inference_log.labels.<labels table id>` the labels version
  merged. A sync reads only payload versions after the recorded one (the change data feed's inserts;
  the whole snapshot when that cannot be read, then rows already present are dropped by request id).
- Each sync is at most one Delta commit: an append of the new rows, or one merge that inserts them
  and sets the labels that changed on older rows. A sync that fails commits nothing; a sync with
  nothing new commits nothing (the table keeps its version).
- Labels are set and changed, never removed: a label row deleted from the labels table leaves the
  flat table's label as it was (labels tables are often trimmed). Several labels for one request
  id: the one written last wins (by data file). A null label is no label.
- Access: registering needs CREATE_TABLE on the target's schema and SELECT on the payload and labels
  tables; a sync needs MODIFY on the flat table and SELECT on its sources, for the principal that
  runs it (the caller, or the monitor's owner before a refresh).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError

from lakeforge import names
from lakeforge.audit.context import note_securable
from lakeforge.catalog import securables as sec
from lakeforge.catalog.privileges import Kind, P
from lakeforge.catalog.storage import to_path
from lakeforge.catalog.store import SecurableRow
from lakeforge.catalog.table_data import PRINCIPAL_ID_KEY, PRINCIPAL_KEY
from lakeforge.catalog.tables import columns_of
from lakeforge.errors import (
    InvalidParameter,
    NotFound,
    ResourceAlreadyExists,
    ResourceConflict,
)
from lakeforge.identity.principal import Principal
from lakeforge.monitoring import inference_delta as delta
from lakeforge.monitoring import inference_unpack as unpack
from lakeforge.serving import config as serving_config
from lakeforge.serving.inference_log import PAYLOAD_SCHEMA

log = logging.getLogger(__name__)

PREFIX = "lakeforge.inference_log."
SOURCE, ENDPOINT = PREFIX + "source", PREFIX + "endpoint_name"
LABELS, LABELS_ID_COL, LABELS_LABEL_COL = PREFIX + "labels_table", PREFIX + "labels_request_id_col", \
    PREFIX + "labels_label_col"
TIMESTAMP_FEATURE = PREFIX + "timestamp_feature"
PAYLOAD_APP, LABELS_APP = PREFIX + "payload.", PREFIX + "labels."

_ATTEMPTS = 3  # syncs planned again after losing a commit race
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(table_id: str) -> threading.Lock:
    """One sync at a time per flat table in this process."""
    with _locks_guard:
        return _locks.setdefault(table_id, threading.Lock())


@dataclass(frozen=True)
class InferenceLogSpec:
    target_table: str
    source_table: str                       # the payload table
    endpoint_name: str | None = None
    labels_table: str | None = None
    labels_request_id_col: str = "request_id"
    labels_label_col: str = "label"
    timestamp_feature: str | None = None    # a request column holding the event time (else the request time)

    def properties(self) -> dict[str, str]:
        props = {SOURCE: self.source_table, ENDPOINT: self.endpoint_name, LABELS: self.labels_table,
                 LABELS_ID_COL: self.labels_request_id_col, LABELS_LABEL_COL: self.labels_label_col,
                 TIMESTAMP_FEATURE: self.timestamp_feature}
        return {k: v for k, v in props.items() if v}

    @classmethod
    def of(cls, target_table: str, properties: dict | None) -> InferenceLogSpec | None:
        props = properties or {}
        if not props.get(SOURCE):
            return None
        return cls(target_table, props[SOURCE], props.get(ENDPOINT), props.get(LABELS),
                   props.get(LABELS_ID_COL) or "request_id", props.get(LABELS_LABEL_COL) or "label",
                   props.get(TIMESTAMP_FEATURE) or None)

    def render(self) -> dict:
        return {"target_table": self.target_table, "payload_table": self.source_table,
                "endpoint_name": self.endpoint_name, "labels_table": self.labels_table,
                "labels_request_id_col": self.labels_request_id_col, "labels_label_col": self.labels_label_col,
                "timestamp_feature": self.timestamp_feature}


@dataclass(frozen=True)
class Source:
    """A table a sync reads: its catalog id, Delta location and column names."""

    id: str
    full_name: str
    path: Path
    columns: list[str]


@dataclass
class SyncPlan:
    new_rows: pa.Table            # flat rows to add (labels already joined)
    updates: pa.Table             # request_id, label of older rows whose label changes
    transactions: list[Transaction]
    replace: bool                 # the flat table has no rows yet: its schema follows the new rows
    counts: dict[str, int]


class InferenceLogService:
    def __init__(self, catalog, tables, serving):
        self.catalog = catalog
        self.db = catalog.db
        self.tables = tables
        self.serving = serving

    @classmethod
    def of(cls, ctx) -> InferenceLogService:
        return cls(ctx.catalog, ctx.tables, ctx.serving)

    # ---- register ------------------------------------------------------------------------------
    def register(self, caller: Principal, body: dict) -> dict:
        target = _name(body.get("target_table"), "target_table")
        note_securable(target)
        endpoint, payload = body.get("endpoint_name"), body.get("payload_table")
        if bool(endpoint) == bool(payload):
            raise InvalidParameter("Give exactly one of endpoint_name and payload_table")
        if endpoint:
            payload = self._payload_table_of(caller, _text(endpoint, "endpoint_name"))
        labels = _name(body["labels_table"], "labels_table") if body.get("labels_table") else None
        spec = InferenceLogSpec(target, _name(payload, "payload_table"), endpoint or None, labels,
                                _text(body.get("labels_request_id_col") or "request_id", "labels_request_id_col"),
                                _text(body.get("labels_label_col") or "label", "labels_label_col"),
                                _text(body["timestamp_feature"], "timestamp_feature")
                                if body.get("timestamp_feature") is not None else None)
        fn = names.parse(target, 3, "target_table")
        with self.db.read() as s:
            self.catalog.check(s, caller, P.CREATE_TABLE, sec.get_parent_row(s, Kind.TABLE, fn.catalog, fn.schema))
            if _source_row(s, target) is not None:
                raise ResourceAlreadyExists(f"Table '{target}' already exists; choose another target_table")
            self._sources(s, caller, spec, missing=InvalidParameter)
        plan = self.plan(caller, spec, None)
        info = self.tables.create_from_arrow(caller, target, plan.new_rows.schema, properties=spec.properties(),
                                             comment=f"Inference log unpacked from {spec.source_table}")
        try:
            path = to_path(info["storage_location"])
            result = self._commit(caller, delta.open_table(path, target), info["table_id"], plan)
        except BaseException:
            self._drop(caller, target)
            raise
        return {**self.get(caller, target), "sync": result}

    def _payload_table_of(self, caller: Principal, endpoint: str) -> str:
        self.serving.get(caller, endpoint)  # CAN_VIEW, 404 for an unknown endpoint
        row = self.serving.runtime.stored(endpoint)
        config = json.loads(row.config or row.pending_config or "{}")
        table = serving_config.inference_table(config, json.loads(row.ai_gateway or "{}"))
        if table is None:
            raise InvalidParameter(f"Serving endpoint '{endpoint}' has no inference table; enable "
                                   "ai_gateway.inference_table_config first")
        return serving_config.payload_table_name(table, endpoint)

    def _drop(self, caller: Principal, target: str) -> None:
        try:
            self.tables.delete_table(caller, target)
        except Exception:
            log.warning("could not remove inference log %s after its first sync failed", target, exc_info=True)

    # ---- sync ----------------------------------------------------------------------------------
    def sync(self, caller: Principal, target_table: str) -> dict:
        """Unpack the payload versions not yet unpacked and merge the labels; returns counts."""
        target = _name(target_table, "target_table")
        with self.db.read() as s:
            row = sec.get_row(s, Kind.TABLE, target)
            self.catalog.check(s, caller, P.MODIFY, row)
            spec = self._spec(row)
            table_id, path = row.id, to_path(row.storage_location)
        with _lock(table_id):  # one sync at a time here; across processes the Delta commit refuses the second
            for attempt in range(_ATTEMPTS):
                flat = delta.open_table(path, target)
                try:
                    return self._commit(caller, flat, table_id, self.plan(caller, spec, flat))
                except CommitFailedError:
                    if attempt == _ATTEMPTS - 1:
                        raise ResourceConflict(f"Inference log '{target}' changed during the sync {_ATTEMPTS} "
                                               "times; nothing was committed, retry") from None
                    log.info("inference log %s: a concurrent commit won, planning the sync again", target)

    def plan(self, caller: Principal, spec: InferenceLogSpec, flat: DeltaTable | None) -> SyncPlan:
        """What a sync would commit: the new flat rows, the label changes and the progress to record."""
        with self.db.read() as s:
            payload, labels = self._sources(s, caller, spec, missing=NotFound)
        existing = pa.schema(flat.schema().to_arrow()) if flat is not None else None
        have = flat.to_pyarrow_dataset().to_table(columns=[unpack.REQUEST_ID, unpack.LABEL]) if flat is not None \
            else pa.table({unpack.REQUEST_ID: pa.array([], pa.string()), unpack.LABEL: pa.array([], pa.float64())})
        counts = {"rows_appended": 0, "labels_merged": 0, "skipped_malformed": 0, "skipped_failed_requests": 0,
                  "values_nulled": 0, "labels_unusable": 0}
        transactions = []

        # new payload versions -> flat rows
        payload_dt = delta.open_table(payload.path, payload.full_name)
        version = payload_dt.version()
        app = PAYLOAD_APP + payload.id
        done = flat.transaction_version(app) if flat is not None else None
        rows: list[dict] = []
        if done is None or version > done:
            unpacked = unpack.unpack(delta.payload_rows(payload_dt, payload.path, done, version), self._model_ids(spec),
                                     spec.timestamp_feature)
            counts["skipped_malformed"], counts["skipped_failed_requests"] = unpacked.malformed, \
                unpacked.failed_requests
            known = set(have.column(unpack.REQUEST_ID).to_pylist()) if have.num_rows else set()
            rows = [r for r in unpacked.rows if r[unpack.REQUEST_ID] not in known]
            transactions.append(Transaction(app_id=app, version=version))
        replace = flat is not None and have.num_rows == 0 and bool(rows)  # the first rows set the schema
        new_rows, nulled = unpack.flat_table(rows, None if replace else existing)
        counts["values_nulled"] = nulled
        label_type = new_rows.schema.field(unpack.LABEL).type
        updates = pa.table({unpack.REQUEST_ID: pa.array([], pa.string()), unpack.LABEL: pa.array([], label_type)})

        # labels: onto the new rows, and onto older rows whose label changed
        if labels is not None:
            labels_dt = delta.open_table(labels.path, labels.full_name)
            labels_app, labels_version = LABELS_APP + labels.id, labels_dt.version()
            merged = flat.transaction_version(labels_app) if flat is not None else None
            if new_rows.num_rows or merged != labels_version:
                known_labels, unusable = delta.read_labels(labels_dt, labels.full_name, spec.labels_request_id_col,
                                                           spec.labels_label_col, label_type)
                counts["labels_unusable"] = unusable
                new_rows = delta.with_labels(new_rows, known_labels)
                updates = delta.changed_labels(have, known_labels)
                transactions.append(Transaction(app_id=labels_app, version=labels_version))
        counts["rows_appended"], counts["labels_merged"] = new_rows.num_rows, updates.num_rows
        if flat is not None and not new_rows.num_rows and not updates.num_rows and done == version:
            transactions = []  # nothing new: no commit, the table keeps its version
        return SyncPlan(new_rows, updates, transactions, replace, counts)

    def _commit(self, caller: Principal, flat: DeltaTable, table_id: str, plan: SyncPlan) -> dict:
        """Commit the plan onto `flat` as read when planning: a concurrent sync's commit (the same
        application transaction) makes this one fail rather than add the rows twice."""
        before = flat.version()
        if plan.transactions:
            props = CommitProperties(custom_metadata={PRINCIPAL_KEY: caller.name, PRINCIPAL_ID_KEY: caller.id},
                                     app_transactions=plan.transactions)
            schema = pa.schema(flat.schema().to_arrow())
            added = [f for f in plan.new_rows.schema if f.name not in schema.names]
            if plan.updates.num_rows:
                delta.merge(flat, plan.new_rows, plan.updates, props)
            elif plan.replace:
                write_deltalake(flat, plan.new_rows, mode="overwrite", schema_mode="overwrite",
                                commit_properties=props)
            else:
                write_deltalake(flat, plan.new_rows, mode="append", schema_mode="merge" if added else None,
                                commit_properties=props)
            if added or plan.replace:
                self._sync_columns(caller, table_id, flat.table_uri)
        after = DeltaTable(flat.table_uri).version()
        return {**plan.counts, "table_version": after, "committed": after != before}

    def _sync_columns(self, caller: Principal, table_id: str, uri: str) -> None:
        """The catalog's columns follow the flat table's Delta schema (new features)."""
        try:
            self._write_columns(caller, table_id, pa.schema(DeltaTable(uri).schema().to_arrow()))
        except Exception:  # the rows are committed; the next sync that adds a column brings them up to date
            log.warning("could not update the catalog columns of inference log %s", table_id, exc_info=True)

    def _write_columns(self, caller: Principal, table_id: str, schema: pa.Schema) -> None:
        with self.db.write() as s:
            row = s.get(SecurableRow, table_id)
            if row is None:
                return
            spec = sec.load_json(row.spec)
            columns = columns_of(schema, spec.get("columns"))
            if columns != spec.get("columns"):
                spec["columns"] = columns
                row.spec = json.dumps(spec)
                sec.touch(row, caller)

    # ---- read ----------------------------------------------------------------------------------
    def get(self, caller: Principal, target_table: str) -> dict:
        """The spec and where the unpacking stands."""
        target = _name(target_table, "target_table")
        with self.db.read() as s:
            row = sec.get_row(s, Kind.TABLE, target)
            self.catalog.check(s, caller, P.SELECT, row)
            spec = self._spec(row)
            path = to_path(row.storage_location)
            payload = _located(_source_row(s, spec.source_table))
            labels = _located(_source_row(s, spec.labels_table)) if spec.labels_table else (None, None)
        flat = delta.open_table(path, target)
        label = flat.to_pyarrow_dataset().to_table(columns=[unpack.LABEL]).column(unpack.LABEL)
        state = {"table_version": flat.version(), "num_rows": len(label), "num_labeled": len(label) - label.null_count}
        for (table_id, location), app, done, latest in ((payload, PAYLOAD_APP, "processed_payload_version",
                                                          "payload_table_version"),
                                                         (labels, LABELS_APP, "merged_labels_version",
                                                          "labels_table_version")):
            if table_id is not None:
                state[done], state[latest] = flat.transaction_version(app + table_id), delta.table_version(location)
        return {**spec.render(), "state": state}

    def spec_of(self, table_full_name: str) -> InferenceLogSpec | None:
        """The table's inference-log spec, None when it is not one (or does not exist). One query, no
        access check: callers check before they act."""
        try:
            found = sec.find(self.db, Kind.TABLE, table_full_name)
        except (NotFound, InvalidParameter):
            return None
        return InferenceLogSpec.of(found.row.full_name, sec.load_json(found.row.properties))

    # ---- helpers -------------------------------------------------------------------------------
    def _spec(self, row) -> InferenceLogSpec:
        spec = InferenceLogSpec.of(row.full_name, sec.load_json(row.properties))
        if spec is None:
            raise InvalidParameter(f"Table '{row.full_name}' is not an inference log; register one with POST "
                                   "/api/2.0/lakeforge/inference-logs")
        return spec

    def _sources(self, s, caller: Principal, spec: InferenceLogSpec, missing) -> tuple[Source, Source | None]:
        """The payload and labels tables, once the caller may SELECT them and they have the columns needed.
        `missing` is the error for a table that does not exist (400 while registering, 404 after)."""
        payload = self._source(s, caller, spec.source_table, "Payload table", missing)
        absent = [n for n in PAYLOAD_SCHEMA.names if n not in payload.columns]
        if absent:
            raise InvalidParameter(f"Table '{spec.source_table}' is not a serving endpoint's payload table "
                                   f"(missing columns {', '.join(absent)})")
        labels = None
        if spec.labels_table:
            labels = self._source(s, caller, spec.labels_table, "Labels table", missing)
            lower = {c.lower() for c in labels.columns}
            for col in (spec.labels_request_id_col, spec.labels_label_col):
                if col.lower() not in lower:
                    raise InvalidParameter(f"Labels table '{spec.labels_table}' has no column '{col}'; its columns "
                                           f"are {', '.join(labels.columns)}")
        return payload, labels

    def _source(self, s, caller: Principal, full_name: str, what: str, missing) -> Source:
        try:
            row = sec.get_row(s, Kind.TABLE, full_name)
        except NotFound:
            raise missing(f"{what} '{full_name}' does not exist") from None
        self.catalog.check(s, caller, P.SELECT, row)
        table = sec.load_json(row.spec)
        if table.get("data_source_format", "DELTA") != "DELTA" or not row.storage_location:
            raise InvalidParameter(f"{what} '{full_name}' is not a Delta table")
        return Source(row.id, row.full_name, to_path(row.storage_location),
                      [c["name"] for c in table.get("columns") or []])

    def _model_ids(self, spec: InferenceLogSpec):
        """`model_id(served_entity_id, request_metadata)`: "<model>/<version>" from the row's metadata,
        else from the endpoint's current or pending config, else the served entity id."""
        by_id: dict[str, str] = {}
        loaded: set[str] = set()

        def model_id(entity_id: str | None, metadata: dict) -> str | None:
            if metadata.get("model_name") and metadata.get("model_version"):
                return f"{metadata['model_name']}/{metadata['model_version']}"
            endpoint = metadata.get("endpoint_name") or spec.endpoint_name
            if endpoint and endpoint not in loaded:
                loaded.add(endpoint)
                by_id.update(self._entities(endpoint))
            return by_id.get(entity_id or "", entity_id)

        return model_id

    def _entities(self, endpoint: str) -> dict[str, str]:
        row = self.serving.runtime.stored(endpoint)
        out = {}
        for text in (row.config, row.pending_config) if row is not None else ():
            for e in json.loads(text or "{}").get("served_entities", []):
                if e.get("id"):
                    out.setdefault(e["id"], f"{e['entity_name']}/{e['entity_version']}")
        return out


def sync_before_refresh(ctx, table_full_name: str, principal: Principal) -> dict | None:
    """For the monitor runtime, before it refreshes a monitor on `table_full_name`: if the table is an
    unpacked inference log, sync it as `principal` (the monitor's owner) and return the counts; else
    None, after one metadata query."""
    service = InferenceLogService.of(ctx)
    if service.spec_of(table_full_name) is None:
        return None
    return service.sync(principal, table_full_name)


# ---- catalog rows and request fields --------------------------------------------------------------
def _located(row) -> tuple[str | None, str | None]:
    return (row.id, row.storage_location) if row is not None else (None, None)


def _source_row(s, full_name: str):
    try:
        return sec.get_row(s, Kind.TABLE, full_name)
    except NotFound:
        return None


def _name(value: Any, field: str) -> str:
    return str(names.parse(value, 3, field))


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameter(f"{field} must be a non-empty string")
    return value.strip()


__all__ = ["InferenceLogService", "InferenceLogSpec", "sync_before_refresh"]
