"""MLflow tracking built in: stock `mlflow` (and databricks-sdk for permissions) against a real
Lakeforge server, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient


@pytest.fixture
def use(monkeypatch):
    """Point stock mlflow at a server as one caller; mlflow's cached state is reset around each test."""

    def _use(server, token):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        _reset()
        mlflow.set_tracking_uri(server.url)
        return MlflowClient(server.url)

    yield _use
    _reset()


def _reset():
    while mlflow.active_run():
        mlflow.end_run()
    from mlflow.tracking import fluent

    fluent._active_experiment_id = None
    mlflow.set_tracking_uri(None)
    if hasattr(mlflow.tracing, "reset"):
        mlflow.tracing.reset()


def _name(prefix="exp"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _error_code(excinfo) -> str:
    return excinfo.value.error_code


# ---- the whole workflow as a regular user -------------------------------------------------------
def test_tracking_end_to_end(any_server, use, tmp_path):
    from sklearn.linear_model import LogisticRegression

    _, token = any_server.new_user()
    use(any_server, token)
    exp = mlflow.set_experiment(_name())
    X = pd.DataFrame({"a": np.arange(20, dtype=float), "b": np.arange(20, dtype=float) % 3})
    y = (X["a"] > 9).astype(int)

    @mlflow.trace
    def predict_one(a: float) -> float:
        return a * 2

    with mlflow.start_run() as run:
        mlflow.log_params({"C": 1.0, "solver": "lbfgs"})
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.set_tag("team", "forecasting")
        (tmp_path / "notes.txt").write_text("hello")
        mlflow.log_artifact(str(tmp_path / "notes.txt"))
        plots = tmp_path / "plots"
        plots.mkdir()
        (plots / "a.csv").write_text("x\n1\n")
        (plots / "b.csv").write_text("x\n2\n")
        mlflow.log_artifacts(str(plots), artifact_path="plots")
        mlflow.log_input(mlflow.data.from_pandas(X, name="train-set"), context="training")
        model = LogisticRegression().fit(X, y)
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        assert predict_one(2.0) == 4.0
    mlflow.flush_trace_async_logging()

    # runs, params, metrics, tags and inputs come back
    runs = mlflow.search_runs([exp.experiment_id])
    assert list(runs["run_id"]) == [run.info.run_id]
    assert runs.loc[0, "params.solver"] == "lbfgs" and runs.loc[0, "tags.team"] == "forecasting"
    client = MlflowClient()
    got = client.get_run(run.info.run_id)
    assert got.data.metrics["loss"] == pytest.approx(1 / 3)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [0, 1, 2]
    assert got.inputs.dataset_inputs[0].dataset.name == "train-set"

    # artifacts are proxied and stored under <storage root>/mlflow-artifacts/<experiment id>/...
    listed = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"notes.txt", "plots"} <= listed
    root = any_server.home / "storage" / "mlflow-artifacts" / exp.experiment_id / run.info.run_id / "artifacts"
    assert (root / "notes.txt").read_text() == "hello"
    assert sorted(p.name for p in (root / "plots").iterdir()) == ["a.csv", "b.csv"]
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="notes.txt",
                                                dst_path=str(tmp_path / "dl"))
    assert Path(local).read_text() == "hello"

    # the logged model is found and loads back, by model id and through the run
    assert info.model_uri.startswith("models:/m-")
    logged = client.get_logged_model(info.model_id)
    assert logged.experiment_id == exp.experiment_id
    assert [m.model_id for m in mlflow.search_logged_models(experiment_ids=[exp.experiment_id],
                                                           output_format="list")] == [info.model_id]
    expected = model.predict(X.head(3))
    assert list(mlflow.pyfunc.load_model(info.model_uri).predict(X.head(3))) == list(expected)

    # the trace was stored with its span
    traces = client.search_traces(locations=[exp.experiment_id])
    assert len(traces) == 1
    trace = client.get_trace(traces[0].info.trace_id)
    assert [s.name for s in trace.data.spans] == ["predict_one"]


