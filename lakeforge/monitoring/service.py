"""Monitors on catalog tables (Databricks' legacy Monitor API): create, read, update, delete, and
their refreshes (queued here, run by runtime.py).

Access, decided by the catalog's access function:
- create: SELECT on the table, CREATE_TABLE (with USE_CATALOG and USE_SCHEMA) on the output schema,
  SELECT on the baseline table;
- update, delete, run and cancel refreshes, regenerate the dashboard, alert rules: the monitor's
  owner (its creator), or MANAGE on the table (which the table's owner and admins hold);
- get the monitor, its refreshes, alert rules and breaches: SELECT on the table.
The table is the audited securable of every call. A missing table is a 404 when reading a monitor and
a 400 (a bad parameter) when creating one; a table the caller may not see is a 403.

A monitor writes two catalog-managed Delta tables, `{output_schema}.{table}_profile_metrics` and
`_drift_metrics`, owned by the creator. A table of that name left by an earlier monitor (marked by
the `lakeforge.monitoring.metric_table` property) is reused when its columns fit the new config;
any other table of that name is a 409. Create is all-or-nothing: a failure removes the tables it
made and leaves no monitor. Delete keeps the metric tables (as Databricks does).

Update: the fields sent replace the stored ones, the others stay (config.parse). The profile type
and the output schema cannot change (400: delete the monitor and create it again). A change of what
the metrics are computed from (profile settings, slicing, custom metrics, baseline) bumps
`monitor_version`, which makes the next refresh recompute every window; schedule, notifications and
dashboard settings do not. Refreshes bring the metric tables' columns in line with the config
before they run (runtime.py).

Unlike Databricks, creating a monitor does not start a refresh: run one, or give it a schedule.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from deltalake.exceptions import DeltaError
from sqlalchemy import select, update

from lakeforge import clock, names
from lakeforge.audit.context import note_securable
from lakeforge.catalog import securables as sec
from lakeforge.catalog.privileges import Kind, P
from lakeforge.catalog.service import CatalogService
from lakeforge.catalog.storage import to_path
from lakeforge.catalog.store import SecurableRow
from lakeforge.catalog.tables import TableService
from lakeforge.errors import (
    AlreadyExists,
    InvalidParameter,
    InvalidState,
    NotFound,
    NotImplementedHere,
    ResourceAlreadyExists,
    ResourceConflict,
    ResourceDoesNotExist,
)
from lakeforge.identity.principal import Principal
from lakeforge.lake import delta
from lakeforge.lake.types import type_text
from lakeforge.monitoring import config as cfg
from lakeforge.monitoring import schedule
from lakeforge.monitoring.store import MonitorRow, RefreshRow
from lakeforge.store import new_id

log = logging.getLogger(__name__)

METRIC_TABLE = "lakeforge.monitoring.metric_table"  # table property: "profile" | "drift"
MONITORED_TABLE = "lakeforge.monitoring.table"  # table property: the monitored table's full name
PROFILE, DRIFT = "profile", "drift"
MAX_REFRESHES_LISTED = 25  # as Databricks
# Fields whose change alters the metrics: they bump monitor_version.
_METRIC_FIELDS = ("snapshot", "time_series", "inference_log", "slicing_exprs", "custom_metrics",
                  "baseline_table_name")


def engine():
    """The monitoring engine package (imported on first use: it pulls in DuckDB and sketches)."""
    from lakeforge.monitoring import engine as monitoring_engine

    if not hasattr(monitoring_engine, "refresh"):
        raise NotImplementedHere("The monitoring engine is not available in this build of Lakeforge")
    return monitoring_engine


def same_columns(actual: Any, wanted: Any) -> bool:
    """Two Arrow schemas name the same columns with the same Delta types, in order."""
    return [(f.name, type_text(f.type)) for f in actual] == [(f.name, type_text(f.type)) for f in wanted]


def table_path(row) -> Path:
    return to_path(row.storage_location)


def state_dir(home: Path, monitor_id: str) -> Path:
    """The engine's private state of a monitor (mergeable per-window state and watermark)."""
    return home / "monitoring" / monitor_id / "state"


