"""The Monitor API through databricks-sdk's `w.quality_monitors`, unmodified, against a real server:
time-series and inference-log monitors, refreshes (incremental, cancelled, scheduled, left behind by a
killed server), the checks of a bad config, privileges, conflicts, and alert rules whose webhooks
reach a receiver started here exactly once per breach; create and refresh once more on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from databricks.sdk.errors import (
    BadRequest,
    NotFound,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceConflict,
)
from databricks.sdk.service.catalog import (
    MonitorCronSchedule,
    MonitorCronSchedulePauseStatus,
    MonitorInferenceLog,
    MonitorInferenceLogProblemType,
    MonitorMetric,
    MonitorMetricType,
    MonitorRefreshInfoState,
    MonitorRefreshInfoTrigger,
    MonitorSnapshot,
    MonitorTimeSeries,
    PermissionsChange,
    Privilege,
)
from deltalake import DeltaTable
from sklearn.metrics import accuracy_score

from lakeforge import Client
from tests.harness import Server, start_server

UC = "/api/2.1/unity-catalog"
DONE = {MonitorRefreshInfoState.SUCCESS, MonitorRefreshInfoState.FAILED, MonitorRefreshInfoState.CANCELED}
TODAY = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DAYS = [TODAY - dt.timedelta(days=2), TODAY - dt.timedelta(days=1), TODAY]


@pytest.fixture(scope="module")
def mon(tmp_path_factory) -> Server:
    """A server whose scheduler ticks every second and which runs one refresh at a time (so a second
    monitor's refresh waits, PENDING, while the first one runs)."""
    srv = start_server(tmp_path_factory.mktemp("lakeforge-monitoring"),
                       env={"LAKEFORGE_MONITORING_SCHEDULER_SECONDS": "1", "LAKEFORGE_MONITORING_REFRESH_THREADS": "1"})
    yield srv
    srv.stop()


SQUARED_AVG = MonitorMetric(type=MonitorMetricType.CUSTOM_METRIC_TYPE_AGGREGATE, name="squared_avg",
                            input_columns=["x"], definition="avg(`{{input_column}}` * `{{input_column}}`)",
                            output_data_type='{"name":"squared_avg","type":"double","nullable":true,"metadata":{}}')


def namespace(srv: Server, name: str) -> str:
    with srv.client() as c:
        c.post(f"{UC}/catalogs", json={"name": name}).raise_for_status()
        c.post(f"{UC}/schemas", json={"name": "s", "catalog_name": name}).raise_for_status()
    return f"{name}.s"


@pytest.fixture
def ns(mon, unique):
    cat = unique("mon")
    yield namespace(mon, cat)
    with mon.client() as c:
        c.delete(f"{UC}/catalogs/{cat}", params={"force": "true"})


def write(srv: Server, full_name: str, data: pa.Table) -> None:
    with Client(srv.url, token=srv.admin_token) as lf:
        lf.tables.write(data, full_name)


def events(day: dt.datetime, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    ts = [day + dt.timedelta(minutes=int(m)) for m in rng.integers(0, 24 * 60 - 1, n)]
    return pa.table({"ts": pa.array(ts, pa.timestamp("us", tz="UTC")), "x": rng.normal(10, 2, n),
                     "c": rng.choice(["a", "b"], n).tolist()})


def wide(n: int, start: dt.datetime, seconds: int, seed: int) -> pa.Table:
    """`n` rows of eight numeric columns spread over `seconds` from `start`: a refresh of a few seconds."""
    rng = np.random.default_rng(seed)
    us = int(start.timestamp() * 1_000_000) + rng.integers(0, seconds * 1_000_000, n)
    return pa.table({"ts": pa.array(us, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                     **{f"x{i}": rng.normal(0, 1, n) for i in range(8)}})


def time_series(*granularities: str) -> MonitorTimeSeries:
    return MonitorTimeSeries(timestamp_col="ts", granularities=list(granularities or ["1 day"]))


def wait(w, table: str, refresh_id: int, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while True:
        r = w.quality_monitors.get_refresh(table, refresh_id)
        if r.state in DONE or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def refreshed(w, table: str):
    r = wait(w, table, w.quality_monitors.run_refresh(table).refresh_id)
    assert r.state == MonitorRefreshInfoState.SUCCESS, r
    return r


def metrics(w, full_name: str) -> list[dict]:
    location = w.tables.get(full_name).storage_location
    return DeltaTable(location.removeprefix("file://")).to_pyarrow_table().to_pylist()


def table_rows(rows: list[dict], column: str = ":table", granularity: str = "1 day") -> dict:
    """Whole-table rows of one column, by window start."""
    return {r["window"]["start"]: r for r in rows if r["column_name"] == column and r["granularity"] == granularity
            and r["slice_key"] is None and r.get("log_type", "INPUT") == "INPUT"}


def extension(srv: Server, table: str, refresh_id: int) -> dict:
    """The refresh as the REST API answers it, with Lakeforge's extension fields."""
    with srv.client() as c:
        return c.get(f"{UC}/tables/{table}/monitor/refreshes/{refresh_id}").raise_for_status().json()


# ---- a time-series monitor, end to end ----------------------------------------------------------
def test_time_series_monitor_refreshes_incrementally_updates_and_deletes(mon, ns):
    w = mon.workspace()
    table = f"{ns}.events"
    days = [events(DAYS[0], 40, 1), events(DAYS[1], 30, 2), events(DAYS[2], 20, 3)]
    write(mon, table, pa.concat_tables(days))
    info = w.quality_monitors.create(table, output_schema_name=ns, assets_dir="/Shared/monitors",
                                     time_series=time_series("1 days"), slicing_exprs=["c"])
    assert info.status.value == "MONITOR_STATUS_ACTIVE" and info.monitor_version == 1
    assert info.profile_metrics_table_name == f"{table}_profile_metrics"
    assert info.drift_metrics_table_name == f"{table}_drift_metrics"
    assert w.quality_monitors.get(table).time_series.granularities == ["1 day"]  # canonical spelling
    assert w.tables.get(table).full_name == table  # the fast get-table path still answers the table itself

    first = refreshed(w, table)
    assert first.trigger == MonitorRefreshInfoTrigger.MANUAL and first.end_time_ms >= first.start_time_ms
    assert extension(mon, table, first.refresh_id)["rows_read"] == 90
    profile = metrics(w, info.profile_metrics_table_name)
    counts = {start: r["count"] for start, r in table_rows(profile).items()}
    assert counts == {DAYS[0]: 40, DAYS[1]: 30, DAYS[2]: 20}
    x_day0 = table_rows(profile, "x")[DAYS[0]]
    assert x_day0["avg"] == pytest.approx(float(np.mean(days[0]["x"].to_numpy())), rel=1e-9)
    assert x_day0["min"] == pc.min(days[0]["x"]).as_py() and x_day0["max"] == pc.max(days[0]["x"]).as_py()
    assert {r["slice_value"] for r in profile if r["slice_key"] == "c"} == {"a", "b"}

    write(mon, table, events(DAYS[2], 10, 4))  # 10 more rows in the last window
    second = refreshed(w, table)
    second_ext = extension(mon, table, second.refresh_id)
    assert second_ext["rows_read"] == 10 and second_ext["full"] is False
    counts = {start: r["count"] for start, r in table_rows(metrics(w, info.profile_metrics_table_name)).items()}
    assert counts == {DAYS[0]: 40, DAYS[1]: 30, DAYS[2]: 30}
    listed = w.quality_monitors.list_refreshes(table).refreshes
    assert [r.refresh_id for r in listed] == [second.refresh_id, first.refresh_id]

    # A config change bumps monitor_version and recomputes (a new custom metric adds a column to the
    # profile table); a schedule change alone does not bump it.
    updated = w.quality_monitors.update(table, output_schema_name=ns, slicing_exprs=["x > 10"],
                                        custom_metrics=[SQUARED_AVG])
    assert updated.monitor_version == 2 and updated.slicing_exprs == ["x > 10"]
    assert updated.time_series.timestamp_col == "ts"  # fields left out of the update are kept
    third = refreshed(w, table)
    assert extension(mon, table, third.refresh_id)["full"] is True
    profile = metrics(w, info.profile_metrics_table_name)
    assert {r["monitor_version"] for r in profile} == {2}
    assert {r["slice_key"] for r in profile} == {None, "x > 10"}
    x = days[0]["x"].to_numpy()
    assert table_rows(profile, "x")[DAYS[0]]["squared_avg"] == pytest.approx(float(np.mean(x * x)), rel=1e-9)
    paused = MonitorCronSchedule(quartz_cron_expression="0 0 6 ? * MON-FRI", timezone_id="Europe/Paris",
                                 pause_status=MonitorCronSchedulePauseStatus.PAUSED)
    assert w.quality_monitors.update(table, output_schema_name=ns, schedule=paused).monitor_version == 2

    w.quality_monitors.delete(table)
    with pytest.raises(NotFound):
        w.quality_monitors.get(table)
    assert w.tables.exists(info.profile_metrics_table_name).table_exists  # the metric tables stay
    assert w.tables.exists(info.drift_metrics_table_name).table_exists
    again = w.quality_monitors.create(table, output_schema_name=ns, assets_dir="/Shared/monitors",
                                      time_series=time_series("1 day"), slicing_exprs=["x > 10"],
                                      custom_metrics=[SQUARED_AVG])
    assert again.monitor_version == 1  # a new monitor reuses the tables its columns fit
    refreshed(w, table)


# ---- an inference-log monitor ---------------------------------------------------------------------
def test_inference_log_monitor_model_quality(mon, ns):
    w = mon.workspace()
    table = f"{ns}.predictions"
    rng = np.random.default_rng(7)
    n = 200
    label = rng.integers(0, 2, n)
    prediction = np.where(rng.random(n) < 0.8, label, 1 - label)
    ts = [DAYS[1] + dt.timedelta(minutes=int(m)) for m in rng.integers(0, 1439, n)]
    write(mon, table, pa.table({"ts": pa.array(ts, pa.timestamp("us", tz="UTC")), "model": ["m1"] * n,
                                "f": rng.normal(0, 1, n), "prediction": prediction.astype(str).tolist(),
                                "label": label.astype(str).tolist()}))
    info = w.quality_monitors.create(
        table, output_schema_name=ns, assets_dir="/Shared/monitors",
        inference_log=MonitorInferenceLog(timestamp_col="ts", granularities=["1 day"], model_id_col="model",
                                          prediction_col="prediction", label_col="label",
                                          problem_type=MonitorInferenceLogProblemType.PROBLEM_TYPE_CLASSIFICATION))
    assert info.inference_log.problem_type == MonitorInferenceLogProblemType.PROBLEM_TYPE_CLASSIFICATION
    refreshed(w, table)
    rows = [r for r in metrics(w, info.profile_metrics_table_name) if r["column_name"] == ":table"
            and r["slice_key"] is None and r["model"] == "m1" and r["window"]["start"] == DAYS[1]]
    assert len(rows) == 1
    assert rows[0]["accuracy_score"] == pytest.approx(accuracy_score(label, prediction))


# ---- bad input ------------------------------------------------------------------------------------
def test_bad_configs_are_400_naming_the_problem_and_create_nothing(mon, ns):
    w = mon.workspace()
    table = f"{ns}.events"
    write(mon, table, events(DAYS[0], 10, 5))

    def refused(*words, table=table, **kw):
        args = {"output_schema_name": ns, "assets_dir": "/Shared/monitors", "time_series": time_series("1 day")}
        with pytest.raises(BadRequest) as e:
            w.quality_monitors.create(table, **{**args, **kw})
        for word in words:
            assert word in str(e.value), str(e.value)

    refused(f"{ns}.nope", table=f"{ns}.nope")  # a missing table
    refused("missing_ts", time_series=MonitorTimeSeries(timestamp_col="missing_ts", granularities=["1 day"]))
    refused("'c'", "string", time_series=MonitorTimeSeries(timestamp_col="c", granularities=["1 day"]))
    refused("2 days", time_series=time_series("2 days"))
    refused("nope_col", slicing_exprs=["nope_col > 1"])
    avg_of_string = MonitorMetric(type=MonitorMetricType.CUSTOM_METRIC_TYPE_AGGREGATE, name="mean_c",
                                  input_columns=["c"], definition="avg({{input_column}})",
                                  output_data_type='{"name":"mean_c","type":"double","nullable":true,"metadata":{}}')
    refused("mean_c", custom_metrics=[avg_of_string])
    broken = MonitorMetric(type=MonitorMetricType.CUSTOM_METRIC_TYPE_AGGREGATE, name="broken", input_columns=["x"],
                           definition="avg({{input_column}} *", output_data_type="double")
    refused("broken", custom_metrics=[broken])
    refused("quartz_cron_expression", schedule=MonitorCronSchedule(quartz_cron_expression="0 0 25 * * ?",
                                                                   timezone_id="UTC"))
    refused("Mars/Olympus", schedule=MonitorCronSchedule(quartz_cron_expression="0 0 6 * * ?",
                                                         timezone_id="Mars/Olympus"))
    refused(f"{ns}.no_baseline", baseline_table_name=f"{ns}.no_baseline")
    refused("nocat", output_schema_name="nocat.s")
    with mon.client() as c:  # two profile types
        r = c.post(f"{UC}/tables/{table}/monitor", json={"output_schema_name": ns, "snapshot": {},
                                                          "time_series": {"timestamp_col": "ts",
                                                                          "granularities": ["1 day"]}})
        assert r.status_code == 400 and "exactly one profile type" in r.json()["message"]
    with pytest.raises(NotFound):
        w.quality_monitors.get(table)
    assert not w.tables.exists(f"{table}_profile_metrics").table_exists
    assert not w.tables.exists(f"{table}_drift_metrics").table_exists
    # Nothing was left behind: the table takes a (snapshot) monitor.
    w.quality_monitors.create(table, output_schema_name=ns, assets_dir="/a", snapshot=MonitorSnapshot())
    refreshed(w, table)


# ---- privileges -----------------------------------------------------------------------------------
def test_select_and_create_table_are_required(mon, ns, unique):
    w = mon.workspace()
    table = f"{ns}.events"
    write(mon, table, events(DAYS[0], 10, 6))
    name, token = mon.new_user()
    user = mon.workspace(token)
    args = {"output_schema_name": ns, "assets_dir": "/a", "time_series": time_series("1 day")}
    w.grants.update(securable_type="catalog", full_name=ns.split(".")[0], changes=[_add(name, "USE_CATALOG")])
    w.grants.update(securable_type="schema", full_name=ns, changes=[_add(name, "USE_SCHEMA")])
    with pytest.raises(PermissionDenied) as e:
        user.quality_monitors.create(table, **args)
    assert "SELECT" in str(e.value) and table in str(e.value)
    w.grants.update(securable_type="table", full_name=table, changes=[_add(name, "SELECT")])
    with pytest.raises(PermissionDenied) as e:
        user.quality_monitors.create(table, **args)
    assert "CREATE_TABLE" in str(e.value) and ns in str(e.value)
    assert not w.tables.exists(f"{table}_profile_metrics").table_exists

    w.quality_monitors.create(table, **args)  # the admin's monitor: the user may read it, not run it
    assert user.quality_monitors.get(table).table_name == table
    assert user.quality_monitors.list_refreshes(table).refreshes == []
    with pytest.raises(PermissionDenied):
        user.quality_monitors.run_refresh(table)
    with pytest.raises(PermissionDenied):
        user.quality_monitors.delete(table)
    w.grants.update(securable_type="table", full_name=table, changes=[_add(name, "MANAGE")])
    assert wait(w, table, user.quality_monitors.run_refresh(table).refresh_id).state == MonitorRefreshInfoState.SUCCESS


def _add(principal: str, privilege: str) -> PermissionsChange:
    return PermissionsChange(principal=principal, add=[Privilege(privilege)])


# ---- conflicts and cancellation -------------------------------------------------------------------
def test_conflicts_and_cancel(mon, ns):
    w = mon.workspace()
    big, small = f"{ns}.big", f"{ns}.small"
    write(mon, big, wide(150_000, DAYS[0], 3 * 86_400, 8))
    write(mon, small, events(DAYS[0], 10, 9))
    for t in (big, small):
        w.quality_monitors.create(t, output_schema_name=ns, assets_dir="/a", time_series=time_series("1 hour"))
    with pytest.raises(ResourceAlreadyExists):
        w.quality_monitors.create(small, output_schema_name=ns, assets_dir="/a", snapshot=MonitorSnapshot())

    running = w.quality_monitors.run_refresh(big)
    with pytest.raises(ResourceConflict) as e:  # one refresh per monitor at a time
        w.quality_monitors.run_refresh(big)
    assert f"Refresh {running.refresh_id}" in str(e.value)
    waiting = w.quality_monitors.run_refresh(small)  # one refresh thread: it waits for the big one
    w.quality_monitors.cancel_refresh(small, waiting.refresh_id)
    assert w.quality_monitors.get_refresh(small, waiting.refresh_id).state == MonitorRefreshInfoState.CANCELED
    w.quality_monitors.cancel_refresh(big, running.refresh_id)
    assert wait(w, big, running.refresh_id).state == MonitorRefreshInfoState.CANCELED
    with pytest.raises(BadRequest) as e:
        w.quality_monitors.cancel_refresh(big, running.refresh_id)
    assert "already finished" in str(e.value)
    with pytest.raises(NotFound):
        w.quality_monitors.get_refresh(small, running.refresh_id)  # another monitor's refresh
    refreshed(w, small)  # cancelled refreshes block nothing


# ---- schedules ------------------------------------------------------------------------------------
def test_scheduled_refresh_fires_and_pauses(mon, ns):
    w = mon.workspace()
    table = f"{ns}.events"
    write(mon, table, events(DAYS[2], 20, 10))
    every_second = MonitorCronSchedule(quartz_cron_expression="* * * * * ?", timezone_id="UTC")
    info = w.quality_monitors.create(table, output_schema_name=ns, assets_dir="/a", time_series=time_series(),
                                     schedule=every_second)
    assert info.schedule.pause_status == MonitorCronSchedulePauseStatus.UNPAUSED
    deadline = time.monotonic() + 60
    scheduled = []
    while not scheduled and time.monotonic() < deadline:
        scheduled = [r for r in w.quality_monitors.list_refreshes(table).refreshes
                     if r.trigger == MonitorRefreshInfoTrigger.SCHEDULE and r.state == MonitorRefreshInfoState.SUCCESS]
        time.sleep(0.2)
    assert scheduled, w.quality_monitors.list_refreshes(table)
    w.quality_monitors.update(table, output_schema_name=ns, schedule=MonitorCronSchedule(
        quartz_cron_expression="* * * * * ?", timezone_id="UTC", pause_status=MonitorCronSchedulePauseStatus.PAUSED))
    for r in w.quality_monitors.list_refreshes(table).refreshes:
        wait(w, table, r.refresh_id)
    before = len(w.quality_monitors.list_refreshes(table).refreshes)
    time.sleep(3)  # three scheduler ticks
    assert len(w.quality_monitors.list_refreshes(table).refreshes) == before


def test_quartz_day_of_week_and_time_zones():
    """Quartz counts days of the week from 1 = Sunday; croniter from 0 = Sunday."""
    from lakeforge.monitoring.schedule import next_after

    saturday = dt.datetime(2026, 11, 21, 12, tzinfo=dt.UTC)
    assert next_after("0 0 8 ? * 1", "UTC", saturday) == dt.datetime(2026, 11, 22, 8, tzinfo=dt.UTC)  # Sunday
    assert next_after("0 30 9 ? * 2-6", "UTC", saturday) == dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC)
    assert next_after("0 0 12 ? * 6L", "UTC", saturday) == dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)  # last Fri
    assert next_after("0 0 12 ? * 6#1", "UTC", saturday) == dt.datetime(2026, 12, 4, 12, tzinfo=dt.UTC)
    assert next_after("0 0 6 * * ?", "PST", saturday) == dt.datetime(2026, 11, 21, 14, tzinfo=dt.UTC)  # 6:00 PST
    assert next_after("0 0 6 * * ?", "Europe/Paris", saturday) == dt.datetime(2026, 11, 22, 5, tzinfo=dt.UTC)


# ---- alerts ---------------------------------------------------------------------------------------
class Receiver:
    """A webhook endpoint: records every JSON body POSTed to it."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.http = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self):
        self.http.shutdown()


def test_alert_fires_its_webhook_once_per_breach(mon, ns, unique):
    w = mon.workspace()
    table = f"{ns}.events"
    write(mon, table, pa.concat_tables([events(DAYS[0], 12, 11), events(DAYS[1], 3, 12)]))
    w.quality_monitors.create(table, output_schema_name=ns, assets_dir="/a", time_series=time_series())
    receiver = Receiver()
    scope = unique("hooks")
    w.secrets.create_scope(scope)
    w.secrets.put_secret(scope, "url", string_value=receiver.url)
    base = f"{UC}/tables/{table}/monitor"
    try:
        with mon.client() as c:
            bad = c.post(f"{base}/alerts", json={"name": "x", "metric": "no_such_metric", "op": ">", "threshold": 1})
            assert bad.status_code == 400 and "no_such_metric" in bad.json()["message"]
            rule = c.post(f"{base}/alerts", json={
                "name": "busy day", "metric": "count", "op": ">=", "threshold": 10, "column_name": ":table",
                "granularity": "1 day", "webhook_url": "{{secrets/" + scope + "/url}}"}).raise_for_status().json()
            assert rule["table"] == "profile" and rule["webhook_url"] == "{{secrets/" + scope + "/url}}"
            drift = c.post(f"{base}/alerts", json={"name": "drift", "metric": "ks_test.pvalue", "op": "<",
                                                   "threshold": 0.01})
            assert drift.status_code == 200 and drift.json()["table"] == "drift", drift.text

            refreshed(w, table)  # day 0 has 12 rows: one breach
            breaches = c.get(f"{base}/breaches", params={"alert_id": rule["alert_id"]}).json()["breaches"]
            assert [(b["value"], b["window"]["start"]) for b in breaches] == [(12, _ms(DAYS[0]))]
            refreshed(w, table)  # still breached, same window: nothing new
            write(mon, table, events(DAYS[1], 9, 13))  # day 1 reaches 12 rows: a new breach
            refreshed(w, table)
            breaches = c.get(f"{base}/breaches", params={"alert_id": rule["alert_id"]}).json()["breaches"]
            assert [b["window"]["start"] for b in breaches] == [_ms(DAYS[1]), _ms(DAYS[0])]  # latest first
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and any(
                    b["webhook_status"] != "DELIVERED" for b in
                    c.get(f"{base}/breaches", params={"alert_id": rule["alert_id"]}).json()["breaches"]):
                time.sleep(0.1)
        assert sorted(p["window"]["start"] for p in receiver.received) == [_ms(DAYS[0]), _ms(DAYS[1])]
        hook = receiver.received[-1]
        assert hook["rule"] == "busy day" and hook["table"] == table and hook["metric"] == "count"
        assert hook["value"] == 12 and hook["threshold"] == 10 and hook["granularity"] == "1 day"
        assert hook["column_name"] == ":table" and hook["slice_key"] is None and hook["monitor_version"] == 1
        assert "fired" in mon.logs() and "busy day" in mon.logs()
    finally:
        receiver.close()


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


# ---- a server killed during a refresh (last of the module server's tests: it restarts that server) --
def test_refresh_left_running_by_a_killed_server_is_failed_at_start(mon, ns):
    w = mon.workspace()
    table = f"{ns}.big"
    write(mon, table, wide(150_000, DAYS[0], 86_400, 14))
    w.quality_monitors.create(table, output_schema_name=ns, assets_dir="/a", time_series=time_series("1 hour"))
    refresh = w.quality_monitors.run_refresh(table)
    deadline = time.monotonic() + 60
    while w.quality_monitors.get_refresh(table, refresh.refresh_id).state == MonitorRefreshInfoState.PENDING \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert w.quality_monitors.get_refresh(table, refresh.refresh_id).state == MonitorRefreshInfoState.RUNNING
    mon.stop(signal.SIGKILL)
    vars(mon).update(vars(start_server(mon.home, admin_token=mon.admin_token, env=mon.env)))
    w = mon.workspace()
    left = w.quality_monitors.get_refresh(table, refresh.refresh_id)
    assert left.state == MonitorRefreshInfoState.FAILED and left.message == "server stopped during the refresh"
    monitor = w.quality_monitors.get(table)
    assert monitor.status.value == "MONITOR_STATUS_ERROR"
    assert monitor.latest_monitor_failure_msg == "server stopped during the refresh"
    again = w.quality_monitors.run_refresh(table)  # not blocked by the one left behind
    w.quality_monitors.cancel_refresh(table, again.refresh_id)
    assert wait(w, table, again.refresh_id).state == MonitorRefreshInfoState.CANCELED


# ---- PostgreSQL -----------------------------------------------------------------------------------
def test_create_and_refresh_on_postgresql(pg_server, unique):
    ns = namespace(pg_server, unique("pgmon"))
    w = pg_server.workspace()
    table = f"{ns}.events"
    write(pg_server, table, pa.concat_tables([events(DAYS[0], 15, 15), events(DAYS[1], 5, 16)]))
    info = w.quality_monitors.create(table, output_schema_name=ns, assets_dir="/a", time_series=time_series())
    assert wait(w, table, w.quality_monitors.run_refresh(table).refresh_id).state == MonitorRefreshInfoState.SUCCESS
    counts = {start: r["count"] for start, r in table_rows(metrics(w, info.profile_metrics_table_name)).items()}
    assert counts == {DAYS[0]: 15, DAYS[1]: 5}
