"""Alert rules on a monitor's metric tables, and the breaches they find (a Lakeforge extension:
Databricks leaves alerting to SQL alerts over the metric tables).

A rule is `{name, metric, op, threshold}` with optional filters: `table` ("profile" | "drift",
inferred from the metric when only one table has it), `column_name` (default: any column,
":table" for table-level metrics), `slice_key` / `slice_value` (default: any slice, the whole
table included), `drift_type` (CONSECUTIVE | BASELINE), `granularity`, and a `webhook_url`.
`metric` is any numeric column of the metric table, or a numeric field of a struct column named by a
dotted path (`ks_test.pvalue`, `chi_squared_test.pvalue`, `f1_score.macro`); it is checked against
the tables' schemas for the monitor's current configuration when the rule is created.

After every successful refresh each enabled rule runs as one DuckDB query over the metric table (read
with deltalake), on the rows of the monitor version that refresh wrote (profile rows of the monitored
table only, not of the baseline). Every row that breaches is one breach, keyed by (window,
granularity, slice, column, model id, drift type): recorded once per rule under a unique key in the
metadata database, so a window that stays breached, a retried refresh or a restart never records it
again, while the same breach in a new window is new. A new breach is logged as a WARNING (metric,
value, threshold, window, slice) and posted to the rule's webhook in the background (webhooks.py).
The first evaluation of a new rule reports every breaching window already in the tables.
Evaluation errors are logged and never fail the refresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime

import pyarrow as pa
from deltalake import DeltaTable
from sqlalchemy import select

from lakeforge import clock
from lakeforge.errors import (
    InvalidParameter,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
)
from lakeforge.identity.principal import Principal
from lakeforge.monitoring import config as cfg
from lakeforge.monitoring.service import DRIFT, PROFILE, MonitoringService, engine
from lakeforge.monitoring.store import AlertRow, BreachRow, MonitorRow
from lakeforge.monitoring.tables import BASELINE_DRIFT, CONSECUTIVE, INPUT
from lakeforge.monitoring.webhooks import PENDING, Delivery, WebhookSender
from lakeforge.secrets.references import find_references
from lakeforge.store import new_id

log = logging.getLogger(__name__)

OPS = {">": ">", ">=": ">=", "<": "<", "<=": "<=", "==": "=", "!=": "<>"}
DRIFT_TYPES = (CONSECUTIVE, BASELINE_DRIFT)
# Keys and lineage of the metric tables: never metrics.
NOT_METRICS = {"window", "window_cmp", "granularity", "slice_key", "slice_value", "column_name", "data_type",
               "monitor_version", "log_type", "drift_type", "logging_table_commit_version"}
MAX_BREACHES_LISTED = 1000
_NOT_IN_WEBHOOK = {"table", "alert_name", "webhook_status", "webhook_attempts"}  # named otherwise, or not yet known
_INSERT_BATCH = 500


# ---- rules ---------------------------------------------------------------------------------------
def parse_rule(body: dict, spec, profile_schema: pa.Schema, drift_schema: pa.Schema) -> dict:
    """A validated rule; 400 naming the field or the unknown metric."""
    if not isinstance(body, dict):
        raise InvalidParameter("The request body must be a JSON object")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise InvalidParameter("name is required (a string of at most 255 characters)")
    metric = body.get("metric")
    if not isinstance(metric, str) or not metric.strip():
        raise InvalidParameter("metric is required, e.g. 'js_distance' or 'f1_score.macro'")
    metric = metric.strip()
    op = body.get("op")
    if op not in OPS:
        raise InvalidParameter(f"op must be one of {', '.join(OPS)}; got {op!r}")
    threshold = body.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise InvalidParameter("threshold must be a number")
    schemas = {PROFILE: profile_schema, DRIFT: drift_schema}
    excluded = NOT_METRICS | ({spec.model_id_col} if spec.model_id_col else set())
    found = [t for t, schema in schemas.items() if _numeric(_leaf(schema, metric, excluded))]
    table = body.get("table")
    if table is not None and table not in schemas:
        raise InvalidParameter(f"table must be 'profile' or 'drift'; got {table!r}")
    if table is None:
        if len(found) > 1:
            raise InvalidParameter(f"metric '{metric}' is in both the profile and drift metrics tables; set table")
        table = found[0] if found else None
    if table not in found:
        where = f"the {table} metrics table" if table else "the profile or drift metrics table"
        kinds = [_leaf(schema, metric, excluded) for t, schema in schemas.items() if table in (None, t)]
        struct = next((k for k in kinds if k is not None and pa.types.is_struct(k)), None)
        hint = f" ({metric} is a struct: name a numeric field, e.g. {_example(struct, metric)})" if struct else ""
        raise InvalidParameter(f"metric '{metric}' is not a numeric metric of {where} of this monitor{hint}")
    rule = {"name": name.strip(), "metric": metric, "op": op, "threshold": float(threshold), "table": table}
    for key in ("column_name", "slice_key", "slice_value"):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidParameter(f"{key} must be a string")
        rule[key] = value
    drift_type = body.get("drift_type")
    if drift_type is not None and (table != DRIFT or drift_type not in DRIFT_TYPES):
        raise InvalidParameter(f"drift_type ({', '.join(DRIFT_TYPES)}) applies to drift metrics only; "
                               f"got {drift_type!r} for a {table} metric")
    rule["drift_type"] = drift_type
    granularity = body.get("granularity")
    if granularity is not None:
        canonical = cfg.canonical_granularity(granularity)
        if canonical is None or canonical not in spec.granularities:
            allowed = ", ".join(spec.granularities) or "none: a snapshot monitor has no granularities"
            raise InvalidParameter(f"granularity '{granularity}' is not one of this monitor's ({allowed})")
        granularity = canonical
    rule["granularity"] = granularity
    url = body.get("webhook_url")
    if url is not None:
        if not isinstance(url, str) or not url.strip():
            raise InvalidParameter("webhook_url must be a non-empty string")
        url = url.strip()
        if not find_references(url) and not url.lower().startswith(("http://", "https://")):
            raise InvalidParameter(f"webhook_url '{url}' must be an http:// or https:// URL (or a secret reference)")
    rule["webhook_url"] = url
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidParameter("enabled must be a boolean")
    rule["enabled"] = enabled
    return rule


def _leaf(schema: pa.Schema, path: str, excluded: set[str]) -> pa.DataType | None:
    head, *rest = path.split(".")
    if head in excluded or schema.get_field_index(head) < 0:
        return None
    kind = schema.field(head).type
    for part in rest:
        if not pa.types.is_struct(kind) or kind.get_field_index(part) < 0:
            return None
        kind = kind.field(part).type
    return kind


def _numeric(kind: pa.DataType | None) -> bool:
    return kind is not None and (pa.types.is_integer(kind) or pa.types.is_floating(kind))


def _example(kind: pa.DataType, path: str) -> str:
    fields = [f.name for f in kind if _numeric(f.type)]
    return f"{path}.{fields[0]}" if fields else path


def render_rule(row: AlertRow, table_name: str) -> dict:
    rule = json.loads(row.rule)
    return {"alert_id": row.id, "table_name": table_name, **rule, "enabled": row.enabled,
            "created_by": row.creator, "created_at_ms": clock.to_ms(row.created_at)}


def render_breach(row: BreachRow, rule: dict) -> dict:
    return {"breach_id": row.id, "alert_id": row.alert_id, "alert_name": rule.get("name"), "metric": row.metric,
            "op": rule.get("op"), "threshold": row.threshold, "value": row.value, "table": rule.get("table"),
            "window": {"start": clock.to_ms(row.window_start), "end": clock.to_ms(row.window_end)},
            "granularity": row.granularity, "slice_key": row.slice_key, "slice_value": row.slice_value,
            "column_name": row.column_name, "model_id": row.model_id, "drift_type": row.drift_type,
            "monitor_version": row.monitor_version, "refresh_id": row.refresh_id,
            "fired_at_ms": clock.to_ms(row.fired_at), "webhook_status": row.webhook_status,
            "webhook_attempts": row.webhook_attempts}


class AlertRules:
    """The alert API: create, list, get and delete rules (the monitor's owner or MANAGE on the table
    to change them, SELECT to read), and the breaches they found (SELECT)."""

    def __init__(self, db, monitors: MonitoringService, secret_refs):
        self.db = db
        self.monitors = monitors
        self.secret_refs = secret_refs

    def create(self, caller: Principal, table_name: str, body: dict) -> dict:
        monitor, table = self.monitors.manageable(caller, table_name)
        spec = cfg.to_spec(json.loads(monitor.config), monitor.monitor_version)
        eng = engine()
        rule = parse_rule(body, spec, eng.profile_schema_for(spec), eng.drift_schema_for(spec))
        if rule["webhook_url"]:
            self.secret_refs.check_readable(rule["webhook_url"], caller)
        enabled = rule.pop("enabled")
        row = AlertRow(id=new_id(), monitor_id=monitor.id, name=rule["name"], rule=json.dumps(rule), enabled=enabled,
                       owner_id=caller.id, creator=caller.name, created_at=clock.now())
        with self.db.write() as s:
            if s.scalar(select(AlertRow.id).where(AlertRow.monitor_id == monitor.id, AlertRow.name == rule["name"])):
                raise ResourceAlreadyExists(f"The monitor on '{table_name}' already has an alert named "
                                            f"'{rule['name']}'")
            s.add(row)
            s.flush()
            s.expunge(row)
        return render_rule(row, table.full_name)

    def list(self, caller: Principal, table_name: str) -> dict:
        monitor, table = self.monitors.readable(caller, table_name)
        with self.db.read() as s:
            rows = s.scalars(select(AlertRow).where(AlertRow.monitor_id == monitor.id).order_by(AlertRow.name))
            return {"alerts": [render_rule(r, table.full_name) for r in rows]}

    def get(self, caller: Principal, table_name: str, alert_id: str) -> dict:
        monitor, table = self.monitors.readable(caller, table_name)
        return render_rule(self._rule(monitor, alert_id, table_name), table.full_name)

    def delete(self, caller: Principal, table_name: str, alert_id: str) -> None:
        """Removes the rule and the breaches it recorded."""
        monitor, _ = self.monitors.manageable(caller, table_name)
        row = self._rule(monitor, alert_id, table_name)
        with self.db.write() as s:
            live = s.get(AlertRow, row.id)
            if live is not None:
                s.delete(live)

    def _rule(self, monitor: MonitorRow, key: str, table_name: str) -> AlertRow:
        """A rule by id, or by name."""
        with self.db.read() as s:
            row = s.get(AlertRow, key)
            if row is None or row.monitor_id != monitor.id:
                row = s.scalar(select(AlertRow).where(AlertRow.monitor_id == monitor.id, AlertRow.name == key))
            if row is None:
                raise ResourceDoesNotExist(f"The monitor on '{table_name}' has no alert '{key}'")
            s.expunge(row)
        return row

    def breaches(self, caller: Principal, table_name: str, max_results: int | None = None,
                 alert_id: str | None = None) -> dict:
        """The monitor's breaches, latest first."""
        monitor, _ = self.monitors.readable(caller, table_name)
        limit = MAX_BREACHES_LISTED if not max_results else max(1, min(int(max_results), MAX_BREACHES_LISTED))
        q = (select(BreachRow, AlertRow.rule).join(AlertRow, AlertRow.id == BreachRow.alert_id)
             .where(BreachRow.monitor_id == monitor.id))
        if alert_id:
            q = q.where(BreachRow.alert_id == self._rule(monitor, alert_id, table_name).id)
        with self.db.read() as s:
            rows = s.execute(q.order_by(BreachRow.fired_at.desc(), BreachRow.id.desc()).limit(limit)).all()
            return {"breaches": [render_breach(b, json.loads(rule)) for b, rule in rows]}