class MonitoringService:
    def __init__(self, db, catalog: CatalogService, tables: TableService, runtime, home: Path):
        self.db = db
        self.catalog = catalog
        self.access = catalog.access
        self.tables = tables
        self.runtime = runtime
        self.home = home

    # ---- resolving a table and its monitor -----------------------------------------------------
    def readable(self, caller: Principal, table_name: str) -> tuple[MonitorRow, SecurableRow]:
        """The monitor of `table_name` once the caller holds SELECT on the table."""
        return self._monitor(caller, table_name, manage=False)

    def manageable(self, caller: Principal, table_name: str) -> tuple[MonitorRow, SecurableRow]:
        """The monitor of `table_name` once the caller owns it or holds MANAGE on the table."""
        return self._monitor(caller, table_name, manage=True)

    def _monitor(self, caller: Principal, table_name: str, manage: bool) -> tuple[MonitorRow, SecurableRow]:
        note_securable(table_name)
        with self.db.read() as s:
            table = sec.get_row(s, Kind.TABLE, table_name)
            row = s.scalar(select(MonitorRow).where(MonitorRow.table_id == table.id))
            if not manage:
                self.catalog.check(s, caller, P.SELECT, table)
            elif row is None or row.owner_id not in caller.identity_ids:
                self.catalog.check(s, caller, P.MANAGE, table)
            if row is None:
                raise ResourceDoesNotExist(f"Table '{table_name}' has no monitor")
            s.expunge(row)
            s.expunge(table)
        return row, table

    def _input_table(self, s, caller: Principal, full_name: str, field: str) -> SecurableRow:
        """A table the config names, which the caller may SELECT; a missing one is a bad parameter."""
        try:
            row = sec.get_row(s, Kind.TABLE, full_name)
        except NotFound as e:
            raise InvalidParameter(f"{field}: {e.message}") from None
        self.catalog.check(s, caller, P.SELECT, row)
        if not row.storage_location or not delta.is_delta(table_path(row)):
            raise InvalidParameter(f"{field}: table '{full_name}' is not a Delta table Lakeforge can read")
        return row

    # ---- create --------------------------------------------------------------------------------
    def create(self, caller: Principal, table_name: str, body: dict) -> dict:
        note_securable(table_name)
        names.parse(table_name, 3, "table_name")
        config = cfg.parse(body)
        output_schema = config["output_schema_name"]
        with self.db.read() as s:
            table = self._input_table(s, caller, table_name, "table_name")
            if s.scalar(select(MonitorRow.id).where(MonitorRow.table_id == table.id)):
                raise ResourceAlreadyExists(f"Table '{table_name}' already has a monitor")
            catalog_name, schema_name = output_schema.split(".")
            try:
                schema_row = sec.get_parent_row(s, Kind.TABLE, catalog_name, schema_name)
            except NotFound as e:
                raise InvalidParameter(f"output_schema_name: {e.message}") from None
            self.catalog.check(s, caller, P.CREATE_TABLE, schema_row)
            note_securable(table_name, override=True)
            baseline = config.get("baseline_table_name")
            baseline_row = self._input_table(s, caller, baseline, "baseline_table_name") if baseline else None
            s.expunge_all()
        spec = cfg.to_spec(config, 1)
        self._validate(spec, table, baseline_row)
        profile_name, drift_name = cfg.metric_table_names(output_schema, table_name)
        eng = engine()
        wanted = [(profile_name, eng.profile_schema_for(spec), PROFILE),
                  (drift_name, eng.drift_schema_for(spec), DRIFT)]
        created: list[str] = []
        try:
            for name, schema, kind in wanted:
                if not self._reusable(caller, name, schema, kind):
                    self.tables.create_from_arrow(caller, name, schema, comment=f"{kind.title()} metrics of the "
                                                  f"monitor on {table_name}",
                                                  properties={METRIC_TABLE: kind, MONITORED_TABLE: table_name})
                    created.append(name)
            now = clock.now()
            row = MonitorRow(id=new_id(), table_id=table.id, owner_id=caller.id, creator=caller.name,
                             config=json.dumps(config), monitor_version=1, status=cfg.ACTIVE, failure_message=None,
                             profile_table_name=profile_name, drift_table_name=drift_name,
                             next_run_at=self._next_run(config, now), created_at=now, updated_at=now)
            with self.db.write() as s:
                if s.scalar(select(MonitorRow.id).where(MonitorRow.table_id == table.id)):
                    raise ResourceAlreadyExists(f"Table '{table_name}' already has a monitor")
                s.add(row)
                s.flush()
                s.expunge(row)
        except BaseException:
            for name in created:
                self._drop_new_table(caller, name)
            raise
        note_securable(table_name, override=True)
        return cfg.render_monitor(row, table_name)

    def _validate(self, spec, table: SecurableRow, baseline: SecurableRow | None) -> None:
        schema = self._schema(table)
        baseline_schema = self._schema(baseline) if baseline is not None else None
        engine().validate(spec, schema, baseline_schema)

    @staticmethod
    def _schema(row: SecurableRow):
        try:
            return delta.arrow_schema(table_path(row))
        except (DeltaError, OSError) as e:  # an unreadable Delta log is the table's problem, named
            reason = (str(e).splitlines() or [type(e).__name__])[0]
            raise InvalidParameter(f"Table '{row.full_name}' cannot be read as a Delta table: {reason}") from None

    def _reusable(self, caller: Principal, name: str, schema, kind: str) -> bool:
        """True when `name` is a metric table left by an earlier monitor whose columns fit; False when
        the name is free; 409 (or 403 without MODIFY on it) otherwise."""
        with self.db.read() as s:
            row = s.scalar(select(SecurableRow).where(SecurableRow.kind == Kind.TABLE.value,
                                                      SecurableRow.full_name == name))
            if row is None:
                return False
            if sec.load_json(row.properties).get(METRIC_TABLE) != kind:
                raise ResourceAlreadyExists(f"Table '{name}' already exists and is not a {kind} metrics table; "
                                            "drop it or choose another output_schema_name")
            self.catalog.check(s, caller, P.MODIFY, row)
            path = table_path(row)
        if not same_columns(delta.arrow_schema(path), schema):
            raise ResourceAlreadyExists(f"The {kind} metrics table '{name}' of an earlier monitor exists with other "
                                        "columns than this configuration needs; drop it or choose another "
                                        "output_schema_name")
        return True

    def _drop_new_table(self, caller: Principal, name: str) -> None:
        try:
            self.catalog.delete(caller, Kind.TABLE, name)
        except Exception:
            log.warning("could not remove metric table %s after a failed monitor create", name, exc_info=True)

    @staticmethod
    def _next_run(config: dict, after) -> Any:
        sched = cfg.active_schedule(config)
        return schedule.next_after(sched["quartz_cron_expression"], sched["timezone_id"], after) if sched else None

    # ---- read ----------------------------------------------------------------------------------
    def get(self, caller: Principal, table_name: str) -> dict:
        row, table = self.readable(caller, table_name)
        return cfg.render_monitor(row, table.full_name)

    # ---- update --------------------------------------------------------------------------------
    def update(self, caller: Principal, table_name: str, body: dict) -> dict:
        row, table = self.manageable(caller, table_name)
        current = json.loads(row.config)
        config = cfg.parse(body, current)
        before, after = cfg.profile_type(current), cfg.profile_type(config)
        if before != after:
            raise InvalidParameter(f"The profile type of a monitor cannot change ({before} to {after}); delete the "
                                   "monitor and create it again")
        if config["output_schema_name"] != current["output_schema_name"]:
            raise InvalidParameter(f"output_schema_name cannot change (it is '{current['output_schema_name']}'); "
                                   "delete the monitor and create it again")
        baseline_row = None
        if config.get("baseline_table_name"):
            with self.db.read() as s:
                baseline_row = self._input_table(s, caller, config["baseline_table_name"], "baseline_table_name")
                s.expunge_all()
            note_securable(table_name, override=True)
        bump = any(config.get(k) != current.get(k) for k in _METRIC_FIELDS)
        version = row.monitor_version + 1 if bump else row.monitor_version
        self._validate(cfg.to_spec(config, version), table, baseline_row)
        schedule_changed = config.get("schedule") != current.get("schedule")
        now = clock.now()
        values: dict[str, Any] = {"config": json.dumps(config), "monitor_version": version, "updated_at": now}
        if schedule_changed:
            values["next_run_at"] = self._next_run(config, now)
        with self.db.write() as s:
            done = s.execute(update(MonitorRow).where(MonitorRow.id == row.id,
                                                      MonitorRow.monitor_version == row.monitor_version,
                                                      MonitorRow.config == row.config).values(**values))
            if done.rowcount != 1:
                raise ResourceConflict(f"The monitor on '{table_name}' was changed or deleted by another request; "
                                       "read it again and retry")
            fresh = s.get(MonitorRow, row.id)
            s.expunge(fresh)
        return cfg.render_monitor(fresh, table.full_name)

    # ---- delete --------------------------------------------------------------------------------
    def delete(self, caller: Principal, table_name: str) -> None:
        """Removes the monitor with its refreshes, alert rules and breaches; a running refresh stops at
        its next step. The metric tables stay."""
        row, _ = self.manageable(caller, table_name)
        with self.db.write() as s:
            live = s.get(MonitorRow, row.id)
            if live is not None:
                s.delete(live)
        self.runtime.forget(row.id)
        shutil.rmtree(state_dir(self.home, row.id).parent, ignore_errors=True)

    # ---- refreshes -----------------------------------------------------------------------------
    def run_refresh(self, caller: Principal, table_name: str, body: dict | None = None) -> dict:
        """Queue a refresh (PENDING); the runtime runs it. Extension: `{"full": true}` recomputes every
        window instead of only those the table's new Delta versions touched."""
        row, _ = self.manageable(caller, table_name)
        full = (body or {}).get("full", False)
        if not isinstance(full, bool):
            raise InvalidParameter("full must be a boolean")
        refresh = self.queue_refresh(row.id, cfg.MANUAL, full, table_name)
        self.runtime.wake()
        return cfg.render_refresh(refresh)

    def queue_refresh(self, monitor_id: str, trigger: str, full: bool, table_name: str) -> RefreshRow:
        """A PENDING refresh, or 409 naming the refresh that is pending or running (one at a time per
        monitor, enforced by the unique `active_monitor_id`, so it holds across server processes)."""
        try:
            with self.db.write() as s:
                self._refuse_if_active(s, monitor_id, table_name)
                refresh = RefreshRow(monitor_id=monitor_id, active_monitor_id=monitor_id, state=cfg.PENDING,
                                     trigger=trigger, full=full, cancel_requested=False, created_at=clock.now())
                s.add(refresh)
                s.flush()
                s.expunge(refresh)
                return refresh
        except AlreadyExists:  # a concurrent request queued one between our check and insert
            with self.db.read() as s:
                self._refuse_if_active(s, monitor_id, table_name)
            raise

    @staticmethod
    def _refuse_if_active(s, monitor_id: str, table_name: str) -> None:
        active = s.scalar(select(RefreshRow).where(RefreshRow.monitor_id == monitor_id,
                                                   RefreshRow.state.in_(cfg.ACTIVE_STATES)))
        if active is not None:
            raise ResourceConflict(f"Refresh {active.id} of the monitor on '{table_name}' is {active.state}; wait "
                                   "for it to finish or cancel it")

    def list_refreshes(self, caller: Principal, table_name: str) -> dict:
        row, _ = self.readable(caller, table_name)
        with self.db.read() as s:
            rows = s.scalars(select(RefreshRow).where(RefreshRow.monitor_id == row.id)
                             .order_by(RefreshRow.id.desc()).limit(MAX_REFRESHES_LISTED))
            return {"refreshes": [cfg.render_refresh(r) for r in rows]}

    def get_refresh(self, caller: Principal, table_name: str, refresh_id: Any) -> dict:
        row, _ = self.readable(caller, table_name)
        return cfg.render_refresh(self._refresh(row, refresh_id, table_name))

    def _refresh(self, monitor: MonitorRow, refresh_id: Any, table_name: str) -> RefreshRow:
        try:
            rid = int(refresh_id)
        except (TypeError, ValueError):
            raise InvalidParameter(f"refresh_id must be an integer; got '{refresh_id}'") from None
        with self.db.read() as s:
            refresh = s.get(RefreshRow, rid)
            if refresh is None or refresh.monitor_id != monitor.id:
                raise ResourceDoesNotExist(f"Refresh {rid} of the monitor on '{table_name}' does not exist")
            s.expunge(refresh)
        return refresh

    def cancel_refresh(self, caller: Principal, table_name: str, refresh_id: Any) -> dict:
        """A PENDING refresh is CANCELED at once; a RUNNING one stops at the engine's next step (it
        says `cancel_requested` until then); a finished one cannot be cancelled (400)."""
        row, _ = self.manageable(caller, table_name)
        refresh = self._refresh(row, refresh_id, table_name)
        now = clock.now()
        with self.db.write() as s:
            done = s.execute(update(RefreshRow).where(RefreshRow.id == refresh.id, RefreshRow.state == cfg.PENDING)
                             .values(state=cfg.CANCELED, active_monitor_id=None, ended_at=now,
                                     message="Canceled before it started"))
            if done.rowcount != 1:
                done = s.execute(update(RefreshRow).where(RefreshRow.id == refresh.id,
                                                          RefreshRow.state == cfg.RUNNING)
                                 .values(cancel_requested=True))
        refresh = self._refresh(row, refresh.id, table_name)
        if done.rowcount != 1:
            raise InvalidState(f"Refresh {refresh.id} already finished ({refresh.state}); only PENDING or RUNNING "
                               "refreshes can be cancelled")
        self.runtime.cancel(refresh.id)
        return cfg.render_refresh(refresh)

    # ---- dashboard -----------------------------------------------------------------------------
    def regenerate_dashboard(self, caller: Principal, table_name: str, body: dict | None = None) -> dict:
        """The dashboard is a page of this server, drawn from the metric tables whenever it is opened:
        regenerating turns it on (after skip_builtin_dashboard) and answers its path as `dashboard_id`.
        `warehouse_id` is accepted and ignored."""
        row, table = self.manageable(caller, table_name)
        config = json.loads(row.config)
        if config.pop("skip_builtin_dashboard", None) is not None:
            with self.db.write() as s:
                s.execute(update(MonitorRow).where(MonitorRow.id == row.id)
                          .values(config=json.dumps(config), updated_at=clock.now()))
        out = {"dashboard_id": cfg.dashboard_path(table.full_name)}
        if config.get("assets_dir"):
            out["parent_folder"] = f"{config['assets_dir'].rstrip('/')}/{table.name}"
        return out


__all__ = ["DRIFT", "METRIC_TABLE", "PROFILE", "MonitoringService", "engine", "same_columns", "state_dir"]
