"""Lakehouse Monitoring from the SDK: monitors on catalog tables, their refreshes, dashboard and alerts.

    lf.monitors.create("main.ml.preds", output_schema="main.monitoring", profile="inference_log",
                       timestamp_col="ts", granularities=["1 day"], model_id_col="model_version",
                       prediction_col="prediction", label_col="label", problem_type="classification")
    run = lf.monitors.refresh("main.ml.preds")          # waits; raises RefreshFailed on FAILED
    lf.monitors.dashboard("main.ml.preds", "report.html")

The REST API is Databricks' legacy monitor API (`/api/2.1/unity-catalog/tables/{table}/monitor`), so
these are thin: keyword arguments become its body. Refreshes carry Lakeforge's `progress` (0..1) and
`progress_message` while they run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lakeforge.client.catalog import UC, _Area
from lakeforge.client.connection import ApiError, Record

PROFILES = {"snapshot": "snapshot", "time_series": "time_series", "time-series": "time_series",
            "timeseries": "time_series", "inference_log": "inference_log", "inference-log": "inference_log",
            "inference": "inference_log"}
PROBLEMS = {"classification": "PROBLEM_TYPE_CLASSIFICATION", "regression": "PROBLEM_TYPE_REGRESSION"}
METRIC_TYPES = {"aggregate": "CUSTOM_METRIC_TYPE_AGGREGATE", "derived": "CUSTOM_METRIC_TYPE_DERIVED",
                "drift": "CUSTOM_METRIC_TYPE_DRIFT"}
DONE = ("SUCCESS", "FAILED", "CANCELED")


class RefreshFailed(ApiError):
    """A refresh ended FAILED; the metric tables keep their previous version. `refresh` holds it."""

    def __init__(self, refresh: Record, table: str):
        super().__init__(200, "REFRESH_FAILED", f"refresh {refresh.get('refresh_id')} of '{table}' failed: "
                         f"{refresh.get('message') or 'no reason given'}")
        self.refresh = refresh


def _monitor(table: str) -> str:
    return f"{UC}/tables/{table}/monitor"


class Monitors(_Area):
    def __init__(self, conn):
        super().__init__(conn)
        self.alerts = Alerts(conn)

    # ---- monitors ------------------------------------------------------------------------------
    def create(self, table: str, *, output_schema: str, profile: str = "snapshot", timestamp_col: str | None = None,
               granularities: list[str] | None = None, model_id_col: str | None = None,
               prediction_col: str | None = None, label_col: str | None = None,
               prediction_proba_col: str | None = None, problem_type: str | None = None,
               slicing_exprs: list[str] | None = None, baseline_table: str | None = None,
               custom_metrics: list[dict] | None = None, schedule: str | None = None, timezone: str = "UTC",
               notifications: dict | None = None, assets_dir: str | None = None) -> Record:
        """Create the monitor of `table`. `profile` is snapshot, time_series or inference_log;
        `granularities` default to ["1 day"]; `problem_type` is classification or regression;
        `custom_metrics` are MonitorMetric dicts (`type` may be aggregate, derived or drift);
        `schedule` is a Quartz cron expression in `timezone`."""
        body = {"output_schema_name": output_schema, "assets_dir": assets_dir or f"/Shared/lakeforge/{table}",
                "baseline_table_name": baseline_table, "slicing_exprs": slicing_exprs,
                "custom_metrics": _metrics(custom_metrics), "notifications": notifications,
                **_profile(profile, timestamp_col, granularities, model_id_col, prediction_col, label_col,
                           prediction_proba_col, problem_type)}
        if schedule:
            body["schedule"] = {"quartz_cron_expression": schedule, "timezone_id": timezone}
        return self._c.request("POST", _monitor(table), json=_present(body))

    def get(self, table: str) -> Record:
        return self._c.request("GET", _monitor(table))

    def update(self, table: str, **fields: Any) -> Record:
        """Change the fields given, in the wire shape (`slicing_exprs=[...]`, `schedule={...}`,
        `baseline_table_name=...`, `inference_log={...}`, ...); the others keep their values.
        `schedule="CRON"` (with `timezone=`) and `custom_metrics` with short types are accepted too."""
        current = self.get(table)
        timezone = fields.pop("timezone", "UTC")
        if isinstance(fields.get("schedule"), str):
            fields["schedule"] = {"quartz_cron_expression": fields["schedule"], "timezone_id": timezone}
        if "custom_metrics" in fields:
            fields["custom_metrics"] = _metrics(fields["custom_metrics"]) or []
        body = {"output_schema_name": fields.pop("output_schema_name", current.get("output_schema_name")), **fields}
        return self._c.request("PUT", _monitor(table), json=body)

    def delete(self, table: str) -> None:
        """Delete the monitor; its metric tables stay (as in Databricks)."""
        self._c.request("DELETE", _monitor(table))

    # ---- refreshes -----------------------------------------------------------------------------
    def refresh(self, table: str, wait: bool = True, timeout: float = 3600,
                on_progress: Callable[[Record], None] | None = None) -> Record:
        """Start a refresh; with `wait`, poll until it ends and raise RefreshFailed if it failed.
        `on_progress` is called with the refresh after every poll (its `progress`, `progress_message`)."""
        run = self._c.request("POST", f"{_monitor(table)}/refreshes")
        if not wait:
            return run
        return self.wait_refresh(table, run["refresh_id"], timeout, on_progress)

    def wait_refresh(self, table: str, refresh_id: int, timeout: float = 3600,
                     on_progress: Callable[[Record], None] | None = None, check: bool = True) -> Record:
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            run = self.get_refresh(table, refresh_id)
            if on_progress is not None:
                on_progress(run)
            if run.get("state") in DONE:
                if check and run["state"] == "FAILED":
                    raise RefreshFailed(run, table)
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"refresh {refresh_id} of '{table}' is still {run.get('state')} after {timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def get_refresh(self, table: str, refresh_id: int) -> Record:
        return self._c.request("GET", f"{_monitor(table)}/refreshes/{refresh_id}")

    def refreshes(self, table: str) -> list[Record]:
        """The most recent refreshes, newest first."""
        return self._c.request("GET", f"{_monitor(table)}/refreshes").get("refreshes", [])

    def cancel_refresh(self, table: str, refresh_id: int) -> None:
        self._c.request("POST", f"{_monitor(table)}/refreshes/{refresh_id}/cancel")

    # ---- dashboard and breaches ----------------------------------------------------------------
    def dashboard(self, table: str, path: str | Path | None = None) -> str:
        """The dashboard page as one offline HTML file (plotly.js inlined), written to `path` if given."""
        page = self._c.request("GET", f"/monitors/{table}", params={"offline": 1}, raw=True).text
        if path is not None:
            Path(path).write_text(page, encoding="utf-8")
        return page

    def breaches(self, table: str) -> list[Record]:
        """Alert breaches of the monitor's rules, newest first."""
        return self._c.request("GET", f"{_monitor(table)}/breaches").get("breaches", [])


