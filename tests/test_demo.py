"""The demo workspace (`python -m lakeforge.demo`, what `lakeforge up --demo` runs) against a real
server, on smaller data: it builds the whole loop, a second run reuses it and repairs what is missing,
and `lakeforge up --demo` refuses bad input before anything starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from lakeforge.demo import (
    BASELINE,
    CUSTOMERS,
    ENDPOINT,
    INFERENCE,
    LABELS,
    MODEL,
    PAYLOAD,
    data,
    replay,
)
from lakeforge.demo.launch import client_url
from lakeforge.monitoring import inference_unpack as unpack
from tests.harness import free_port

SHAPE = ["--rows", "20000", "--days", "5", "--per-day", "600"]
DRIFTED = {"monthly_charges", "support_calls", "contract"}
STABLE = {"tenure_months", "data_usage_gb", "age", "region", "payment_method", "plan"}


def run_demo(server, result_file, *extra: str) -> tuple[int, str, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEFORGE_", "MLFLOW_", "DATABRICKS_"))}
    proc = subprocess.run([sys.executable, "-m", "lakeforge.demo", "--url", server.url, "--token-file",
                           str(server.home / "admin-token"), "--result-file", str(result_file), *SHAPE, *extra],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    return proc.returncode, proc.stdout + proc.stderr, result


def table_version(lf, name: str) -> int:
    return lf.tables.history(name, limit=1)[0]["version"]


def essentials(server) -> dict:
    """What a second run must leave as it was."""
    from lakeforge import Client

    with Client(server.url, token=server.admin_token) as lf:
        endpoint = lf.serving.get(ENDPOINT)
        return {
            "tables": {t: table_version(lf, t) for t in (CUSTOMERS, LABELS, PAYLOAD, INFERENCE, BASELINE)},
            "versions": sorted(v["version"] for v in lf.models.versions(MODEL)),
            "served": [e["entity_version"] for e in endpoint["config"]["served_entities"]],
            "refreshes": len(lf.monitors.refreshes(INFERENCE)),
            "alerts": sorted(a["name"] for a in lf.monitors.alerts.list(INFERENCE)),
        }


@pytest.fixture(scope="module")
def first_run(server, tmp_path_factory):
    code, output, result = run_demo(server, tmp_path_factory.mktemp("demo") / "first.json")
    assert code == 0, output
    return output, result


def test_demo_builds_the_loop(server, first_run):
    from lakeforge import Client

    output, result = first_run
    assert result["ok"], result
    assert [s["step"] for s in result["steps"]] == ["dataset", "champion", "endpoint", "traffic", "inference",
                                                    "monitor", "retrain"]
    assert "Demo ready" in output and f"/monitors/{INFERENCE}" in output and "admin-token" in output
    report = result["report"]
    with Client(server.url, token=server.admin_token) as lf:
        assert lf.sql(f"SELECT count(*) AS n FROM {CUSTOMERS}").to_pylist() == [{"n": 20000}]
        # Labels arrive a day late: day 5's are not there yet.
        days = lf.sql(f"SELECT count(DISTINCT substr(request_id, 1, 8)) AS d, count(*) AS n FROM {LABELS}").to_pylist()
        assert days == [{"d": 4, "n": 2400}]
        rows = lf.sql(f"SELECT count(*) AS n, count(label) AS labeled, min(timestamp) AS first, "
                      f"max(timestamp) AS last FROM {INFERENCE}").to_pylist()[0]
        assert (rows["n"], rows["labeled"]) == (3000, 2400)
        # The unpacked rows carry the simulated event time (the days before today), not the request time.
        assert rows["last"] < datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        assert (rows["last"] - rows["first"]).days == 4
        assert "event_time" not in [c["name"] for c in lf.tables.get(INFERENCE)["columns"]]

        # The monitor has metrics, and the alert fired for the whole table on the drifted features.
        monitor = lf.monitors.get(INFERENCE)
        assert lf.sql(f"SELECT count(*) AS n FROM {monitor['profile_metrics_table_name']}").to_pylist()[0]["n"] > 0
        quality = lf.sql(f"SELECT count(*) AS n FROM {monitor['profile_metrics_table_name']} "
                         "WHERE column_name = ':table' AND roc_auc_score IS NOT NULL").to_pylist()[0]["n"]
        assert quality > 0
        breaches = lf.monitors.breaches(INFERENCE)
        whole_table = {b["column_name"] for b in breaches if b.get("slice_key") is None}
        assert DRIFTED <= whole_table, breaches[:5]
        assert not whole_table & STABLE
        assert set(report["drift"]) == whole_table
        # The alert first fires on the day the drift begins (day 3 of 5).
        first_day = lf.schemas.get("main.demo")["properties"]["lakeforge.demo.first_day"]
        drift_day = (datetime.fromisoformat(report["drift_since"]) - datetime.fromisoformat(first_day)).days + 1
        assert drift_day == 3

        # The champion alias points where the printed decision says, and the endpoint serves it.
        champion = lf.models.get(MODEL)
        aliases = {a["alias_name"]: str(a["version_num"]) for a in champion["aliases"]}
        expected = report["challenger"] if report["promoted"] else aliases.get("champion")
        assert aliases["champion"] == expected == report["champion"]
        assert aliases["challenger"] == report["challenger"]
        word = "promoted" if report["promoted"] else "kept the champion"
        assert word in report["decision"] and word in output
        endpoint = lf.serving.get(ENDPOINT)
        assert [e["entity_version"] for e in endpoint["config"]["served_entities"]] == [aliases["champion"]]


def test_second_run_reuses_and_repairs(server, first_run, tmp_path):
    import mlflow

    before = essentials(server)
    # Something goes missing: the second run puts it back where it was.
    os.environ["MLFLOW_TRACKING_URI"], os.environ["MLFLOW_TRACKING_TOKEN"] = server.url, server.admin_token
    try:
        client = mlflow.MlflowClient()
        champion = client.get_model_version_by_alias(MODEL, "champion").version
        client.delete_registered_model_alias(MODEL, "champion")
    finally:
        del os.environ["MLFLOW_TRACKING_URI"], os.environ["MLFLOW_TRACKING_TOKEN"]
    code, output, result = run_demo(server, tmp_path / "second.json")
    assert code == 0, output
    assert essentials(server) == before
    lines = {s["step"]: s["result"] for s in result["steps"]}
    assert "alias restored" in lines["champion"]
    for step in ("dataset", "endpoint", "traffic", "inference", "retrain"):
        assert "(reused)" in lines[step], lines[step]
    assert "metrics reused" in lines["monitor"]
    assert result["report"]["champion"] == str(champion)
    first = first_run[1]["report"]
    assert result["report"]["promoted"] == first["promoted"]
    assert result["report"]["decision"].split(":")[0] == first["decision"].split(":")[0]  # the same comparison


def test_endpoint_answers_with_probabilities(server, first_run):
    w = server.workspace()
    rows = data.traffic_day(1, 3, datetime(2026, 1, 1, tzinfo=UTC), 2)[data.FEATURES]
    answer = w.serving_endpoints.query(ENDPOINT, dataframe_records=rows.to_dict(orient="records"))
    assert len(answer.predictions) == 3
    assert all(len(p) == 2 and abs(sum(p) - 1) < 1e-6 for p in answer.predictions)


def test_a_schema_not_made_by_the_demo_is_left_alone(tmp_path_factory):
    """A server whose main.demo schema is the user's own: the demo stops with one line, writing nothing."""
    from tests.harness import start_server

    srv = start_server(tmp_path_factory.mktemp("not-demo"))
    try:
        with srv.client() as c:
            c.post("/api/2.1/unity-catalog/schemas", json={"catalog_name": "main", "name": "demo"}).raise_for_status()
        code, output, result = run_demo(srv, srv.home / "r.json")
        assert code == 1
        assert result["failed"]["step"] == "dataset"
        assert "was not made by the demo" in result["failed"]["error"]
        assert "failed" in output
        with srv.client() as c:
            tables = c.get("/api/2.1/unity-catalog/tables", params={"catalog_name": "main", "schema_name": "demo"})
            assert tables.json().get("tables", []) == []
    finally:
        srv.stop()


