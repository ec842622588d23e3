"""What a monitor's dashboard page is drawn from, as the caller may see it: the monitor, its latest
refresh and breaches (through the monitoring service, which checks SELECT on the monitored table)
and its two metric tables, read with deltalake.

Seeing the dashboard needs only SELECT on the monitored table, as in Databricks: the metric tables
are read here on the service's authority, not with the caller's grants on them.
"""

from __future__ import annotations

import logging

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from lakeforge.audit.context import note_securable
from lakeforge.catalog import securables as sec
from lakeforge.catalog.privileges import Kind
from lakeforge.catalog.storage import to_path
from lakeforge.errors import NotFound
from lakeforge.identity.principal import Principal
from lakeforge.monitoring import dashboard

log = logging.getLogger(__name__)


def page(service, alerts, caller: Principal, table_name: str, *, offline: bool, base_url: str = "") -> str:
    """The dashboard HTML of the monitor on `table_name` (403 without SELECT on it, 404 without a
    monitor); `service` is the MonitoringService, `alerts` the AlertRules."""
    info = dict(service.get(caller, table_name))
    refreshes = service.list_refreshes(caller, table_name).get("refreshes") or []
    if refreshes:
        info["latest_refresh"] = refreshes[0]  # newest first
    breaches = alerts.breaches(caller, table_name, dashboard.MAX_BREACHES + 1).get("breaches") or []
    profile = _read(service, info.get("profile_metrics_table_name"))
    drift = _read(service, info.get("drift_metrics_table_name"))
    note_securable(table_name, override=True)  # the audited securable stays the monitored table
    return dashboard.render(info, profile, drift, breaches, offline=offline, base_url=base_url)


def _read(service, full_name: str | None) -> pa.Table | None:
    """A metric table's rows; None when it was dropped or cannot be read (the page then shows what
    it has rather than failing)."""
    if not full_name:
        return None
    try:
        with service.db.read() as s:
            location = sec.get_row(s, Kind.TABLE, full_name).storage_location
        return DeltaTable(str(to_path(location))).to_pyarrow_table()
    except NotFound:
        return None
    except (DeltaError, OSError) as e:
        log.warning("dashboard: cannot read metric table %s: %s", full_name, e)
        return None


__all__ = ["page"]
