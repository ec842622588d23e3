"""Model Serving end to end with the real databricks-sdk and stock MLflow models: endpoints API and
its waiters, invocations in every format, signature validation, traffic split, inference tables,
permissions, rate limits, usage and metrics, worker crashes, failed updates, bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from deltalake import DeltaTable

from lakeforge.catalog.storage import to_path
from tests.harness import Server
from tests.serving_models import FEATURES, split_body

UC = "/api/2.1/unity-catalog"
EP = "/api/2.0/serving-endpoints"


@pytest.fixture(scope="module")
def models(serving_models):
    return serving_models


def _name(prefix="ep") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _entity(model: str, version: int, name: str | None = None, **kw):
    from databricks.sdk.service.serving import ServedEntityInput

    return ServedEntityInput(entity_name=model, entity_version=str(version), name=name, workload_size="Small",
                             scale_to_zero_enabled=False, **kw)


def _create(w, name, entities, routes=None, ai_gateway=None):
    from databricks.sdk.service.serving import EndpointCoreConfigInput, Route, TrafficConfig

    traffic = TrafficConfig(routes=[Route(served_model_name=n, traffic_percentage=p) for n, p in routes]) \
        if routes else None
    return w.serving_endpoints.create_and_wait(name, config=EndpointCoreConfigInput(name=name,
        served_entities=entities, traffic_config=traffic), ai_gateway=ai_gateway, timeout=timedelta(minutes=3))


def _worker_pids(model_dir_hint: str | None = None) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"lakeforge.serving.worker" in cmd and (model_dir_hint is None or
                                                       any(model_dir_hint.encode() in c for c in cmd)):
                pids.append(int(d.name))
    return pids


def _grant_model(c, models, user: str, execute: bool = True) -> None:
    catalog, schema = models.schema.split(".")
    for kind, full, privs in (("catalog", catalog, ["USE_CATALOG"]), ("schema", models.schema, ["USE_SCHEMA"]),
                              ("registered_model", models.model, ["EXECUTE"] if execute else [])):
        if privs:
            c.patch(f"{UC}/permissions/{kind}/{full}",
                    json={"changes": [{"principal": user, "add": privs}]}).raise_for_status()


def _wait(predicate, timeout=60.0, every=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not reached in time")


# ---- the whole life of an endpoint through databricks-sdk ----------------------------------------
def test_create_query_update_split_and_delete_with_sdk(server: Server, models):
    from databricks.sdk.service.serving import DataframeSplitInput, Route, TrafficConfig

    w = server.workspace()
    name = _name()
    ep = _create(w, name, [_entity(models.model, 1, "champion")])
    assert ep.name == name and ep.state.ready.value == "READY" and ep.state.config_update.value == "NOT_UPDATING"
    assert ep.config.served_entities[0].state.deployment.value == "DEPLOYMENT_READY"
    x = models.x.head(5)
    r = w.serving_endpoints.query(name, dataframe_split=DataframeSplitInput(columns=FEATURES,
                                                                             data=x.to_numpy().tolist()))
    assert r.predictions == models.expected[1][:5]
    assert r.served_model_name == "champion"
    assert w.serving_endpoints.get(name).config.config_version == 1
    assert name in [e.name for e in w.serving_endpoints.list()]

    # champion / challenger: a new config with a 70/30 split, deployed while the old one serves
    updated = w.serving_endpoints.update_config_and_wait(
        name, served_entities=[_entity(models.model, 1, "champion"), _entity(models.model, 2, "challenger")],
        traffic_config=TrafficConfig(routes=[Route(served_model_name="champion", traffic_percentage=70),
                                             Route(served_model_name="challenger", traffic_percentage=30)]),
        timeout=timedelta(minutes=3))
    assert updated.config.config_version == 2
    assert {e.name for e in updated.config.served_entities} == {"champion", "challenger"}
    seen = Counter()
    with server.client() as c:
        for i in range(50):
            resp = c.post(f"/serving-endpoints/{name}/invocations", json=split_body(models.x.iloc[[i]]))
            assert resp.status_code == 200, resp.text
            served = resp.headers["served-model-name"]
            seen[served] += 1
            version = 1 if served == "champion" else 2
            assert resp.json()["predictions"] == [models.expected[version][i]]
        # one served model directly
        resp = c.post(f"/serving-endpoints/{name}/served-models/challenger/invocations", json=split_body(x))
        assert resp.json()["predictions"] == models.expected[2][:5]
        assert resp.headers["served-model-name"] == "challenger"
    assert seen == {"champion": 35, "challenger": 15}  # smooth weighted round-robin: exact per 10 calls

    w.serving_endpoints.delete(name)
    with server.client() as c:
        assert c.get(f"{EP}/{name}").status_code == 404
        assert c.post(f"/serving-endpoints/{name}/invocations", json=split_body(x)).status_code == 404


def test_every_scoring_format_and_signature_validation(server: Server, models):
    w = server.workspace()
    name = _name()
    _create(w, name, [_entity(models.model, 1)])
    x = models.x.head(3)
    want = models.expected[1][:3]
    url = f"/serving-endpoints/{name}/invocations"
    with server.client() as c:
        assert c.post(url, json=split_body(x)).json() == {"predictions": want}
        assert c.post(url, json={"dataframe_records": x.to_dict(orient="records")}).json()["predictions"] == want
        assert c.post(url, json={"instances": x.to_dict(orient="records")}).json()["predictions"] == want
        assert c.post(url, json={"inputs": x.to_dict(orient="list")}).json()["predictions"] == want
        csv = x.to_csv(index=False)
        r = c.post(url, content=csv, headers={"Content-Type": "text/csv"})
        assert r.json()["predictions"] == want, r.text
        # a missing column and a mistyped one: 400 naming the column
        r = c.post(url, json={"dataframe_records": [{k: v for k, v in row.items() if k != "f3"}
                                                    for row in x.to_dict(orient="records")]})
        assert r.status_code == 400 and "f3" in r.json()["message"], r.text
        bad = x.to_dict(orient="records")
        bad[0]["f7"] = "not a number"
        r = c.post(url, json={"dataframe_records": bad})
        assert r.status_code == 400 and "f7" in r.json()["message"], r.text
        # malformed body, wrong content type, no format key
        r = c.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error_code"], r.text
        r = c.post(url, content=b"hello", headers={"Content-Type": "application/xml"})
        assert r.status_code == 400 and "application/xml" in r.json()["message"], r.text
        r = c.post(url, json={"columns": FEATURES})
        assert r.status_code == 400, r.text
        # unknown endpoint / served model, wrong method
        assert c.post("/serving-endpoints/nope-none/invocations", json=split_body(x)).status_code == 404
        r = c.post(f"/serving-endpoints/{name}/served-models/ghost/invocations", json=split_body(x))
        assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert c.get(url).status_code == 405
        # over the 16 MB limit
        r = c.post(url, content=b"x" * (17 * 1024 * 1024), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["error_code"]
        # concurrent callers each get their own rows back (dynamic batching merges them)
        rows = models.x.head(64)

        def one(i):
            resp = c.post(url, json=split_body(rows.iloc[[i]]))
            return resp.json()["predictions"]

        with ThreadPoolExecutor(16) as pool:
            got = list(pool.map(one, range(64)))
        assert got == [[v] for v in models.expected[1][:64]]
    w.serving_endpoints.delete(name)


def test_model_that_raises_keeps_worker_up(server: Server, models):
    w = server.workspace()
    name = _name()
    _create(w, name, [_entity(models.flaky, 1)])
    url = f"/serving-endpoints/{name}/invocations"
    good = models.x.head(2)
    bad = good.copy()
    bad.loc[bad.index[0], "f0"] = -999
    with server.client() as c:
        r = c.post(url, json=split_body(bad), headers={"x-request-id": "req-flaky-1"})
        assert r.status_code in (400, 500), r.text
        assert "f0 must not be -999" in r.json()["message"] and "req-flaky-1" in r.json()["message"]
        r = c.post(url, json=split_body(good))
        assert r.status_code == 200 and r.json()["predictions"] == (good["f1"] * 2).tolist()
    w.serving_endpoints.delete(name)


# ---- bad configs create nothing ------------------------------------------------------------------
def test_bad_configs_are_refused_and_create_nothing(server: Server, models):
    entity = {"entity_name": models.model, "entity_version": "1", "workload_size": "Small",
              "scale_to_zero_enabled": False}
    cases = [
        ({"served_entities": [{**entity, "entity_version": "99"}]}, "99"),
        ({"served_entities": [{**entity, "entity_name": f"{models.schema}.missing"}]}, "missing"),
        ({"served_entities": [{**entity, "name": "a"}, {**entity, "name": "b"}],
          "traffic_config": {"routes": [{"served_model_name": "a", "traffic_percentage": 60},
                                        {"served_model_name": "b", "traffic_percentage": 30}]}}, "100"),
        ({"served_entities": [{**entity, "environment_vars": {"KEY": "{{secrets/nope/none}}"}}]}, "secrets/nope"),
        ({"served_entities": [{**entity, "workload_size": "Huge"}]}, "workload_size"),
        ({"served_entities": []}, "served_entities"),
    ]
    with server.client() as c:
        for config, needle in cases:
            name = _name("bad")
            r = c.post(EP, json={"name": name, "config": config})
            assert r.status_code == 400, (config, r.text)
            assert needle in r.json()["message"], r.text
            assert c.get(f"{EP}/{name}").status_code == 404
        r = c.post(EP, json={"name": "has space", "config": {"served_entities": [entity]}})
        assert r.status_code == 400


def test_secret_the_creator_may_not_read_is_refused(server: Server, models):
    user, token = server.new_user()
    with server.client() as c:
        c.post("/api/2.0/secrets/scopes/create", json={"scope": f"s{uuid.uuid4().hex[:6]}"})
        scope = c.get("/api/2.0/secrets/scopes/list").json()["scopes"][-1]["name"]
        c.post("/api/2.0/secrets/put", json={"scope": scope, "key": "k", "string_value": "v"}).raise_for_status()
        _grant_model(c, models, user)
    entity = {"entity_name": models.model, "entity_version": "1", "environment_vars": {"K": f"{{{{secrets/{scope}/k}}}}"}}
    with server.client(token) as c:
        r = c.post(EP, json={"name": _name(), "config": {"served_entities": [entity]}})
        assert r.status_code == 400 and scope in r.json()["message"], r.text


# ---- permissions ---------------------------------------------------------------------------------
def test_query_needs_can_query_and_create_needs_execute(server: Server, models):
    w = server.workspace()
    name = _name()
    ep = _create(w, name, [_entity(models.model, 1)])
    user, token = server.new_user()
    body = split_body(models.x.head(1))
    with server.client() as c:
        _grant_model(c, models, user, execute=False)  # may use the catalog and schema, not the model
    with server.client(token) as c:
        r = c.post(f"/serving-endpoints/{name}/invocations", json=body)
        assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED"
        assert c.get(f"{EP}/{name}").status_code == 403
        assert name not in [e["name"] for e in c.get(EP).json().get("endpoints", [])]
        # no EXECUTE on the model: cannot serve it
        r = c.post(EP, json={"name": _name(), "config": {"served_entities": [
            {"entity_name": models.model, "entity_version": "1"}]}})
        assert r.status_code == 403, r.text
    # the owner grants CAN_QUERY through the permissions API
    with server.client() as c:
        r = c.patch(f"/api/2.0/permissions/serving-endpoints/{ep.id}",
                    json={"access_control_list": [{"user_name": user, "permission_level": "CAN_QUERY"}]})
        assert r.status_code == 200, r.text
        levels = {e.get("user_name"): e["all_permissions"][0]["permission_level"]
                  for e in r.json()["access_control_list"]}
        assert levels[user] == "CAN_QUERY"
    with server.client(token) as c:
        assert _wait(lambda: c.post(f"/serving-endpoints/{name}/invocations", json=body).status_code == 200, 10)
        assert c.get(f"{EP}/{name}").status_code == 200  # CAN_QUERY implies CAN_VIEW
        assert c.delete(f"{EP}/{name}").status_code == 403  # not CAN_MANAGE
        r = c.put(f"{EP}/{name}/ai-gateway", json={"rate_limits": []})
        assert r.status_code == 403
    # queries are audited with the endpoint as securable
    with server.client() as c:
        def audited():
            rows = c.get("/api/2.0/lakeforge/audit", params={"securable": name}).json()["events"]
            return [r for r in rows if r.get("action") == "queryEndpoint"]
        assert _wait(audited, 20)
    w.serving_endpoints.delete(name)


# ---- rate limits, usage, metrics -----------------------------------------------------------------
def test_rate_limits_usage_and_prometheus(server: Server, models):
    from databricks.sdk.service.serving import (
        AiGatewayRateLimit,
        AiGatewayRateLimitKey,
        AiGatewayRateLimitRenewalPeriod,
        AiGatewayUsageTrackingConfig,
    )

    w = server.workspace()
    name = _name()
    _create(w, name, [_entity(models.model, 1, "m")])
    got = w.serving_endpoints.put_ai_gateway(name, rate_limits=[AiGatewayRateLimit(
        calls=3, key=AiGatewayRateLimitKey.USER, renewal_period=AiGatewayRateLimitRenewalPeriod.MINUTE)],
        usage_tracking_config=AiGatewayUsageTrackingConfig(enabled=True))
    assert got.rate_limits[0].calls == 3
    body = split_body(models.x.head(1))
    with server.client() as c:
        codes = [c.post(f"/serving-endpoints/{name}/invocations", json=body) for _ in range(4)]
        assert [r.status_code for r in codes] == [200, 200, 200, 429]
        assert codes[-1].json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        assert int(codes[-1].headers["Retry-After"]) >= 1
        usage = c.get(f"{EP}/{name}/usage").json()
        entity = usage["served_entities"][0]
        assert entity["name"] == "m" and entity["requests"] == 3 and entity["errors"] == 0
        metrics = c.get("/metrics")
        assert metrics.status_code == 200 and "text/plain" in metrics.headers["content-type"]
        assert f'lakeforge_serving_requests_total{{endpoint="{name}",served_entity="m",code="200"}} 3' in metrics.text
        assert f'lakeforge_serving_rate_limited_total{{endpoint="{name}"}} 1' in metrics.text
        assert c.get("/metrics", headers={"Authorization": ""}).status_code == 401
    w.serving_endpoints.delete(name)


# ---- inference tables ----------------------------------------------------------------------------
def test_inference_table_records_every_request_with_lineage(server: Server, models):
    from databricks.sdk.service.serving import AiGatewayConfig, AiGatewayInferenceTableConfig

    w = server.workspace()
    name = _name()
    catalog, schema = models.schema.split(".")
    _create(w, name, [_entity(models.model, 1, "m")], ai_gateway=AiGatewayConfig(
        inference_table_config=AiGatewayInferenceTableConfig(catalog_name=catalog, schema_name=schema,
                                                             table_name_prefix=name.replace("-", "_"),
                                                             enabled=True)))
    table = f"{models.schema}.{name.replace('-', '_')}_payload"
    ids = []
    with server.client() as c:
        for i in range(20):
            rid = f"req-{name}-{i}"
            r = c.post(f"/serving-endpoints/{name}/invocations",
                       json={**split_body(models.x.iloc[[i]]), "client_request_id": f"client-{i}"},
                       headers={"x-request-id": rid})
            assert r.status_code == 200
            ids.append(rid)
        r = c.post(f"/serving-endpoints/{name}/invocations", json={"dataframe_split": {"columns": ["nope"],
                                                                                        "data": [[1]]}})
        assert r.status_code == 400
        info = c.get(f"{UC}/tables/{table}").json()
        path = to_path(info["storage_location"])

        def rows():
            try:
                return DeltaTable(str(path)).to_pyarrow_table().to_pylist()
            except Exception:
                return []
        got = _wait(lambda: (lambda r: r if len(r) >= 21 else None)(rows()), 30)
        by_id = {r["databricks_request_id"]: r for r in got}
        assert set(ids) <= set(by_id) and len(got) == 21
        first = by_id[ids[0]]
        assert first["status_code"] == 200 and first["client_request_id"] == "client-0"
        assert json.loads(first["response"]) == {"predictions": [models.expected[1][0]]}
        assert json.loads(first["request"])["client_request_id"] == "client-0"
        assert first["requester"] == "admin" and first["served_entity_id"]
        assert dict(first["request_metadata"])["model_version"] == "1"
        assert sorted(r["status_code"] for r in got).count(400) == 1
        # the SQL API reads it like any table
        st = c.post("/api/2.0/sql/statements", json={"statement": f"SELECT count(*) AS n FROM {table}",
                                                     "wait_timeout": "30s"}).json()
        assert st["result"]["data_array"][0][0] in (21, "21")
        # lineage: model -> endpoint -> inference table
        lin = c.get("/api/2.0/lineage/graph", params={"name": table, "direction": "upstream"})
        assert lin.status_code == 200, lin.text
        text = json.dumps(lin.json())
        assert name in text and models.model in text
    w.serving_endpoints.delete(name)


# ---- supervision ---------------------------------------------------------------------------------
def test_killed_worker_restarts_and_traffic_moves_to_the_other_entity(server: Server, models):
    w = server.workspace()
    name = _name()
    _create(w, name, [_entity(models.model, 1, "a"), _entity(models.model, 2, "b")],
            routes=[("a", 50), ("b", 50)])
    ep = w.serving_endpoints.get(name)
    before = set(_worker_pids())
    with server.client() as c:
        logs = c.get(f"{EP}/{name}/served-models/a/logs").json()["logs"]
        assert "ready" in logs
    # find a's worker: the one whose socket was announced in its log
    pids_a = [p for p in before if f"pid={p}" in logs]
    assert pids_a, logs
    os.kill(pids_a[0], signal.SIGKILL)
    with server.client() as c:
        # traffic goes to b while a recovers; nobody sees an error
        for i in range(20):
            r = c.post(f"/serving-endpoints/{name}/invocations", json=split_body(models.x.iloc[[i]]))
            assert r.status_code == 200, r.text

        def a_ready():
            got = c.get(f"{EP}/{name}").json()
            states = {e["name"]: e["state"]["deployment"] for e in got["config"]["served_entities"]}
            return states["a"] == "DEPLOYMENT_READY" and got["state"]["ready"] == "READY"
        _wait(a_ready, 60)
        r = c.post(f"/serving-endpoints/{name}/served-models/a/invocations", json=split_body(models.x.head(1)))
        assert r.status_code == 200
    assert ep.state.ready.value == "READY"
    w.serving_endpoints.delete(name)


def test_failed_update_keeps_the_old_config_serving(server: Server, models):
    w = server.workspace()
    name = _name()
    _create(w, name, [_entity(models.flaky, 1, "old")])
    # tamper with the files of churn v2's catalog copy: its deployment must fail verification
    with server.client() as c:
        v = c.get(f"{UC}/models/{models.model}/versions/2").json()
    victim = next(p for p in to_path(v["storage_location"]).rglob("MLmodel"))
    original = victim.read_bytes()
    victim.write_bytes(original + b"\n# tampered\n")
    try:
        with server.client() as c:
            r = c.put(f"{EP}/{name}/config", json={"served_entities": [
                {"name": "new", "entity_name": models.model, "entity_version": "2"}]})
            assert r.status_code == 200 and r.json()["state"]["config_update"] == "IN_PROGRESS"
            assert c.put(f"{EP}/{name}/config", json={"served_entities": [
                {"name": "x", "entity_name": models.model, "entity_version": "1"}]}).status_code == 409

            def settled():
                got = c.get(f"{EP}/{name}").json()
                return got if got["state"]["config_update"] != "IN_PROGRESS" else None
            got = _wait(settled, 60)
            assert got["state"]["config_update"] == "UPDATE_FAILED"
            assert "integrity" in got["state"]["config_update_message"]
            assert got["config"]["config_version"] == 1
            r = c.post(f"/serving-endpoints/{name}/invocations", json=split_body(models.x.head(1)))
            assert r.status_code == 200 and r.headers["served-model-name"] == "old"
    finally:
        victim.write_bytes(original)
    w.serving_endpoints.delete(name)


def test_observed_split_over_10000_requests_is_within_2_points(server: Server, models):
    w = server.workspace()
    name = _name()
    _create(w, name, [_entity(models.model, 1, "champion"), _entity(models.model, 2, "challenger")],
            routes=[("champion", 80), ("challenger", 20)])
    body = json.dumps(split_body(models.x.head(1))).encode()
    headers = {"Authorization": f"Bearer {server.admin_token}", "Content-Type": "application/json"}

    def burst(n):
        seen = Counter()
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as c:
            for _ in range(n):
                r = c.post(f"/serving-endpoints/{name}/invocations", content=body)
                assert r.status_code == 200, r.text
                seen[r.headers["served-model-name"]] += 1
        return seen

    with ThreadPoolExecutor(8) as pool:
        total = sum(pool.map(burst, [1250] * 8), Counter())
    assert sum(total.values()) == 10_000
    assert abs(total["champion"] / 10_000 - 0.80) <= 0.02, total
    assert abs(total["challenger"] / 10_000 - 0.20) <= 0.02, total
    w.serving_endpoints.delete(name)


def test_config_update_drops_no_request(server: Server, models):
    """Requests keep flowing while a new config deploys; every one is answered 200."""
    import threading

    w = server.workspace()
    name = _name()
    _create(w, name, [_entity(models.model, 1, "v1")])
    body = json.dumps(split_body(models.x.head(1))).encode()
    headers = {"Authorization": f"Bearer {server.admin_token}", "Content-Type": "application/json"}
    statuses: Counter = Counter()
    served: Counter = Counter()
    stop = threading.Event()

    def hammer():
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as c:
            while not stop.is_set():
                r = c.post(f"/serving-endpoints/{name}/invocations", content=body)
                statuses[r.status_code] += 1
                served[r.headers.get("served-model-name")] += 1

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        w.serving_endpoints.update_config_and_wait(name, served_entities=[_entity(models.model, 2, "v2")],
                                                   timeout=timedelta(minutes=3))
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert set(statuses) == {200}, statuses
    assert served["v1"] > 0 and served["v2"] > 0, served
    assert _wait(lambda: len(_worker_pids()) >= 1)
    w.serving_endpoints.delete(name)


def test_scale_to_zero_stops_idle_workers_and_wakes_on_a_request(server: Server, models):
    """The test servers scale idle entities to zero after 4 s (LAKEFORGE_SERVING_SCALE_TO_ZERO_SECONDS)."""
    w = server.workspace()
    name = _name()
    from databricks.sdk.service.serving import EndpointCoreConfigInput, ServedEntityInput

    w.serving_endpoints.create_and_wait(name, config=EndpointCoreConfigInput(name=name, served_entities=[
        ServedEntityInput(entity_name=models.flaky, entity_version="1", name="lazy", scale_to_zero_enabled=True)]),
        timeout=timedelta(minutes=3))
    with server.client() as c:
        def scaled():
            e = c.get(f"{EP}/{name}").json()["config"]["served_entities"][0]
            return "scaled to zero" in e["state"].get("deployment_state_message", "")
        _wait(scaled, 60)
        # every worker the entity started (its log names each one) has exited
        logs = c.get(f"{EP}/{name}/served-models/lazy/logs").json()["logs"]
        started = [int(p) for p in re.findall(r"ready pid=(\d+)", logs)]
        assert started and not set(started) & set(_worker_pids())
        assert c.get(f"{EP}/{name}").json()["state"]["ready"] == "READY"  # still routable
        r = c.post(f"/serving-endpoints/{name}/invocations", json=split_body(models.x.head(2)))
        assert r.status_code == 200 and r.json()["predictions"] == (models.x.head(2)["f1"] * 2).tolist()
        e = c.get(f"{EP}/{name}").json()["config"]["served_entities"][0]
        assert e["state"]["deployment"] == "DEPLOYMENT_READY" and "deployment_state_message" not in e["state"]
    w.serving_endpoints.delete(name)
