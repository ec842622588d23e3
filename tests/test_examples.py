"""Every script in examples/ runs against a real server, in order, sharing its names (one endpoint)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py"))


@pytest.fixture(scope="module")
def names():
    suffix = uuid.uuid4().hex[:8]
    schema, endpoint = f"main.ex_{suffix}", f"ex-{suffix}"
    return {"schema": schema, "endpoint": endpoint, "model": f"{schema}.churn",
            "payload": f"{schema}.ex_{suffix}_payload", "predictions": f"{schema}.churn_predictions"}


@pytest.fixture(scope="module")
def run(server, names):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEFORGE_", "MLFLOW_", "DATABRICKS_"))}
    env.update(LAKEFORGE_HOST=server.url, LAKEFORGE_TOKEN=server.admin_token, EXAMPLES_SCHEMA=names["schema"],
               EXAMPLES_ENDPOINT=names["endpoint"])

    def run(script: str) -> str:
        proc = subprocess.run([sys.executable, str(EXAMPLES / script)], env=env, capture_output=True, text=True,
                              timeout=600, check=False)
        assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    return run


def test_every_example_is_tested():
    assert SCRIPTS == ["01_create_table.py", "02_train_register.py", "03_promote.py", "04_serve_query.py",
                       "05_monitor.py", "06_sql_inference_table.py"]


def test_01_create_table(run, admin, names):
    out = run("01_create_table.py")
    assert f"wrote 5000 rows to {names['schema']}.customers" in out
    table = admin.get(f"/api/2.1/unity-catalog/tables/{names['schema']}.customers").json()
    assert {"contract", "monthly_charges", "churned", "event_time"} <= {c["name"] for c in table["columns"]}


def test_02_train_register(run, admin, names):
    out = run("02_train_register.py")
    assert f"registered {names['model']} version 1" in out
    lineage = admin.get("/api/2.0/lineage/graph", params={"name": names["model"], "direction": "upstream"}).json()
    assert f"{names['schema']}.customers" in str(lineage)


def test_03_promote(run, admin, names):
    out = run("03_promote.py")
    assert f"{names['model']}@champion -> version 1" in out
    model = admin.get(f"/api/2.1/unity-catalog/models/{names['model']}", params={"include_aliases": True}).json()
    assert [(a["alias_name"], a["version_num"]) for a in model["aliases"]] == [("champion", 1)]
    # Run again: the champion stays (the newest version is already it).
    assert "stays version 1" in run("03_promote.py")


def test_04_serve_query(run, admin, names):
    out = run("04_serve_query.py")
    assert f"created endpoint {names['endpoint']}" in out and "predictions for 5 customers" in out
    endpoint = admin.get(f"/api/2.0/serving-endpoints/{names['endpoint']}").json()
    assert endpoint["state"]["ready"] == "READY"
    assert "already serves" in run("04_serve_query.py")


def test_05_monitor(run, admin, names):
    out = run("05_monitor.py")
    assert f"created an inference_log monitor on {names['predictions']}" in out and "SUCCESS" in out
    monitor = admin.get(f"/api/2.1/unity-catalog/tables/{names['predictions']}/monitor").json()
    assert monitor["profile_metrics_table_name"].startswith(names["schema"])
    assert "monthly_charges" in out and "prediction" in out


def test_06_sql_inference_table(run, names):
    out = run("06_sql_inference_table.py")
    assert f"{names['payload']} (raw requests): [['200'," in out
    assert "month-to-month" in out and "predicted_churn" in out
