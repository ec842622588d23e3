"""Lakehouse Monitoring: monitors on tables, refreshes with a progress bar, the dashboard, alerts."""

import json
from pathlib import Path
from typing import Annotated

import typer

from lakeforge.cli._common import Output, client, command, emit

NAME = "monitor"
app = typer.Typer(no_args_is_help=True)
alerts = typer.Typer(no_args_is_help=True, help="Alert rules on a monitor's metrics (a webhook and a log entry "
                                                "once per breach).")
app.add_typer(alerts, name="alerts")

REFRESH_COLUMNS = ["refresh_id", "state", "trigger", "start_time_ms", "end_time_ms", "message"]
ALERT_COLUMNS = ["name", "metric", "op", "threshold", "column_name", "slice_key", "slice_value", "drift_type",
                 "granularity", "enabled"]
BREACH_COLUMNS = ["fired_at_ms", "alert_name", "metric", "op", "threshold", "value", "column_name", "window",
                  "granularity", "slice", "model_id", "drift_type"]


Str = Annotated[str | None, typer.Option()]  # a plain optional option: --name-of-the-parameter


@app.command()
@command
def create(
    table: str,
    output_schema: Annotated[str, typer.Option(help="CAT.SCHEMA for the two metric tables")],
    profile: Annotated[str, typer.Option(help="snapshot, time-series or inference-log")] = "snapshot",
    timestamp_col: Annotated[str | None, typer.Option(help="Event time column (time series, inference log)")] = None,
    granularity: Annotated[list[str] | None, typer.Option(help='Window, e.g. "1 day" (repeatable; default '
                                                          '"1 day")')] = None,
    model_id_col: Str = None,
    prediction_col: Str = None,
    label_col: Str = None,
    proba_col: Annotated[str | None, typer.Option(help="Predicted probability column")] = None,
    problem_type: Annotated[str | None, typer.Option(help="classification or regression")] = None,
    slice_expr: Annotated[list[str] | None, typer.Option("--slice", help="Slicing expression, e.g. region or "
                                                         "'age > 40' (repeatable)")] = None,
    baseline: Annotated[str | None, typer.Option(help="Baseline table for drift")] = None,
    schedule: Annotated[str | None, typer.Option(help='Quartz cron, e.g. "0 0 * * * ?"')] = None,
    timezone: Annotated[str, typer.Option(help="Time zone of --schedule")] = "UTC",
    custom_metrics: Annotated[Path | None, typer.Option(help="JSON file: a list of custom metrics (type, name, "
                                                        "input_columns, definition, output_data_type)")] = None,
    output: Output = "table",
):
    """Create a monitor on a table; its metric tables fill on the first refresh."""
    metrics = None
    if custom_metrics is not None:
        metrics = json.loads(custom_metrics.read_text())
        if not isinstance(metrics, list) or not all(isinstance(m, dict) for m in metrics):
            raise ValueError(f"{custom_metrics} must hold a JSON list of custom metric objects")
    info = client().monitors.create(
        table, output_schema=output_schema, profile=profile, timestamp_col=timestamp_col,
        granularities=granularity or None, model_id_col=model_id_col, prediction_col=prediction_col,
        label_col=label_col, prediction_proba_col=proba_col, problem_type=problem_type,
        slicing_exprs=slice_expr or None, baseline_table=baseline, custom_metrics=metrics, schedule=schedule,
        timezone=timezone)
    _summary(info, output)


@app.command()
@command
def get(table: str, output: Output = "table"):
    """A monitor's configuration, status, metric tables and latest refreshes."""
    lf = client()
    info = lf.monitors.get(table)
    if output == "json":
        emit(info, output)
        return
    _summary(info, output)
    runs = lf.monitors.refreshes(table)[:5]
    if runs:
        emit(runs, output, REFRESH_COLUMNS, title="latest refreshes")
    typer.echo(f"dashboard: {lf.host}/monitors/{table}")


@app.command()
@command
def refresh(table: str,
            wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the refresh ends")] = True,
            timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 3600):
    """Refresh the metric tables (only the windows new data fell into); a progress bar while it runs.
    Exits 1 if the refresh fails or is canceled."""
    lf = client()
    run = lf.monitors.refresh(table, wait=False)
    if not wait:
        typer.echo(f"refresh {run['refresh_id']} of {table}: {run['state']}")
        return
    run = _follow(lf, table, run, timeout)
    seconds = ((run.get("end_time_ms") or 0) - (run.get("start_time_ms") or 0)) / 1000
    line = f"refresh {run['refresh_id']} of {table}: {run['state']}"
    if run.get("end_time_ms"):
        line += f" in {seconds:.1f} s"
    if run.get("message"):
        line += f" ({run['message']})"
    typer.echo(line, err=run["state"] != "SUCCESS")
    if run["state"] != "SUCCESS":
        raise typer.Exit(1)


