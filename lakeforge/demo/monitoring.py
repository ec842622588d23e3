"""The demo's monitoring steps: unpack the endpoint's inference table into one row per scored customer
(labels joined as they arrive), then watch it with an `inference_log` monitor and a drift alert.

The monitor compares each day with a baseline: training-time customers in the inference table's shape,
scored by the model that served the traffic. Its request ids are left empty, so they are not compared
(every id is new each day; their "drift" would mean nothing).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa

from lakeforge.client import ApiError
from lakeforge.demo import (
    BASELINE,
    CUSTOMERS,
    ENDPOINT,
    INFERENCE,
    LABELS,
    SCHEMA,
    data,
    replay,
    train,
)
from lakeforge.demo.steps import DemoError, Progress, first_champion
from lakeforge.demo.workspace import Workspace

INFERENCE_LOGS = "/api/2.0/lakeforge/inference-logs"
ALERT = "feature drift"
DRIFT_THRESHOLD = 0.2
SLICE = "plan"
NOT_FEATURES = {"prediction", "prediction_proba", "label"}


# ---- (e) the payload table unpacked, labels joined ---------------------------------------------------
def inference_log(ws: Workspace, progress: Progress) -> str:
    shape = ws.shape
    try:
        ws.lf.request("GET", f"{INFERENCE_LOGS}/{INFERENCE}")
    except ApiError as e:
        if e.status != 404:
            raise
        progress(0.2, f"registering {INFERENCE}")
        counts = ws.lf.request("POST", INFERENCE_LOGS, json={
            "endpoint_name": ENDPOINT, "target_table": INFERENCE, "labels_table": LABELS,
            "labels_request_id_col": "request_id", "labels_label_col": data.LABEL,
            # The simulated event time each request row carries, not the (real) time it was sent.
            "timestamp_feature": data.EVENT_TIME})["sync"]
    else:
        progress(0.2, f"syncing {INFERENCE}")
        counts = ws.lf.request("POST", f"{INFERENCE_LOGS}/sync", json={"target_table": INFERENCE})
    # Count the demo's own rows: requests anyone else sends to the endpoint are unpacked too.
    found = ws.sql(f"SELECT count(*) AS n, count(label) AS labeled FROM {INFERENCE} "
                   f"WHERE request_id LIKE '{replay.PREFIX}d%'")[0]
    rows, labeled = shape.days * shape.per_day, (shape.days - 1) * shape.per_day
    if (found["n"], found["labeled"]) != (rows, labeled):
        raise DemoError(f"{INFERENCE} has {found['n']} demo rows ({found['labeled']} labeled), "
                        f"expected {rows} ({labeled} labeled)")
    ws.report["inference_changed"] = bool(counts.get("committed"))
    what = (f"{counts['rows_appended']} rows appended, {counts['labels_merged']} labels merged"
            if counts.get("committed") else "reused")
    return f"{INFERENCE}: {rows:,} rows, {labeled:,} labeled, day {shape.days}'s labels still to come ({what})"


# ---- (f) the monitor, its baseline and the drift alert -------------------------------------------------
def monitor(ws: Workspace, progress: Progress) -> str:
    progress(0.05, f"baseline {BASELINE}")
    baseline_note = _baseline(ws)
    created = _ensure_monitor(ws)
    alert_new = _ensure_alert(ws)
    done = [r for r in ws.lf.monitors.refreshes(INFERENCE) if r.get("state") == "SUCCESS"]
    if created or alert_new or not done or ws.report.get("inference_changed"):
        def on_progress(run) -> None:
            progress(0.3 + 0.6 * float(run.get("progress") or 0.0), run.get("progress_message") or run.get("state"))

        run = ws.lf.monitors.refresh(INFERENCE, timeout=600, on_progress=on_progress)
        refreshed = f"refresh {run['refresh_id']}"
    else:
        refreshed = "metrics reused"
    info = ws.lf.monitors.get(INFERENCE)
    metrics = ws.sql(f"SELECT count(*) AS n FROM {info['profile_metrics_table_name']}")[0]["n"]
    if not metrics:
        raise DemoError(f"the monitor of {INFERENCE} has no metrics in {info['profile_metrics_table_name']}")
    drifted, in_slices, later = drifted_columns(ws)
    if not drifted:
        raise DemoError(f"the alert '{ALERT}' found no drifted column (js_distance > {DRIFT_THRESHOLD}); "
                        f"see lakeforge monitor breaches {INFERENCE}")
    ws.report["dashboard"] = f"/monitors/{INFERENCE}"
    ws.report["drift"] = {c: when.date().isoformat() for c, when in drifted.items()}
    features = [c for c in drifted if c not in NOT_FEATURES]
    since = min(drifted[c] for c in features) if features else None
    ws.report["drift_since"] = since.date().isoformat() if since else None
    listing = ", ".join(f"{c} (from {when:%b %d})" for c, when in drifted.items())
    return (f"inference_log monitor, {metrics} profile metric rows ({refreshed}, {baseline_note}); "
            f"alert '{ALERT}' fired on: {listing}; {in_slices} more breaches in '{SLICE}' slices"
            + (f", {later} in windows after the replayed days" if later else ""))


def drifted_columns(ws: Workspace) -> tuple[dict[str, datetime], int, int]:
    """Columns the drift alert fired on for the whole table in the replayed days, each with the first
    window it fired in; and how many other breaches it found: in slices (small slices are noisier),
    and in later windows (requests sent to the endpoint since, e.g. while following the Tour: a window
    of a handful of rows differs from any baseline)."""
    first: dict[str, datetime] = {}
    in_slices = later = 0
    end = ws.first_day + timedelta(days=ws.shape.days)
    for b in ws.lf.monitors.breaches(INFERENCE):
        if b.get("alert_name") != ALERT or not b.get("column_name"):
            continue
        start = datetime.fromtimestamp(b["window"]["start"] / 1000, UTC)
        if start >= end:
            later += 1
        elif b.get("slice_key") is not None:
            in_slices += 1
        else:
            column = b["column_name"]
            first[column] = min(first.get(column, start), start)
    return dict(sorted(first.items(), key=lambda item: (item[1], item[0]))), in_slices, later


def _baseline(ws: Workspace) -> str:
    """Training-time rows in the inference table's shape, scored by the model that served the traffic."""
    size = max(ws.shape.rows // 10, 1)
    if ws.table_exists(BASELINE) and ws.sql(f"SELECT count(*) AS n FROM {BASELINE}")[0]["n"] == size:
        return "baseline reused"
    frame = ws.lf.tables.read(CUSTOMERS).to_pandas().sort_values(data.EVENT_TIME).tail(size)
    version = first_champion(ws)
    if version is None:
        raise DemoError("no model version tagged as the demo's first champion; run the demo again")
    proba = train.churn_proba(train.load(version), frame)
    rows = pd.DataFrame({"request_id": pd.Series([None] * size, dtype="string"),
                         "databricks_request_id": pd.Series([None] * size, dtype="string"),
                         **{c: frame[c].to_numpy() for c in data.FEATURES},
                         "prediction": (proba >= 0.5).astype(float), "prediction_proba": proba,
                         "label": frame[data.LABEL].to_numpy().astype(float)})
    table = pa.Table.from_pandas(rows, preserve_index=False)
    table = table.append_column("status_code", pa.array([200] * size, pa.int32()))
    ws.lf.tables.write(table, BASELINE, mode="overwrite", schema_mode="overwrite" if ws.table_exists(BASELINE)
                       else None)
    return f"baseline of {size:,} training rows"


def _ensure_monitor(ws: Workspace) -> bool:
    from databricks.sdk.service.catalog import (
        MonitorInferenceLog,
        MonitorInferenceLogProblemType,
    )

    try:
        info = ws.lf.monitors.get(INFERENCE)
    except ApiError as e:
        if e.status != 404:
            raise
    else:
        if info.get("baseline_table_name") != BASELINE:
            ws.lf.monitors.update(INFERENCE, baseline_table_name=BASELINE)
        return False
    ws.w.quality_monitors.create(
        table_name=INFERENCE, output_schema_name=SCHEMA, assets_dir="/Shared/lakeforge-demo",
        inference_log=MonitorInferenceLog(
            problem_type=MonitorInferenceLogProblemType.PROBLEM_TYPE_CLASSIFICATION, timestamp_col="timestamp",
            granularities=["1 day"], model_id_col="model_id", prediction_col="prediction", label_col="label",
            prediction_proba_col="prediction_proba"),
        baseline_table_name=BASELINE, slicing_exprs=[SLICE])
    return True


def _ensure_alert(ws: Workspace) -> bool:
    if any(a.get("name") == ALERT for a in ws.lf.monitors.alerts.list(INFERENCE)):
        return False
    ws.lf.monitors.alerts.create(INFERENCE, ALERT, "js_distance", ">", DRIFT_THRESHOLD, drift_type="BASELINE")
    return True
