"""Lakehouse Monitoring through Lakeforge's CLI (`lakeforge monitor ...`, a subprocess against a real
server) and SDK (`lf.monitors`): create an inference-log monitor, refresh it with the progress bar,
list refreshes, read it, write the offline dashboard, alert rules and breaches, a failing refresh's
exit code, errors in one line, and delete."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pytest

from lakeforge import ApiError
from lakeforge.client.monitoring import RefreshFailed
from tests.monitoring_metrics import MODEL_COL, inference_log


@pytest.fixture
def tables(lf, unique):
    """A catalog with an inference log (7 days, drifting from day 4), its baseline (the first 3
    days) and an output schema for the metric tables."""
    catalog = unique("mon")
    lf.catalogs.create(catalog)
    lf.schemas.create(f"{catalog}.ml")
    lf.schemas.create(f"{catalog}.monitoring")
    log = inference_log()
    lf.tables.write(log, f"{catalog}.ml.preds")
    lf.tables.write(inference_log(days=3, shift_from=99, seed=3), f"{catalog}.ml.training")
    yield catalog
    lf.catalogs.delete(catalog, force=True)


def test_cli_create_refresh_get_dashboard_alerts_delete(cli, tables, tmp_path):
    table, out_schema = f"{tables}.ml.preds", f"{tables}.monitoring"
    created = json.loads(cli("monitor", "create", table, "--profile", "inference-log", "--timestamp-col", "ts",
                             "--granularity", "1 day", "--model-id-col", MODEL_COL, "--prediction-col",
                             "prediction", "--label-col", "label", "--proba-col", "proba", "--problem-type",
                             "classification", "--slice", "region", "--slice", "age > 50", "--baseline",
                             f"{tables}.ml.training", "--output-schema", out_schema, "--schedule",
                             "0 0 3 * * ?", "--timezone", "Europe/Paris", "-o", "json").stdout)
    assert created["inference_log"]["problem_type"] == "PROBLEM_TYPE_CLASSIFICATION"
    assert created["inference_log"]["model_id_col"] == MODEL_COL
    assert created["slicing_exprs"] == ["region", "age > 50"]
    assert created["schedule"]["timezone_id"] == "Europe/Paris"
    assert created["profile_metrics_table_name"] == f"{out_schema}.preds_profile_metrics"

    shown = cli("monitor", "get", table).stdout
    for text in ("inference_log", "classification".upper(), f"{out_schema}.preds_drift_metrics", "region, age > 50",
                 "0 0 3 * * ? Europe/Paris", f"/monitors/{table}"):
        assert text in shown, text

    done = cli("monitor", "refresh", table)
    assert re.search(rf"refresh \d+ of {re.escape(table)}: SUCCESS", done.stdout), done.stdout + done.stderr
    runs = json.loads(cli("monitor", "refreshes", table, "-o", "json").stdout)
    assert [r["state"] for r in runs] == ["SUCCESS"] and runs[0]["trigger"] == "MANUAL"
    assert "SUCCESS" in cli("monitor", "refreshes", table).stdout

    # the offline dashboard: plotly inlined, drawn from the metric tables, slices and both models
    wrote = cli("monitor", "dashboard", table, "-o", "report.html")
    assert "wrote report.html" in wrote.stdout
    page = (tmp_path / "report.html").read_text()
    assert "No refresh yet" not in page and "<script src=" not in page and len(page) > 3_000_000
    data = json.loads(re.search(r'id="lf-data">(.*?)</script>', page, re.DOTALL).group(1))
    assert ["region", "EU"] in data["dims"]["slice"] and {"1", "2"} <= set(data["dims"]["model"])
    assert {"age", "income", "plan", ":table"} <= set(data["dims"]["column"])
    assert "accuracy_score" in data["profile"]["metrics"] and data["drift"]["n"] > 0

    # alert rules and the breaches they find on the next refresh
    rule = json.loads(cli("monitor", "alerts", "create", table, "--name", "age-drift", "--metric", "js_distance",
                          "--op", ">", "--threshold", "0.2", "--column", "age", "--drift-type", "BASELINE",
                          "-o", "json").stdout)
    assert rule["name"] == "age-drift" and rule["metric"] == "js_distance"
    assert "age-drift" in cli("monitor", "alerts", "list", table).stdout
    cli("monitor", "refresh", table)
    found = json.loads(cli("monitor", "breaches", table, "-o", "json").stdout)
    assert found and all(b["metric"] == "js_distance" and b["column_name"] == "age" for b in found)
    assert "age-drift" in cli("monitor", "breaches", table).stdout
    cli("monitor", "alerts", "delete", table, "age-drift")
    assert "age-drift" not in cli("monitor", "alerts", "list", table).stdout

    assert "metric tables are kept" in cli("monitor", "delete", table).stdout
    gone = cli("monitor", "get", table, ok=False)
    assert gone.returncode == 1 and gone.stderr.startswith("error: ") and "no monitor" in gone.stderr


def test_cli_refresh_that_fails_exits_1(cli, lf, tables):
    table = f"{tables}.ml.events"
    lf.tables.write(pa.table({"ts": pa.array([1, 2], pa.timestamp("us", tz="UTC")), "x": [1.0, 2.0]}), table)
    cli("monitor", "create", table, "--profile", "time-series", "--timestamp-col", "ts", "--output-schema",
        f"{tables}.monitoring")
    # the timestamp column disappears under the monitor: its next refresh fails
    lf.tables.write(pa.table({"x": [3.0]}), table, mode="overwrite", schema_mode="overwrite")
    failed = cli("monitor", "refresh", table, ok=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert re.search(r"refresh \d+ of .*: FAILED", failed.stderr), failed.stderr
    assert json.loads(cli("monitor", "refreshes", table, "-o", "json").stdout)[0]["state"] == "FAILED"
    with pytest.raises(RefreshFailed) as e:
        lf.monitors.refresh(table)
    assert e.value.refresh["state"] == "FAILED" and e.value.error_code == "REFRESH_FAILED"
    cli("monitor", "refresh", table, "--no-wait")  # queued, not waited for


def test_cli_errors_are_one_line(cli, tables, tmp_path):
    missing = cli("monitor", "create", f"{tables}.ml.nope", "--output-schema", f"{tables}.monitoring", ok=False)
    assert missing.returncode == 1 and missing.stderr.startswith("error: INVALID_PARAMETER_VALUE")
    assert "Traceback" not in missing.stderr
    bad_profile = cli("monitor", "create", f"{tables}.ml.preds", "--profile", "weekly", "--output-schema",
                      f"{tables}.monitoring", ok=False)
    assert bad_profile.returncode == 1 and "profile is snapshot, time_series or inference_log" in bad_profile.stderr
    (tmp_path / "metrics.json").write_text('{"name": "x"}')
    bad_metrics = cli("monitor", "create", f"{tables}.ml.preds", "--custom-metrics", "metrics.json",
                      "--output-schema", f"{tables}.monitoring", ok=False)
    assert bad_metrics.returncode == 1 and "must hold a JSON list" in bad_metrics.stderr
    granularity = cli("monitor", "create", f"{tables}.ml.preds", "--profile", "time-series", "--timestamp-col", "ts",
                      "--granularity", "2 days", "--output-schema", f"{tables}.monitoring", ok=False)
    assert granularity.returncode == 1 and "2 days" in granularity.stderr


def test_sdk_monitor_lifecycle(lf, tables, tmp_path):
    table = f"{tables}.ml.preds"
    metrics = [{"type": "aggregate", "name": "age_sq", "input_columns": ["age"],
                "definition": "avg(`{{input_column}}` * `{{input_column}}`)", "output_data_type": "double"}]
    info = lf.monitors.create(table, output_schema=f"{tables}.monitoring", profile="time_series",
                              timestamp_col="ts", granularities=["1 day", "1 week"], slicing_exprs=["region"],
                              custom_metrics=metrics)
    assert info.time_series.granularities == ["1 day", "1 week"]
    assert info.custom_metrics[0].type == "CUSTOM_METRIC_TYPE_AGGREGATE"
    seen = []
    run = lf.monitors.refresh(table, on_progress=seen.append, timeout=300)
    assert run.state == "SUCCESS" and seen[-1].state == "SUCCESS"
    assert lf.monitors.get_refresh(table, run.refresh_id).state == "SUCCESS"
    assert [r.refresh_id for r in lf.monitors.refreshes(table)] == [run.refresh_id]
    updated = lf.monitors.update(table, slicing_exprs=["plan"], schedule="0 30 * * * ?")
    assert updated.slicing_exprs == ["plan"] and updated.schedule.quartz_cron_expression == "0 30 * * * ?"
    assert updated.time_series.timestamp_col == "ts"  # kept
    page = lf.monitors.dashboard(table, tmp_path / "d.html")
    assert (tmp_path / "d.html").read_text() == page and "age_sq" in page
    assert lf.monitors.alerts.list(table) == [] and lf.monitors.breaches(table) == []
    lf.monitors.delete(table)
    with pytest.raises(ApiError) as e:
        lf.monitors.get(table)
    assert e.value.status == 404
    assert lf.tables.exists(f"{tables}.monitoring.preds_profile_metrics")  # the metric tables stay