def _follow(lf, table: str, run: dict, timeout: float) -> dict:
    """Poll the refresh, feeding a rich progress bar from its `progress` and `progress_message`
    (a pulsing bar where the server sends no progress)."""
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  TimeElapsedColumn(), transient=False) as bar:
        task = bar.add_task(f"refresh {run['refresh_id']}: {run['state']}", total=None)

        def show(r: dict) -> None:
            progress = r.get("progress")
            done = r.get("state") in ("SUCCESS", "FAILED", "CANCELED")
            text = r.get("progress_message") if not done and r.get("progress_message") else r.get("state")
            if done and r.get("state") == "SUCCESS":
                progress = 1.0
            bar.update(task, description=f"refresh {r['refresh_id']}: {text}",
                       total=100 if progress is not None else None,
                       completed=round(100 * progress) if progress is not None else 0)

        return lf.monitors.wait_refresh(table, run["refresh_id"], timeout, on_progress=show, check=False)


@app.command()
@command
def refreshes(table: str, output: Output = "table"):
    """The monitor's recent refreshes, newest first."""
    emit(client().monitors.refreshes(table), output, REFRESH_COLUMNS, title=f"refreshes of {table}")


@app.command()
@command
def delete(table: str):
    """Delete the monitor; its metric tables stay."""
    client().monitors.delete(table)
    typer.echo(f"deleted the monitor of {table} (its metric tables are kept)")


@app.command()
@command
def dashboard(table: str, out: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write")]):
    """Write the monitor's dashboard as one HTML file that opens offline (plotly.js inside)."""
    page = client().monitors.dashboard(table, out)
    typer.echo(f"wrote {out} ({len(page.encode()) / 1e6:.1f} MB)")


@app.command()
@command
def breaches(table: str, output: Output = "table"):
    """Alert breaches of the monitor's rules, newest first."""
    found = client().monitors.breaches(table)
    if output == "json":
        emit(found, output)
        return
    emit([{**b, "slice": f"{b['slice_key']} = {b['slice_value']}" if b.get("slice_key") else None,
           "window": _window(b.get("window"))} for b in found], output, BREACH_COLUMNS, title=f"breaches of {table}")


# ---- alerts ------------------------------------------------------------------------------------------
@alerts.command("create")
@command
def alert_create(
    table: str,
    name: Annotated[str, typer.Option()],
    metric: Annotated[str, typer.Option(help="A metric column, e.g. js_distance or f1_score")],
    op: Annotated[str, typer.Option(help=">, >=, <, <=, == or !=")],
    threshold: Annotated[float, typer.Option()],
    column: Annotated[str | None, typer.Option(help="Only this column (default: any)")] = None,
    slice_key: Str = None,
    slice_value: Str = None,
    drift_type: Annotated[str | None, typer.Option(help="CONSECUTIVE or BASELINE")] = None,
    granularity: Str = None,
    webhook: Annotated[str | None, typer.Option(help="URL called once per breach")] = None,
    output: Output = "table",
):
    """Create an alert rule: `metric op threshold` on the monitor's metric tables."""
    rule = client().monitors.alerts.create(table, name, metric, op, threshold, column_name=column,
                                           slice_key=slice_key, slice_value=slice_value, drift_type=drift_type,
                                           granularity=granularity, webhook_url=webhook)
    emit(rule, output, ALERT_COLUMNS if output == "table" else None)


@alerts.command("list")
@command
def alert_list(table: str, output: Output = "table"):
    """The monitor's alert rules."""
    emit(client().monitors.alerts.list(table), output, ALERT_COLUMNS if output == "table" else None,
         title=f"alerts of {table}")


@alerts.command("delete")
@command
def alert_delete(table: str, name: str):
    """Delete an alert rule."""
    client().monitors.alerts.delete(table, name)
    typer.echo(f"deleted alert {name} of {table}")


# ---- helpers -------------------------------------------------------------------------------------------
def _summary(info: dict, output: str) -> None:
    if output == "json":
        emit(info, output)
        return
    kind = next((k for k in ("inference_log", "time_series", "snapshot") if k in info), "snapshot")
    p = info.get(kind) or {}
    rows = [("table", info.get("table_name")), ("status", info.get("status")),
            ("profile", kind), ("monitor version", info.get("monitor_version"))]
    rows += [(k.replace("_", " "), p.get(k)) for k in ("timestamp_col", "granularities", "model_id_col",
                                                        "prediction_col", "label_col", "prediction_proba_col",
                                                        "problem_type") if p.get(k)]
    sched = info.get("schedule") or {}
    rows += [("slices", info.get("slicing_exprs")), ("baseline", info.get("baseline_table_name")),
             ("output schema", info.get("output_schema_name")),
             ("profile metrics", info.get("profile_metrics_table_name")),
             ("drift metrics", info.get("drift_metrics_table_name")),
             ("custom metrics", [m.get("name") for m in info.get("custom_metrics") or []] or None),
             ("schedule", f"{sched['quartz_cron_expression']} {sched.get('timezone_id', '')} "
                          f"{sched.get('pause_status', '')}".strip() if sched else None),
             ("last failure", info.get("latest_monitor_failure_msg"))]
    emit([{"field": k, "value": ", ".join(map(str, v)) if isinstance(v, list) else v} for k, v in rows
          if v not in (None, "", [])], output, ["field", "value"], title=f"monitor of {info.get('table_name')}")


def _window(w: dict | None) -> str | None:
    from lakeforge.cli._common import _cell

    return f"{_cell(w.get('start'))} - {_cell(w.get('end'))}" if w else None