class Alerts(_Area):
    """Alert rules on a monitor's metrics: `metric op threshold`, optionally narrowed to a column,
    slice, drift type or granularity; a breach logs and calls `webhook_url` once."""

    def create(self, table: str, name: str, metric: str, op: str, threshold: float, *, column_name: str | None = None,
               slice_key: str | None = None, slice_value: str | None = None, drift_type: str | None = None,
               granularity: str | None = None, webhook_url: str | None = None) -> Record:
        return self._c.request("POST", f"{_monitor(table)}/alerts", json=_present({
            "name": name, "metric": metric, "op": op, "threshold": threshold, "column_name": column_name,
            "slice_key": slice_key, "slice_value": slice_value, "drift_type": drift_type,
            "granularity": granularity, "webhook_url": webhook_url}))

    def list(self, table: str) -> list[Record]:
        return self._c.request("GET", f"{_monitor(table)}/alerts").get("alerts", [])

    def delete(self, table: str, name: str) -> None:
        self._c.request("DELETE", f"{_monitor(table)}/alerts/{name}")


def _profile(profile: str, timestamp_col, granularities, model_id_col, prediction_col, label_col, proba_col,
             problem_type) -> dict:
    kind = PROFILES.get(profile.lower())
    if kind is None:
        raise ValueError(f"profile is snapshot, time_series or inference_log; got '{profile}'")
    if kind == "snapshot":
        return {"snapshot": {}}
    out = {"timestamp_col": timestamp_col, "granularities": list(granularities or ["1 day"])}
    if kind == "inference_log":
        problem = PROBLEMS.get((problem_type or "").lower(), problem_type)
        out |= {"model_id_col": model_id_col, "prediction_col": prediction_col, "label_col": label_col,
                "prediction_proba_col": proba_col, "problem_type": problem}
    return {kind: _present(out)}


def _metrics(metrics: list[dict] | None) -> list[dict] | None:
    if metrics is None:
        return None
    out = []
    for m in metrics:
        if not isinstance(m, dict):
            raise TypeError(f"a custom metric is an object with type, name, input_columns, definition and "
                             f"output_data_type; got {m!r}")
        kind = str(m.get("type", ""))
        out.append({**m, "type": METRIC_TYPES.get(kind.lower(), kind)})
    return out


def _present(body: dict) -> dict:
    return {k: v for k, v in body.items() if v is not None}


__all__ = ["Alerts", "Monitors", "RefreshFailed"]
