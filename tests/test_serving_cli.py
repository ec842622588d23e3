"""Model Serving through Lakeforge's own SDK (`lf.serving`) and CLI (`lakeforge serving ...`) against a
real server: create, read, query in several shapes, a traffic split, usage, logs, permissions,
a failed update, the inference table, and errors in one line. Few endpoints: each runs model
worker processes."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter

import pytest

from lakeforge import ApiError, Client
from lakeforge.catalog.storage import to_path
from lakeforge.client.serving import UpdateFailed, entity
from tests.serving_models import split_body


@pytest.fixture(scope="module")
def models(serving_models):
    return serving_models


def _wait(predicate, timeout=60.0, every=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not reached in time")


def test_sdk_create_query_split_usage_grant_failed_update_delete(server, models, lf):
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    ep = lf.serving.create(name, model=models.model, version=1, served_name="champion", usage_tracking=True)
    assert ep.state.ready == "READY" and ep.state.config_update == "NOT_UPDATING"
    assert ep.config.served_entities[0].state.deployment == "DEPLOYMENT_READY"
    assert lf.serving.get(name).config.config_version == 1
    assert name in [e.name for e in lf.serving.list()]

    x = models.x.head(5)
    r = lf.serving.query(name, x)  # a DataFrame goes as dataframe_split
    assert r.predictions == models.expected[1][:5] and r.served_model_name == "champion"
    r = lf.serving.query(name, x.head(3).to_dict(orient="records"))  # a list of rows: dataframe_records
    assert r.predictions == models.expected[1][:3]
    r = lf.serving.query(name, {"inputs": x.head(2).to_dict(orient="list")})  # any body as is
    assert r.predictions == models.expected[1][:2]

    # champion / challenger, 50/50: the split is deterministic, so 10 calls go 5 and 5
    ep = lf.serving.update(name, [entity(models.model, 1, "champion"), entity(models.model, 2, "challenger")],
                           traffic={"champion": 50, "challenger": 50})
    assert ep.config.config_version == 2 and ep.state.config_update == "NOT_UPDATING"
    assert {e.name for e in ep.config.served_entities} == {"champion", "challenger"}
    r = lf.serving.query(name, x, served_model="challenger")
    assert r.predictions == models.expected[2][:5] and r.served_model_name == "challenger"
    seen = Counter()
    for i in range(10):
        r = lf.serving.query(name, models.x.iloc[[i]])
        seen[r.served_model_name] += 1
        assert r.predictions == [models.expected[1 if r.served_model_name == "champion" else 2][i]]
    assert seen == {"champion": 5, "challenger": 5}

    usage = lf.serving.usage(name)
    by_name = {e.name: e for e in usage.served_entities}
    assert by_name["champion"].requests == 8 and by_name["challenger"].requests == 6
    assert usage.totals.requests == 14 and usage.totals.errors == 0
    assert usage.totals.latency_ms.p50 > 0
    assert "ready" in lf.serving.logs(name, "champion")
    # usage tracking is on: every call lands in system.serving.endpoint_usage
    count = f"SELECT count(*) AS n FROM system.serving.endpoint_usage WHERE endpoint_name = '{name}'"
    _wait(lambda: lf.sql(count).to_pylist()[0]["n"] >= 14, 60)

    # CAN_QUERY for another user, through the permissions API
    user, token = server.new_user()
    with Client(server.url, token) as other:
        with pytest.raises(ApiError) as e:
            other.serving.query(name, x)
        assert e.value.status == 403
        acl = lf.serving.grant(name, user, "can_query")
        assert {a.get("user_name"): a.all_permissions[0].permission_level
                for a in acl.access_control_list}[user] == "CAN_QUERY"
        assert _wait(lambda: _answers(other, name, x), 10)
        with pytest.raises(ApiError) as e:
            other.serving.delete(name)
        assert e.value.status == 403
    with pytest.raises(ValueError):
        lf.serving.grant(name, user, "OWNER")
    gateway = lf.serving.put_ai_gateway(name, rate_limits=[{"calls": 1000, "key": "user", "renewal_period": "minute"}],
                                        usage_tracking_config={"enabled": True})
    assert gateway.rate_limits[0].calls == 1000

    # a config that cannot deploy (the model's files were changed) raises and keeps the old one serving
    with server.client() as c:
        v = c.get(f"/api/2.1/unity-catalog/models/{models.flaky}/versions/1").json()
    victim = next(to_path(v["storage_location"]).rglob("MLmodel"))
    original = victim.read_bytes()
    victim.write_bytes(original + b"\n# tampered\n")
    try:
        with pytest.raises(UpdateFailed) as e:
            lf.serving.update(name, [entity(models.model, 1, "champion"), entity(models.flaky, 1, "broken")])
        assert "integrity" in e.value.message and name in e.value.message
    finally:
        victim.write_bytes(original)
    ep = lf.serving.get(name)
    assert ep.state.config_update == "UPDATE_FAILED" and ep.config.config_version == 2
    assert lf.serving.query(name, x, served_model="champion").predictions == models.expected[1][:5]

    lf.serving.delete(name)
    with pytest.raises(ApiError) as e:
        lf.serving.get(name)
    assert e.value.status == 404 and e.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def _answers(client: Client, name: str, x) -> bool:
    try:
        return bool(client.serving.query(name, x).predictions)
    except ApiError:
        return False


def test_cli_create_query_update_usage_logs_delete(cli, models, lf, tmp_path):
    name = f"cli-{uuid.uuid4().hex[:8]}"
    out = cli("serving", "create", name, "--model", models.model, "--version", "1", "--name", "a",
              "--inference-table", models.schema, "-o", "json")
    ep = json.loads(out.stdout)
    assert ep["state"]["config_update"] == "NOT_UPDATING" and ep["state"]["ready"] == "READY"
    assert name in cli("serving", "list").stdout
    assert name in [e["name"] for e in json.loads(cli("serving", "list", "-o", "json").stdout)]
    shown = cli("serving", "get", name).stdout
    assert "DEPLOYMENT_READY" in shown and models.model in shown

    x = models.x.head(3)
    records = json.dumps({"dataframe_records": x.to_dict(orient="records")})
    got = json.loads(cli("serving", "query", name, "--json", records, "-o", "json").stdout)
    assert got == {"predictions": models.expected[1][:3], "served_model_name": "a"}
    body = tmp_path / "body.json"
    body.write_text(json.dumps(split_body(x)))
    got = json.loads(cli("serving", "query", name, "--file", str(body), "-o", "json").stdout)
    assert got["predictions"] == models.expected[1][:3]
    csv = tmp_path / "rows.csv"
    x.to_csv(csv, index=False)
    table = cli("serving", "query", name, "--csv", str(csv)).stdout
    assert "served by a" in table and "prediction" in table

    out = cli("serving", "update", name, "--entity", f"{models.model}:1:a", "--entity", f"{models.model}:2:b",
              "--traffic", "a=70", "--traffic", "b=30", "-o", "json")
    ep = json.loads(out.stdout)
    assert ep["config"]["config_version"] == 2
    assert {r["served_entity_name"]: r["traffic_percentage"] for r in ep["config"]["traffic_config"]["routes"]} == \
        {"a": 70, "b": 30}
    got = json.loads(cli("serving", "query", name, "--json", records, "--served-model", "b", "-o", "json").stdout)
    assert got == {"predictions": models.expected[2][:3], "served_model_name": "b"}

    usage = json.loads(cli("serving", "usage", name, "-o", "json").stdout)
    assert {e["name"]: e["requests"] for e in usage["served_entities"]} == {"a": 3, "b": 1}
    assert "(total)" in cli("serving", "usage", name).stdout
    assert "ready" in cli("serving", "logs", name, "a").stdout

    # every call is a row of the inference table, readable with SQL
    table_name = f"{models.schema}.{name.replace('-', '_')}_payload"
    count = f"SELECT count(*) AS n FROM {table_name}"
    _wait(lambda: lf.sql(count).to_pylist()[0]["n"] == 4, 60)
    served = lf.sql(f"SELECT request_metadata['served_entity_name'] AS s, count(*) AS n FROM {table_name} "
                    "GROUP BY 1 ORDER BY 1").to_pylist()
    assert [(r["s"], r["n"]) for r in served] == [("a", 3), ("b", 1)]

    assert "deleted serving endpoint" in cli("serving", "delete", name).stdout
    assert name not in cli("serving", "list").stdout


def test_errors_are_one_line_with_exit_code_1(cli, lf):
    body = json.dumps({"dataframe_records": [{"f0": 1.0}]})
    for args in (("serving", "query", "nope-none", "--json", body),
                 ("serving", "get", "nope-none"),
                 ("serving", "create", "bad", "--model", "a.b.c", "--version", "1", "--traffic", "x=lots"),
                 ("serving", "query", "nope-none")):
        out = cli(*args, ok=False)
        assert out.returncode == 1, out
        assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert out.stdout == ""
    out = cli("serving", "query", "nope-none", "--json", body, ok=False)
    assert "RESOURCE_DOES_NOT_EXIST" in out.stderr and "nope-none" in out.stderr
    with pytest.raises(ApiError) as e:
        lf.serving.query("nope-none", [{"f0": 1.0}])
    assert e.value.status == 404