# ---- pure pieces ----------------------------------------------------------------------------------------
def test_dataset_is_deterministic_and_drifts_from_the_drift_day():
    end = datetime(2026, 3, 1, tzinfo=UTC)
    a, b = data.training_customers(2000, end), data.training_customers(2000, end)
    assert a.equals(b)
    assert set(a.columns) == {data.CUSTOMER_ID, data.EVENT_TIME, *data.FEATURES, data.LABEL}
    assert a[data.EVENT_TIME].max() < end
    before, after = data.traffic_day(2, 3000, end, 3), data.traffic_day(3, 3000, end, 3)
    assert after["monthly_charges"].mean() - before["monthly_charges"].mean() > 10
    assert after["support_calls"].mean() > before["support_calls"].mean() + 0.8
    assert (after["contract"] == "month-to-month").mean() > (before["contract"] == "month-to-month").mean() + 0.2
    assert after[data.LABEL].mean() > before[data.LABEL].mean()
    assert abs(after["age"].mean() - before["age"].mean()) < 2
    assert data.traffic_day(3, 10, end, 3)[data.EVENT_TIME].dt.date.unique().tolist() == [datetime(2026, 3, 3).date()]


def test_request_and_row_ids():
    rid = replay.request_id(3, 7)
    assert rid == "demo-d03-b0007" and replay.row_id(rid, 12) == "demo-d03-b0007#12"
    assert replay.day_of(replay.row_id(rid, 12)) == 3 and replay.day_of("demo-d03") == 3


