"""Step 5 by hand: unpack the endpoint's inference table into one row per scored customer, put an
inference_log monitor on it with databricks-sdk, refresh it and read its metrics.
"""

import os
import time

from _names import ENDPOINT, PAYLOAD, PREDICTIONS, SCHEMA
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound
from databricks.sdk.service.catalog import (
    MonitorInferenceLog,
    MonitorInferenceLogProblemType,
    MonitorRefreshInfoState,
)

from lakeforge import ApiError, Client

host, token = os.environ["LAKEFORGE_HOST"], os.environ["LAKEFORGE_TOKEN"]
lf, w = Client(), WorkspaceClient(host=host, token=token)

# The inference table fills within a few seconds of the requests (a background flush).
deadline = time.monotonic() + 60
while not (lf.tables.exists(PAYLOAD) and lf.sql(f"SELECT count(*) AS n FROM {PAYLOAD}").to_pylist()[0]["n"]):
    if time.monotonic() > deadline:
        raise SystemExit(f"{PAYLOAD} is still empty: run 04_serve_query.py first")
    time.sleep(1)

try:  # a Lakeforge extension: payload JSON -> features, prediction, model id, time (and labels, when given)
    sync = lf.request("POST", "/api/2.0/lakeforge/inference-logs",
                      json={"endpoint_name": ENDPOINT, "target_table": PREDICTIONS})["sync"]
except ApiError as e:
    if e.status != 409:
        raise
    sync = lf.request("POST", "/api/2.0/lakeforge/inference-logs/sync", json={"target_table": PREDICTIONS})
print(f"{PREDICTIONS}: {sync['rows_appended']} new rows")

try:
    w.quality_monitors.get(PREDICTIONS)
except NotFound:  # not monitored yet
    w.quality_monitors.create(
        table_name=PREDICTIONS, output_schema_name=SCHEMA, assets_dir=f"/Shared/{PREDICTIONS}",
        inference_log=MonitorInferenceLog(
            problem_type=MonitorInferenceLogProblemType.PROBLEM_TYPE_CLASSIFICATION, timestamp_col="timestamp",
            granularities=["1 day"], model_id_col="model_id", prediction_col="prediction"),
        slicing_exprs=["contract"])
    print(f"created an inference_log monitor on {PREDICTIONS}")

run = w.quality_monitors.run_refresh(PREDICTIONS)
while run.state in (MonitorRefreshInfoState.PENDING, MonitorRefreshInfoState.RUNNING):
    time.sleep(0.5)
    run = w.quality_monitors.get_refresh(PREDICTIONS, run.refresh_id)
print(f"refresh {run.refresh_id}: {run.state.value}")
metrics = w.quality_monitors.get(PREDICTIONS).profile_metrics_table_name
print(lf.sql(f"SELECT column_name, count, avg, percent_null FROM {metrics} "
             "WHERE slice_key IS NULL AND model_id IS NULL AND column_name IN ('monthly_charges', 'prediction') "
             "ORDER BY column_name").to_pandas().to_string(index=False))
print(f"dashboard: {host}/monitors/{PREDICTIONS}")
