"""Inference-table monitoring: a real endpoint's payload table unpacked into a flat inference log,
labels that arrive later merged by request id, incremental and idempotent syncs, access and bad
input. One endpoint for the whole module (each endpoint starts model worker processes)."""

from __future__ import annotations

import datetime
import json
import time
import uuid
from datetime import timedelta

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lakeforge.catalog.storage import to_path
from tests.harness import Server
from tests.serving_models import FEATURES, split_body

UC = "/api/2.1/unity-catalog"
LOGS = "/api/2.0/lakeforge/inference-logs"
DATA = "/api/2.0/lakeforge/tables/{}/data"
ARROW = "application/vnd.apache.arrow.stream"


@pytest.fixture(scope="module")
def endpoint(server: Server, serving_models):
    """An endpoint serving version 1 of the churn model, logging to an inference table."""
    from databricks.sdk.service.serving import (
        AiGatewayConfig,
        AiGatewayInferenceTableConfig,
        EndpointCoreConfigInput,
        ServedEntityInput,
    )

    w = server.workspace()
    name = f"inf-{uuid.uuid4().hex[:8]}"
    catalog, schema = serving_models.schema.split(".")
    w.serving_endpoints.create_and_wait(name, config=EndpointCoreConfigInput(name=name, served_entities=[
        ServedEntityInput(entity_name=serving_models.model, entity_version="1", name="m", workload_size="Small",
                          scale_to_zero_enabled=False)]),
        ai_gateway=AiGatewayConfig(inference_table_config=AiGatewayInferenceTableConfig(
            catalog_name=catalog, schema_name=schema, enabled=True)),
        timeout=timedelta(minutes=3))
    yield name, f"{serving_models.schema}.{name.replace('-', '_')}_payload"
    w.serving_endpoints.delete(name)


# ---- helpers ---------------------------------------------------------------------------------------
def _query(c, endpoint: str, body, rid: str, **kw) -> int:
    r = c.post(f"/serving-endpoints/{endpoint}/invocations", headers={"x-request-id": rid, **kw.pop("headers", {})},
               **({"content": body} if isinstance(body, (str, bytes)) else {"json": body}), **kw)
    return r.status_code


def _path(c, table: str):
    r = c.get(f"{UC}/tables/{table}")
    assert r.status_code == 200, r.text
    return to_path(r.json()["storage_location"])


def _rows(c, table: str) -> list[dict]:
    return DeltaTable(str(_path(c, table))).to_pyarrow_table().to_pylist()


def _version(c, table: str) -> int:
    return DeltaTable(str(_path(c, table))).version()