def test_unpack_uses_the_timestamp_feature():
    request = json.dumps({"dataframe_split": {"columns": ["x", "event_time"],
                                              "data": [[1.0, "2026-03-02T10:00:00Z"], [2.0, 1772445600000],
                                                       [3.0, "not a time"]]}})
    payload = [{"databricks_request_id": "r1", "timestamp_ms": 1800000000000, "status_code": 200,
                "request": request, "response": json.dumps({"predictions": [[0.2, 0.8], [0.9, 0.1], [0.5, 0.5]]}),
                "served_entity_id": "e", "request_metadata": {}}]
    rows = unpack.unpack(payload, lambda *_: "m/1", timestamp_feature="event_time").rows
    assert [r["timestamp_ms"] for r in rows] == [1772445600000, 1772445600000, 1800000000000]
    assert all("event_time" not in r["features"] for r in rows)
    plain = unpack.unpack(payload, lambda *_: "m/1").rows
    assert [r["timestamp_ms"] for r in plain] == [1800000000000] * 3 and "event_time" in plain[0]["features"]


def test_client_url():
    assert client_url("0.0.0.0", 8080) == "http://127.0.0.1:8080"
    assert client_url("::", 8080) == "http://[::1]:8080"
    assert client_url("10.0.0.5", 9000) == "http://10.0.0.5:9000"


# ---- lakeforge up --demo: bad input --------------------------------------------------------------------
def _up(*args: str, home) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEFORGE_")}
    env["LAKEFORGE_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "lakeforge.cli.main", "up", "--demo", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_up_demo_port_in_use(server, tmp_path):
    port = server.url.rsplit(":", 1)[1]
    proc = _up("--port", port, home=tmp_path / "home")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use; choose another with --port"]
    assert not (tmp_path / "home").exists()


def test_up_demo_unwritable_home(tmp_path):
    home = tmp_path / "a-file"
    home.write_text("")
    proc = _up("--port", str(free_port()), home=home)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: Lakeforge home {home} is not writable")
    assert "Lakeforge demo" not in proc.stdout