# ---- authentication ---------------------------------------------------------------------------
def test_no_token_is_rejected(server, use):
    for method, path in [("GET", "/api/2.0/mlflow/experiments/search?max_results=5"),
                         ("POST", "/api/2.0/mlflow/experiments/create"),
                         ("GET", "/ajax-api/2.0/mlflow/experiments/search?max_results=5"),
                         ("GET", "/api/2.0/mlflow-artifacts/artifacts/0/x"),
                         ("GET", "/api/2.0/permissions/experiments/0")]:
        r = httpx.request(method, server.url + path, json={} if method == "POST" else None)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error_code"] == "UNAUTHENTICATED"
    use(server, "not-a-token")
    with pytest.raises(MlflowException) as e:
        mlflow.search_experiments()
    assert "UNAUTHENTICATED" in str(e.value) or "401" in str(e.value)


def test_web_ui_sign_in(server):
    with httpx.Client(base_url=server.url, timeout=60) as browser:
        r = browser.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/login"
        page = browser.get("/login")
        assert page.status_code == 200 and "<form" in page.text
        bad = browser.post("/login", data={"token": "wrong"})
        assert bad.status_code == 401 and "Invalid access token" in bad.text
        assert browser.get("/ajax-api/2.0/mlflow/experiments/search", params={"max_results": 5}).status_code == 401

        ok = browser.post("/login", data={"token": server.admin_token})
        assert ok.status_code == 303
        cookie = ok.headers["set-cookie"].lower()
        assert "lakeforge_token=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        index = browser.get("/")
        assert index.status_code == 200 and "static-files/static/js/main" in index.text
        # the UI's own data calls authenticate with the cookie
        r = browser.get("/ajax-api/2.0/mlflow/experiments/search", params={"max_results": 5})
        assert r.status_code == 200 and "experiments" in r.json()

    # static assets load without credentials
    import re

    script = re.search(r'src="(static-files/static/js/main[^"]+)"', index.text).group(1)
    asset = httpx.get(f"{server.url}/{script}")
    assert asset.status_code == 200 and len(asset.content) > 1000


