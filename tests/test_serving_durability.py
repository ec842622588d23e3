"""Inference tables survive `kill -9` of the server: every acknowledged request is in the table
exactly once after a restart, and the model workers do not outlive the server."""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
from deltalake import DeltaTable

from lakeforge.catalog.storage import to_path
from tests.harness import start_server
from tests.serving_models import register_models, split_body
from tests.test_serving import _worker_pids

EP = "/api/2.0/serving-endpoints"


def _ready(c: httpx.Client, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = c.get(f"{EP}/{name}")
        if r.status_code == 200 and r.json()["state"]["ready"] == "READY" \
                and r.json()["state"]["config_update"] == "NOT_UPDATING":
            return
        time.sleep(0.3)
    raise AssertionError(f"endpoint {name} not ready: {r.text}")


def test_acknowledged_requests_survive_kill_9_exactly_once(tmp_path: Path):
    home = tmp_path / "home"
    # A long flush interval: at the kill, the records exist only in the write-ahead log.
    srv = start_server(home, env={"LAKEFORGE_SERVING_LOG_FLUSH_SECONDS": "3600"})
    try:
        models = register_models(srv, versions=1, flaky=False)
        catalog, schema = models.schema.split(".")
        name = f"dur-{uuid.uuid4().hex[:6]}"
        with srv.client() as c:
            r = c.post(EP, json={"name": name, "config": {"served_entities": [
                {"entity_name": models.model, "entity_version": "1"}]},
                "ai_gateway": {"inference_table_config": {"catalog_name": catalog, "schema_name": schema,
                                                          "table_name_prefix": "dur", "enabled": True}}})
            assert r.status_code == 200, r.text
            _ready(c, name)
            acknowledged = []
            for i in range(40):
                rid = f"before-{i}"
                r = c.post(f"/serving-endpoints/{name}/invocations", json=split_body(models.x.iloc[[i]]),
                           headers={"x-request-id": rid})
                assert r.status_code == 200
                acknowledged.append(rid)
            table = to_path(c.get(f"/api/2.1/unity-catalog/tables/{models.schema}.dur_payload").json()
                            ["storage_location"])
        workers = _worker_pids(str(home))
        assert workers, "no model worker found"
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        # the model workers notice their server is gone and stop
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and set(workers) & set(_worker_pids(str(home))):
            time.sleep(0.2)
        assert not set(workers) & set(_worker_pids(str(home)))
    finally:
        if srv.proc.poll() is None:
            srv.stop()

    port = int(srv.url.rsplit(":", 1)[1])
    again = start_server(home, admin_token=srv.admin_token, port=port,
                         env={"LAKEFORGE_SERVING_LOG_FLUSH_SECONDS": "0.5"})
    try:
        with again.client() as c:
            _ready(c, name)
            for i in range(10):
                rid = f"after-{i}"
                r = c.post(f"/serving-endpoints/{name}/invocations", json=split_body(models.x.iloc[[i]]),
                           headers={"x-request-id": rid})
                assert r.status_code == 200
                acknowledged.append(rid)
        deadline = time.monotonic() + 30
        counts: Counter = Counter()
        while time.monotonic() < deadline:
            rows = DeltaTable(str(table)).to_pyarrow_table(columns=["databricks_request_id"]).to_pylist()
            counts = Counter(r["databricks_request_id"] for r in rows)
            if len(counts) >= len(acknowledged):
                break
            time.sleep(0.3)
        assert set(acknowledged) <= set(counts), set(acknowledged) - set(counts)
        assert all(n == 1 for n in counts.values()), [k for k, n in counts.items() if n > 1]
        assert sum(counts.values()) == len(acknowledged)
    finally:
        again.stop()
    assert not _worker_pids(str(home))