# ---- evaluation after a refresh ------------------------------------------------------------------
class AlertEvaluator:
    def __init__(self, db, sender: WebhookSender):
        self.db = db
        self.sender = sender

    def evaluate(self, monitor: MonitorRow, table_name: str, spec, refresh_id: int, paths: dict[str, str]) -> int:
        """Record and announce the new breaches of every enabled rule of `monitor`; returns how many."""
        with self.db.read() as s:
            rules = list(s.scalars(select(AlertRow).where(AlertRow.monitor_id == monitor.id, AlertRow.enabled)))
            for r in rules:
                s.expunge(r)
        if not rules:
            return 0
        import duckdb  # imported on the first evaluation, not at server start

        found = 0
        con = duckdb.connect()
        try:
            loaded: set[str] = set()
            for row in rules:
                rule = json.loads(row.rule)
                if rule["table"] not in loaded:
                    con.register(rule["table"], DeltaTable(paths[rule["table"]]).to_pyarrow_table())
                    loaded.add(rule["table"])
                try:
                    hits = self._breaching(con, rule, spec)
                    found += self._record(row, rule, hits, monitor, table_name, spec, refresh_id, paths)
                except Exception:
                    log.exception("monitor on %s: alert '%s' could not be evaluated", table_name, row.name)
        finally:
            con.close()
        return found

    @staticmethod
    def _breaching(con, rule: dict, spec) -> list[tuple]:
        model = _ident(spec.model_id_col) if spec.model_id_col else "NULL"
        drift = "drift_type" if rule["table"] == DRIFT else "NULL"
        where, params = ["monitor_version = ?"], [spec.monitor_version]
        if rule["table"] == PROFILE:
            where.append(f"coalesce(log_type, '{INPUT}') = '{INPUT}'")
        for key in ("column_name", "slice_key", "slice_value", "granularity", "drift_type"):
            if rule.get(key) is not None:
                where.append(f"{key} = ?")
                params.append(rule[key])
        sql = (f"SELECT * FROM (SELECT epoch_us(struct_extract(\"window\", 'start')) AS ws, "
               f"epoch_us(struct_extract(\"window\", 'end')) AS we, granularity, slice_key, slice_value, "
               f"column_name, CAST({model} AS VARCHAR) AS model_id, {drift} AS drift_kind, "
               f"CAST({_metric_sql(rule['metric'])} AS DOUBLE) AS value FROM {rule['table']} "
               f"WHERE {' AND '.join(where)}) WHERE value IS NOT NULL AND NOT isnan(value) "
               f"AND value {OPS[rule['op']]} ?")
        return con.execute(sql, [*params, rule["threshold"]]).fetchall()

    def _record(self, row: AlertRow, rule: dict, hits: list[tuple], monitor: MonitorRow, table_name: str, spec,
                refresh_id: int, paths: dict[str, str]) -> int:
        if not hits:
            return 0
        now = clock.now()
        values = []
        for ws, we, granularity, slice_key, slice_value, column, model_id, drift_type, value in hits:
            key = hashlib.sha256(json.dumps([ws, we, granularity, slice_key, slice_value, column, model_id,
                                             drift_type]).encode()).hexdigest()
            values.append({"alert_id": row.id, "monitor_id": monitor.id, "breach_key": key, "metric": rule["metric"],
                           "value": value, "threshold": rule["threshold"], "window_start": _time(ws),
                           "window_end": _time(we), "granularity": granularity, "slice_key": slice_key,
                           "slice_value": slice_value, "column_name": column, "model_id": model_id,
                           "drift_type": drift_type, "monitor_version": spec.monitor_version,
                           "refresh_id": refresh_id, "webhook_status": PENDING if rule["webhook_url"] else None,
                           "webhook_attempts": 0, "fired_at": now})
        from sqlalchemy.dialects import postgresql, sqlite

        insert = sqlite.insert if self.db.is_sqlite else postgresql.insert
        new: list[BreachRow] = []
        with self.db.write() as s:
            for i in range(0, len(values), _INSERT_BATCH):
                stmt = (insert(BreachRow).values(values[i:i + _INSERT_BATCH])
                        .on_conflict_do_nothing(index_elements=["alert_id", "breach_key"]).returning(BreachRow.id))
                ids = [r[0] for r in s.execute(stmt)]
                if ids:
                    new.extend(s.scalars(select(BreachRow).where(BreachRow.id.in_(ids))))
            for b in new:
                s.expunge(b)
        for b in sorted(new, key=lambda b: b.id):
            breach = render_breach(b, rule)
            where = f"slice {b.slice_key}={b.slice_value}" if b.slice_key is not None else "whole table"
            log.warning("monitor on %s: alert '%s' fired: %s = %s %s %s in window %s .. %s (%s), %s, column %s%s%s",
                        table_name, rule["name"], rule["metric"], b.value, rule["op"], rule["threshold"],
                        _iso(b.window_start), _iso(b.window_end), b.granularity, where, b.column_name,
                        f", model {b.model_id}" if b.model_id else "",
                        f", drift {b.drift_type}" if b.drift_type else "")
            if rule["webhook_url"]:
                metric_table = monitor.profile_table_name if rule["table"] == PROFILE else monitor.drift_table_name
                payload = {"rule": rule["name"], "table": table_name, "metric_table": metric_table,
                           **{k: v for k, v in breach.items() if k not in _NOT_IN_WEBHOOK}}
                self.sender.submit(Delivery(b.id, rule["webhook_url"], row.owner_id, payload))
        return len(new)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _metric_sql(path: str) -> str:
    head, *rest = path.split(".")
    sql = _ident(head)
    for part in rest:
        sql = f"struct_extract({sql}, '{part.replace(chr(39), chr(39) * 2)}')"
    return sql


def _time(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1_000_000, tz=UTC)


def _iso(t: datetime | None) -> str:
    return t.isoformat() if t else "-"


__all__ = ["OPS", "AlertEvaluator", "AlertRules", "parse_rule", "render_breach", "render_rule"]