# ---- experiment permissions -------------------------------------------------------------------
def test_experiment_permissions(server, use):
    from databricks.sdk.service.ml import (
        ExperimentAccessControlRequest,
        ExperimentPermissionLevel,
    )

    owner_name, owner = server.new_user()
    other_name, other = server.new_user()

    use(server, owner)
    exp_id = mlflow.create_experiment(_name("private"))
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_metric("m", 1.0)
    run_id = run.info.run_id

    # the other user sees nothing and may do nothing
    client = use(server, other)
    with pytest.raises(MlflowException) as e:
        client.get_experiment(exp_id)
    assert _error_code(e) == "PERMISSION_DENIED"
    with pytest.raises(MlflowException) as e:
        client.get_run(run_id)
    assert _error_code(e) == "PERMISSION_DENIED"
    with pytest.raises(MlflowException) as e:
        client.log_metric(run_id, "m", 2.0)
    assert _error_code(e) == "PERMISSION_DENIED"
    with pytest.raises(MlflowException) as e:
        client.search_runs([exp_id])
    assert _error_code(e) == "PERMISSION_DENIED"
    with pytest.raises(Exception) as e:
        mlflow.artifacts.list_artifacts(artifact_uri=f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts")
    assert "PERMISSION_DENIED" in str(e.value) or "403" in str(e.value)
    assert exp_id not in {x.experiment_id for x in client.search_experiments()}
    with pytest.raises(Exception) as e:
        server.workspace(other).experiments.get_permissions(exp_id)
    assert "PERMISSION_DENIED" in str(e.value) or "does not have" in str(e.value)

    # the owner shares it: read first
    w = server.workspace(owner)
    perms = w.experiments.set_permissions(exp_id, access_control_list=[
        ExperimentAccessControlRequest(user_name=owner_name, permission_level=ExperimentPermissionLevel.CAN_MANAGE),
        ExperimentAccessControlRequest(user_name=other_name, permission_level=ExperimentPermissionLevel.CAN_READ)])
    levels = {a.user_name: a.all_permissions[0].permission_level.value for a in perms.access_control_list}
    assert levels == {owner_name: "CAN_MANAGE", other_name: "CAN_READ"}
    client = use(server, other)
    assert client.get_experiment(exp_id).experiment_id == exp_id
    assert client.get_run(run_id).data.metrics["m"] == 1.0
    assert [r.info.run_id for r in client.search_runs([exp_id])] == [run_id]
    assert exp_id in {x.experiment_id for x in client.search_experiments()}
    with pytest.raises(MlflowException) as e:
        client.log_metric(run_id, "m", 2.0)
    assert _error_code(e) == "PERMISSION_DENIED"

    # then edit: logging works, managing still does not
    w.experiments.update_permissions(exp_id, access_control_list=[
        ExperimentAccessControlRequest(user_name=other_name, permission_level=ExperimentPermissionLevel.CAN_EDIT)])
    client = use(server, other)
    client.log_metric(run_id, "m", 2.0)
    with mlflow.start_run(experiment_id=exp_id):
        mlflow.log_param("by", "other")
    with pytest.raises(MlflowException) as e:
        client.rename_experiment(exp_id, _name("renamed"))
    assert _error_code(e) == "PERMISSION_DENIED"
    with pytest.raises(MlflowException) as e:
        client.delete_experiment(exp_id)
    assert _error_code(e) == "PERMISSION_DENIED"
    got = server.workspace(owner).experiments.get_permissions(exp_id)
    assert {a.user_name: a.all_permissions[0].permission_level.value for a in got.access_control_list} == {
        owner_name: "CAN_MANAGE", other_name: "CAN_EDIT"}

    # the owner manages; admins may do everything
    use(server, owner)
    MlflowClient().rename_experiment(exp_id, _name("renamed"))
    admin = use(server, server.admin_token)
    assert admin.get_experiment(exp_id).experiment_id == exp_id
    admin.delete_experiment(exp_id)


def test_default_experiment_is_shared(server, use):
    _, first = server.new_user()
    _, second = server.new_user()
    use(server, first)
    with mlflow.start_run(experiment_id="0") as run:
        mlflow.log_metric("shared", 1.0)
    client = use(server, second)
    assert client.get_run(run.info.run_id).data.metrics["shared"] == 1.0
    client.log_metric(run.info.run_id, "shared", 2.0)
    assert "0" in {x.experiment_id for x in client.search_experiments()}
    with pytest.raises(MlflowException) as e:
        client.delete_experiment("0")
    assert _error_code(e) == "PERMISSION_DENIED"


def test_users_cannot_choose_artifact_locations(server, use):
    _, token = server.new_user()
    client = use(server, token)
    with pytest.raises(MlflowException) as e:
        client.create_experiment(_name(), artifact_location="mlflow-artifacts:/0")
    assert _error_code(e) == "INVALID_PARAMETER_VALUE"


def test_unmapped_endpoints_are_for_admins_only(server):
    _, token = server.new_user()
    with server.client(token) as c:
        r = c.post("/api/3.0/mlflow/datasets/search", json={})
        assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED"
    with server.client() as c:
        assert c.post("/api/3.0/mlflow/datasets/search", json={}).status_code == 200
        admins_exp = c.post("/api/2.0/mlflow/experiments/create", json={"name": _name()}).json()["experiment_id"]
    # endpoints keyed by an experiment follow its permissions
    with server.client(token) as c:
        own = c.post("/api/2.0/mlflow/experiments/create", json={"name": _name()}).json()["experiment_id"]
        assert c.get("/api/3.0/mlflow/scorers/list", params={"experiment_id": own}).status_code == 200
        r = c.get("/api/3.0/mlflow/scorers/list", params={"experiment_id": admins_exp})
        assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED"


def test_graphql_is_authorized_like_rest(server, use):
    """The web UI's run pages query GraphQL; each root field is checked like the REST call."""
    _, owner = server.new_user()
    _, other = server.new_user()
    use(server, owner)
    exp_id = mlflow.create_experiment(_name("gql"))
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_metric("m", 1.0)
    get_run = {"query": "query Q($id: String) { mlflowGetRun(input: {runId: $id}) { run { info { runUuid } } } }",
               "variables": {"id": run.info.run_id}}
    search = {"query": "mutation S($ids: [String]) { mlflowSearchRuns(input: {experimentIds: $ids}) "
                       "{ runs { info { runUuid } } } }", "variables": {"ids": [exp_id]}}
    with server.client(owner) as c:
        r = c.post("/graphql", json=get_run)
        assert r.status_code == 200 and r.json()["data"]["mlflowGetRun"]["run"]["info"]["runUuid"] == run.info.run_id
        assert c.post("/graphql", json=search).status_code == 200
        assert c.post("/graphql", json={"query": "{ __typename }"}).status_code == 200
    with server.client(other) as c:
        for body in (get_run, search):
            r = c.post("/graphql", json=body)
            assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED"
        r = c.post("/graphql", json={"query": "mutation { testMutation(inputString: \"x\") { output } }"})
        assert r.status_code == 403


def test_outside_features_are_off(server):
    with server.client() as c:
        for method, path in [("GET", "/ajax-api/3.0/mlflow/gateway/supported-providers"),
                             ("POST", "/gateway/mlflow/v1/chat/completions"),
                             ("POST", "/ajax-api/3.0/mlflow/demo/generate")]:
            r = c.request(method, path, json={})
            assert r.status_code == 501 and r.json()["error_code"] == "NOT_IMPLEMENTED", (path, r.text)


# ---- the model registry belongs to the catalog -------------------------------------------------
def test_registry_never_reaches_mlflow(server, use):
    """Registry routes the catalog serves are answered by it; any other one answers 501. MLflow's
    own registry tables stay empty either way."""
    import sqlite3

    with server.client() as c:
        for method, path in [("POST", "/api/2.0/mlflow/webhooks"),
                             ("POST", "/api/2.0/mlflow/registered-models/no-such-operation"),
                             ("GET", "/ajax-api/2.0/mlflow/model-versions/no-such-operation")]:
            r = c.request(method, path, json={"name": "m"} if method == "POST" else None)
            assert r.status_code == 501, (path, r.text)
            body = r.json()
            assert body["error_code"] == "NOT_IMPLEMENTED" and "catalog" in body["message"]
        for method, path in [("POST", "/api/2.0/mlflow/registered-models/create"),
                             ("POST", "/ajax-api/2.0/mlflow/registered-models/create"),
                             ("POST", "/api/2.0/mlflow/model-versions/create"),
                             ("GET", "/model-versions/get-artifact?name=m&version=1&path=x")]:
            r = c.request(method, path, json={"name": "main.default.m", "source": "models:/m-1"}
                          if method == "POST" else None)
            assert r.headers["content-type"].startswith("application/json")
            assert r.status_code == 501 or r.json().get("error_code") != "INTERNAL_ERROR"
    client = use(server, server.admin_token)
    with pytest.raises(MlflowException):
        client.create_registered_model("not-a-three-level-name")
    with sqlite3.connect(server.home / "lakeforge.db") as db:
        for table in ("registered_models", "model_versions", "registered_model_aliases", "webhooks"):
            assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table


def test_unknown_paths_are_404(server):
    with server.client() as c:
        r = c.get("/api/2.1/unity-catalog/no-such-thing")
        assert r.status_code == 404 and r.json()["error_code"] == "ENDPOINT_NOT_FOUND"
        r = c.get("/api/2.0/mlflow/no-such-thing")
        assert r.status_code == 404 and r.json()["error_code"] == "ENDPOINT_NOT_FOUND"
        # a Lakeforge path asked with the wrong method still answers 405 behind the catch-all mount
        r = c.put("/api/2.1/unity-catalog/catalogs", json={})
        assert r.status_code == 405 and r.json()["error_code"] == "METHOD_NOT_ALLOWED"


def test_restart_keeps_tracking_data(tmp_path, use):
    """A second start finds MLflow's tables current (no migration) and serves what was logged."""
    from tests.harness import start_server

    token = f"tok-{uuid.uuid4().hex}"
    srv = start_server(tmp_path / "home", admin_token=token)
    try:
        use(srv, token)
        with mlflow.start_run(experiment_id=mlflow.create_experiment(_name("restart"))) as run:
            mlflow.log_metric("m", 3.0)
    finally:
        srv.stop()
    srv = start_server(tmp_path / "home", admin_token=token)
    try:
        client = use(srv, token)
        assert client.get_run(run.info.run_id).data.metrics["m"] == 3.0
    finally:
        srv.stop()