def _wait_rows(c, table: str, ids: set[str], timeout: float = 60) -> None:
    """Poll until the payload table holds every request id in `ids` (the flusher runs every few seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ids <= {r["databricks_request_id"] for r in _rows(c, table)}:
            return
        time.sleep(0.3)
    raise AssertionError(f"payload rows {ids} did not reach {table}")


def _write(c, table: str, data: pa.Table, mode: str = "append") -> None:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, data.schema) as w:
        w.write_table(data)
    r = c.post(DATA.format(table), params={"mode": mode}, content=sink.getvalue().to_pybytes(),
               headers={"Content-Type": ARROW})
    assert r.status_code == 200, r.text


def _labels(rows: dict[str, float]) -> pa.Table:
    return pa.table({"request_id": pa.array(list(rows), pa.string()), "label": pa.array(list(rows.values()),
                                                                                         pa.float64())})


def _sync(c, target: str) -> dict:
    r = c.post(f"{LOGS}/sync", json={"target_table": target})
    assert r.status_code == 200, r.text
    return r.json()


def _grant(c, kind: str, full_name: str, principal: str, *privileges: str) -> None:
    r = c.patch(f"{UC}/permissions/{kind}/{full_name}", json={"changes": [{"principal": principal,
                                                                           "add": list(privileges)}]})
    assert r.status_code == 200, r.text


# ---- the whole loop: requests -> payload -> flat log -> labels -> more requests ---------------------
def test_unpack_merge_labels_and_sync_incrementally(server: Server, serving_models, endpoint):
    models = serving_models
    name, payload = endpoint
    x, want = models.x, models.expected[1]
    tag = uuid.uuid4().hex[:6]
    split, records, single, bad = (f"split-{tag}", f"records-{tag}", f"single-{tag}", f"bad-{tag}")
    target, labels = f"{models.schema}.log_{tag}", f"{models.schema}.labels_{tag}"
    with server.client() as c:
        assert _query(c, name, split_body(x.iloc[0:3]), split) == 200
        assert _query(c, name, {"dataframe_records": x.iloc[3:5].to_dict(orient="records")}, records) == 200
        assert _query(c, name, split_body(x.iloc[[5]]), single) == 200
        assert _query(c, name, {"dataframe_split": {"columns": ["nope"], "data": [[1]]}}, bad) == 400
        _wait_rows(c, payload, {split, records, single, bad})
        # a label that arrives before its request is unpacked lands with the row itself
        _write(c, labels, _labels({single: float(want[5])}))

        r = c.post(LOGS, json={"endpoint_name": name, "target_table": target, "labels_table": labels})
        assert r.status_code == 200, r.text
        info = r.json()
        assert info["payload_table"] == payload and info["endpoint_name"] == name
        assert info["labels_request_id_col"] == "request_id" and info["labels_label_col"] == "label"
        first = info["sync"]
        assert first["skipped_failed_requests"] >= 1 and first["skipped_malformed"] == 0
        assert first["rows_appended"] >= 6

        flat = DeltaTable(str(_path(c, target)))
        schema = pa.schema(flat.schema().to_arrow())
        assert schema.names[:4] == ["request_id", "databricks_request_id", "timestamp", "model_id"]
        assert schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
        assert all(schema.field(f).type == pa.float64() for f in FEATURES)
        assert schema.field("prediction").type == pa.float64() and schema.field("label").type == pa.float64()
        rows = {r["request_id"]: r for r in flat.to_pyarrow_table().to_pylist()}
        mine = {k: v for k, v in rows.items() if v["databricks_request_id"] in (split, records, single)}
        assert set(mine) == {f"{split}#0", f"{split}#1", f"{split}#2", f"{records}#0", f"{records}#1", single}
        assert not any(v["databricks_request_id"] == bad for v in rows.values())  # only status 200 rows
        order = [f"{split}#0", f"{split}#1", f"{split}#2", f"{records}#0", f"{records}#1", single]
        for i, rid in enumerate(order):
            row = mine[rid]
            assert row["model_id"] == f"{models.model}/1" and row["status_code"] == 200
            assert row["prediction"] == float(want[i])
            assert [row[f] for f in FEATURES] == pytest.approx(x.iloc[i].tolist())
        assert mine[single]["label"] == float(want[5])
        assert all(mine[rid]["label"] is None for rid in order[:5])
        # the catalog shows the flat table's columns and its spec
        table = c.get(f"{UC}/tables/{target}").json()
        assert [col["name"] for col in table["columns"]] == schema.names
        assert table["properties"]["lakeforge.inference_log.source"] == payload

        # labels arrive for older rows: one merge commit, only the rows whose label changed
        before = _version(c, target)
        _write(c, labels, _labels({f"{split}#0": 1 - float(want[0]), f"{split}#1": float(want[1]),
                                   f"{records}#1": float(want[4]), single: float(want[5]),
                                   "no-such-request": 1.0}))
        merged = _sync(c, target)
        assert merged["labels_merged"] == 3 and merged["rows_appended"] == 0 and merged["committed"]
        assert _version(c, target) == before + 1
        rows = {r["request_id"]: r for r in _rows(c, target)}
        assert rows[f"{split}#0"]["label"] == 1 - float(want[0]) and rows[f"{split}#1"]["label"] == float(want[1])
        assert rows[f"{records}#1"]["label"] == float(want[4]) and rows[f"{split}#2"]["label"] is None
        assert DeltaTable(str(_path(c, target))).history(1)[0]["operation"] == "MERGE"

        # idempotent: nothing new, nothing committed
        again = _sync(c, target)
        assert again["rows_appended"] == 0 and again["labels_merged"] == 0 and not again["committed"]
        assert _version(c, target) == before + 1

        # a changed label is merged again; more requests: only the new rows are appended
        _write(c, labels, _labels({f"{split}#0": float(want[0])}))
        more = f"more-{tag}"
        assert _query(c, name, {"inputs": x.iloc[6:8].to_dict(orient="list")}, more) == 200
        _wait_rows(c, payload, {more})
        count = len(_rows(c, target))
        third = _sync(c, target)
        assert third["labels_merged"] == 1 and third["committed"]
        assert third["rows_appended"] >= 2  # the two new rows (and any other test's requests meanwhile)
        rows = {r["request_id"]: r for r in _rows(c, target)}
        assert len(rows) == count + third["rows_appended"]
        assert rows[f"{more}#0"]["prediction"] == float(want[6]) and rows[f"{more}#1"]["prediction"] == float(want[7])
        assert rows[f"{split}#0"]["label"] == float(want[0])
        assert _version(c, target) == before + 2

        state = c.get(f"{LOGS}/{target}").json()
        assert state["labels_table"] == labels
        assert state["state"]["processed_payload_version"] == _version(c, payload)
        assert state["state"]["num_rows"] == len(rows)
        assert state["state"]["num_labeled"] == sum(r["label"] is not None for r in rows.values())
        assert state["state"]["table_version"] == _version(c, target)


# ---- payload shapes the endpoint does not send here: a payload-shaped table written directly -------------
def _payload(rows: list[dict]) -> pa.Table:
    from lakeforge.serving.inference_log import PAYLOAD_SCHEMA

    base = {"client_request_id": None, "date": datetime.date(2023, 11, 14), "execution_time_ms": 1,
            "requester": "admin", "status_code": 200, "served_entity_id": "entity-x",
            "request_metadata": [("model_name", "main.ml.other"), ("model_version", "7")]}
    full = [{**base, "timestamp_ms": 1_700_000_000_000 + i * 1000, **r} for i, r in enumerate(rows)]
    return pa.Table.from_pylist(full, schema=pa.schema([f.with_nullable(True) for f in PAYLOAD_SCHEMA]))


def test_payload_shapes_probabilities_and_malformed_rows(server: Server, serving_models, endpoint):
    schema = serving_models.schema
    tag = uuid.uuid4().hex[:6]
    source, target = f"{schema}.crafted_{tag}_payload", f"{schema}.crafted_log_{tag}"
    rows = [
        {"databricks_request_id": "inst", "request": json.dumps({"instances": [[1, "a"], [2, "b"]]}),
         "response": json.dumps({"predictions": [[0.2, 0.8], [0.7, 0.3]]})},
        {"databricks_request_id": "csv", "request": "age,city\n30,Oslo\n", "response": '{"predictions": [[0.4, 0.6]]}'},
        {"databricks_request_id": "cols", "request": json.dumps({"inputs": {"age": [41], "label": ["x"]}}),
         "response": json.dumps({"predictions": [[0.5, 0.5]]})},
        {"databricks_request_id": "broken-json", "request": "{not json", "response": '{"predictions": [1]}'},
        {"databricks_request_id": "count-mismatch", "request": json.dumps({"dataframe_records": [{"age": 1}]}),
         "response": '{"predictions": [1, 2]}'},
        {"databricks_request_id": "no-predictions", "request": json.dumps({"dataframe_records": [{"age": 1}]}),
         "response": '{"error_code": "BAD_REQUEST"}'},
        {"databricks_request_id": "failed", "request": "{}", "response": "{}", "status_code": 500},
    ]
    name, payload = endpoint
    with server.client() as c:
        rid = f"crafted-{tag}"
        assert _query(c, name, split_body(serving_models.x.iloc[[0]]), rid) == 200
        _wait_rows(c, payload, {rid})
        entity_id = {r["databricks_request_id"]: r for r in _rows(c, payload)}[rid]["served_entity_id"]
        _write(c, source, _payload(rows))
        r = c.post(LOGS, json={"payload_table": source, "target_table": target})
        assert r.status_code == 200, r.text
        first = r.json()["sync"]
        assert first["skipped_malformed"] == 3 and first["skipped_failed_requests"] == 1
        assert first["rows_appended"] == 4
        flat = {r["request_id"]: r for r in _rows(c, target)}
        assert set(flat) == {"inst#0", "inst#1", "csv", "cols"}
        assert flat["inst#0"]["input_0"] == 1 and flat["inst#0"]["input_1"] == "a"
        assert flat["inst#0"]["prediction"] == 1.0 and flat["inst#0"]["prediction_proba"] == 0.8
        assert flat["inst#1"]["prediction"] == 0.0
        assert flat["csv"]["age"] == 30 and flat["csv"]["city"] == "Oslo"
        assert flat["cols"]["input_label"] == "x"  # a feature named like an output column is renamed
        assert flat["csv"]["model_id"] == "main.ml.other/7"
        schema_ = pa.schema(DeltaTable(str(_path(c, target))).schema().to_arrow())
        assert schema_.field("age").type == pa.int64() and schema_.field("prediction_proba").type == pa.float64()

        # a new feature adds a column; a value that does not fit its column becomes null and is counted;
        # the served entity id resolves through the endpoint's config when the row has no model name
        more = _payload([{"databricks_request_id": "later", "served_entity_id": entity_id,
                          "request_metadata": [("endpoint_name", name)],
                          "request": json.dumps({"dataframe_records": [{"age": "old", "score": 0.5}]}),
                          "response": json.dumps({"predictions": [[0.1, 0.9]]})}])
        _write(c, source, more)
        second = _sync(c, target)
        assert second["rows_appended"] == 1 and second["values_nulled"] == 1
        row = {r["request_id"]: r for r in _rows(c, target)}["later"]
        assert row["age"] is None and row["score"] == 0.5 and row["prediction_proba"] == 0.9
        assert row["model_id"] == f"{serving_models.model}/1"
        columns = [col["name"] for col in c.get(f"{UC}/tables/{target}").json()["columns"]]
        assert "score" in columns
    # more than two classes: the whole list is kept (array<double>), the prediction is the likeliest class
    from lakeforge.monitoring.inference_unpack import split_prediction

    assert split_prediction([0.1, 0.2, 0.7]) == (2.0, [0.1, 0.2, 0.7])
    assert split_prediction([0.5, 0.7]) == ('[0.5,0.7]', None)  # not probabilities: kept as JSON text


def test_registered_on_an_empty_payload_table_the_first_rows_set_the_columns(server: Server, serving_models):
    schema = serving_models.schema
    tag = uuid.uuid4().hex[:6]
    source, target = f"{schema}.empty_{tag}_payload", f"{schema}.empty_log_{tag}"
    with server.client() as c:
        _write(c, source, _payload([]))
        r = c.post(LOGS, json={"payload_table": source, "target_table": target})
        assert r.status_code == 200, r.text
        assert r.json()["sync"]["rows_appended"] == 0 and r.json()["state"]["num_rows"] == 0
        _write(c, source, _payload([{"databricks_request_id": "first", "request": json.dumps(
            {"dataframe_records": [{"city": "Oslo", "n": 3}]}), "response": '{"predictions": ["yes"]}'}]))
        assert _sync(c, target)["rows_appended"] == 1
        flat = DeltaTable(str(_path(c, target)))
        types = {f.name: f.type for f in pa.schema(flat.schema().to_arrow())}
        assert types["city"] == pa.string() and types["n"] == pa.int64()
        assert types["prediction"] == pa.string() and types["label"] == pa.string()  # not the empty table's double
        assert flat.to_pyarrow_table().to_pylist()[0]["prediction"] == "yes"
        columns = [col["name"] for col in c.get(f"{UC}/tables/{target}").json()["columns"]]
        assert columns == list(types)


def test_event_time_from_a_request_column(server: Server, serving_models):
    schema = serving_models.schema
    tag = uuid.uuid4().hex[:6]
    source, target = f"{schema}.events_{tag}_payload", f"{schema}.events_log_{tag}"
    times = ["2026-03-01T12:00:00+02:00", 1_772_000_000_000, None, "yesterday", 1e300]
    body = {"dataframe_records": [{"x": i, "event_time": t} for i, t in enumerate(times)]}
    with server.client() as c:
        _write(c, source, _payload([{"databricks_request_id": "ev", "request": json.dumps(body),
                                     "response": json.dumps({"predictions": [0] * len(times)})}]))
        r = c.post(LOGS, json={"payload_table": source, "target_table": target, "timestamp_feature": "event_time"})
        assert r.status_code == 200, r.text
        assert r.json()["timestamp_feature"] == "event_time"
        rows = sorted(_rows(c, target), key=lambda r: r["x"])
        assert "event_time" not in rows[0]  # the event time is the timestamp, not a feature
        request_time = datetime.datetime.fromtimestamp(1_700_000_000, datetime.UTC)
        assert [r["timestamp"] for r in rows] == [
            datetime.datetime(2026, 3, 1, 10, tzinfo=datetime.UTC),
            datetime.datetime.fromtimestamp(1_772_000_000, datetime.UTC),
            request_time, request_time, request_time]  # missing or unreadable: the request's time


# ---- access and bad input -------------------------------------------------------------------------
def test_register_needs_select_on_the_payload_table(server: Server, serving_models, endpoint):
    schema = serving_models.schema
    catalog = schema.split(".")[0]
    _, payload = endpoint
    user, token = server.new_user()
    tag = uuid.uuid4().hex[:6]
    target = f"{schema}.denied_{tag}"
    with server.client() as c:
        _grant(c, "catalog", catalog, user, "USE_CATALOG")
        _grant(c, "schema", schema, user, "USE_SCHEMA", "CREATE_TABLE")
        with server.client(token) as u:
            r = u.post(LOGS, json={"payload_table": payload, "target_table": target})
            assert r.status_code == 403, r.text
            assert c.get(f"{UC}/tables/{target}").status_code == 404  # nothing was created
            _grant(c, "table", payload, user, "SELECT")
            r = u.post(LOGS, json={"payload_table": payload, "target_table": target})
            assert r.status_code == 200, r.text
        # someone who may not modify the flat table may not sync it
        other, other_token = server.new_user()
        _grant(c, "catalog", catalog, other, "USE_CATALOG")
        _grant(c, "schema", schema, other, "USE_SCHEMA", "SELECT")
        with server.client(other_token) as o:
            r = o.post(f"{LOGS}/sync", json={"target_table": target})
            assert r.status_code == 403, r.text


def test_bad_registrations_are_refused(server: Server, serving_models, endpoint):
    schema = serving_models.schema
    name, payload = endpoint
    tag = uuid.uuid4().hex[:6]
    plain, target = f"{schema}.plain_{tag}", f"{schema}.log_{tag}"
    with server.client() as c:
        _write(c, plain, pa.table({"request_id": ["a"], "score": [1.0]}))

        def refused(body, status=400, *words):
            r = c.post(LOGS, json=body)
            assert r.status_code == status, r.text
            for w in words:
                assert w in r.json()["message"], r.json()
            assert c.get(f"{UC}/tables/{body.get('target_table')}").status_code in (400, 404)

        refused({"payload_table": plain, "target_table": target}, 400, "not a serving endpoint's payload table",
                "databricks_request_id")
        refused({"payload_table": payload, "endpoint_name": name, "target_table": target}, 400, "exactly one")
        refused({"payload_table": f"{schema}.missing_{tag}", "target_table": target}, 400, "does not exist")
        refused({"payload_table": payload, "target_table": target, "labels_table": plain,
                 "labels_label_col": "truth"}, 400, "truth")
        refused({"payload_table": payload, "target_table": "not-three-parts"}, 400, "target_table")
        refused({"endpoint_name": f"nope-{tag}", "target_table": target}, 404)
        r = c.post(LOGS, json={"payload_table": payload, "target_table": plain})
        assert r.status_code == 409, r.text
        r = c.post(f"{LOGS}/sync", json={"target_table": plain})
        assert r.status_code == 400 and "not an inference log" in r.json()["message"], r.text
        assert c.get(f"{LOGS}/{schema}.missing_{tag}").status_code == 404


# ---- an inference_log monitor on the flat table ------------------------------------------------------
def test_classification_monitor_sees_labels_merged_before_its_refresh(server: Server, serving_models, endpoint):
    from databricks.sdk.service.catalog import (
        MonitorInferenceLog,
        MonitorInferenceLogProblemType,
    )

    models = serving_models
    name, payload = endpoint
    tag = uuid.uuid4().hex[:6]
    target, labels = f"{models.schema}.monitored_{tag}", f"{models.schema}.monitored_labels_{tag}"
    w = server.workspace()
    with server.client() as c:
        rid = f"monitored-{tag}"
        assert _query(c, name, split_body(models.x.iloc[10:20]), rid) == 200
        _wait_rows(c, payload, {rid})
        _write(c, labels, _labels({}))
        r = c.post(LOGS, json={"endpoint_name": name, "target_table": target, "labels_table": labels})
        assert r.status_code == 200, r.text
        w.quality_monitors.create(target, output_schema_name=models.schema, assets_dir=f"/monitors/{tag}",
                                  inference_log=MonitorInferenceLog(
                                      problem_type=MonitorInferenceLogProblemType.PROBLEM_TYPE_CLASSIFICATION,
                                      timestamp_col="timestamp", granularities=["1 day"], model_id_col="model_id",
                                      prediction_col="prediction", label_col="label"))
        # labels arrive after the unpack; the refresh syncs the inference log before it computes
        rows = {r["request_id"]: r for r in _rows(c, target) if r["databricks_request_id"] == rid}
        truth = {k: (v["prediction"] if i % 3 else 1 - v["prediction"]) for i, (k, v) in enumerate(sorted(rows.items()))}
        _write(c, labels, _labels(truth))

        refresh = w.quality_monitors.run_refresh(target)
        deadline = time.monotonic() + 120
        while (state := w.quality_monitors.get_refresh(target, str(refresh.refresh_id)).state.value) \
                in ("PENDING", "RUNNING") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert state == "SUCCESS", w.quality_monitors.get_refresh(target, str(refresh.refresh_id)).message

        flat = _rows(c, target)
        assert all(r["label"] == truth[r["request_id"]] for r in flat if r["request_id"] in truth)
        labeled = [r for r in flat if r["label"] is not None]
        profile = _rows(c, f"{models.schema}.monitored_{tag}_profile_metrics")
        quality = [p for p in profile if p["column_name"] == ":table" and p["slice_key"] is None
                   and p["model_id"] == f"{models.model}/1" and p["accuracy_score"] is not None]
        assert quality, "no accuracy_score rows"
        for p in quality:
            inside = [r for r in labeled if p["window"]["start"] <= r["timestamp"] < p["window"]["end"]]
            assert p["num_labeled"] == len(inside)
            assert p["accuracy_score"] == pytest.approx(sum(r["label"] == r["prediction"] for r in inside) / len(inside))
