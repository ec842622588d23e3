"""MLflow's model registry answered by the catalog, driven by stock MLflow against a real server:
register, aliases, load by alias, tags, search, delete; the registry's own verified copy; catalog
privileges; lineage from a run's Delta input table to the model; bad input in MLflow's error shape."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from lakeforge.catalog.storage import to_path
from tests.harness import Server

UC = "/api/2.1/unity-catalog"
REG = "/api/2.0/mlflow"


def _reset_mlflow() -> None:
    import mlflow
    from mlflow.tracking import _model_registry, _tracking_service, fluent

    if mlflow.active_run():
        mlflow.end_run()
    _tracking_service.utils._tracking_uri = None
    _model_registry.utils._registry_uri = None
    fluent._active_experiment_id = None
    for var in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_REGISTRY_URI"):
        os.environ.pop(var, None)


@pytest.fixture
def mlf(monkeypatch):
    """use(server, token) points stock MLflow (tracking and registry) at a server as that token."""
    import mlflow

    def use(server: Server, token: str | None = None):
        _reset_mlflow()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", server.url)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token or server.admin_token)
        return mlflow.MlflowClient(tracking_uri=server.url, registry_uri=server.url)

    yield use
    _reset_mlflow()


def _schema(server: Server) -> str:
    """A fresh catalog.schema for one test."""
    catalog = f"reg_{uuid.uuid4().hex[:8]}"
    with server.client() as c:
        c.post(f"{UC}/catalogs", json={"name": catalog}).raise_for_status()
        c.post(f"{UC}/schemas", json={"name": "ml", "catalog_name": catalog}).raise_for_status()
    return f"{catalog}.ml"


def _train():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.random((40, 3))
    y = (x[:, 0] > 0.5).astype(int)
    return LogisticRegression().fit(x, y), x


def _log_model(experiment: str, inputs: list | None = None):
    """Train and log a scikit-learn model in a new run; returns (model info, run id, features)."""
    import mlflow
    import mlflow.sklearn

    model, x = _train()
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run:
        for dataset in inputs or []:
            mlflow.log_input(dataset, context="training")
        info = mlflow.sklearn.log_model(model, name="model")
    return info, run.info.run_id, x


def _saved_model(server: Server, experiment_id: str = "0") -> tuple[str, Path]:
    """A model saved straight into the proxied artifact store (no tracking calls):
    returns its mlflow-artifacts:/ URI and local path."""
    import mlflow.sklearn

    rel = f"{experiment_id}/manual/{uuid.uuid4().hex[:8]}/model"
    path = server.home / "storage" / "mlflow-artifacts" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    mlflow.sklearn.save_model(_train()[0], str(path))
    return f"mlflow-artifacts:/{rel}", path


def _code(excinfo) -> str:
    return excinfo.value.error_code


def _grant(server: Server, kind: str, name: str, principal: str, *privileges: str) -> None:
    with server.client() as c:
        c.patch(f"{UC}/permissions/{kind}/{name}",
                json={"changes": [{"principal": principal, "add": list(privileges)}]}).raise_for_status()


def test_register_alias_load_and_the_owned_copy(any_server, mlf, tmp_path):
    import mlflow

    client = mlf(any_server)
    name = f"{_schema(any_server)}.churn"
    info, run_id, x = _log_model(f"/reg-{uuid.uuid4().hex[:6]}")
    source_dir = any_server.home / "storage" / "mlflow-artifacts"
    before = sorted(p.relative_to(source_dir) for p in source_dir.rglob("*") if p.is_file())

    mv = mlflow.register_model(info.model_uri, name, tags={"team": "churn"})
    assert (mv.version, mv.status, mv.source, mv.run_id) == ("1", "READY", info.model_uri, run_id)
    assert mv.tags == {"team": "churn"}
    # Registering copies: every source file is still there, unchanged in number.
    after = sorted(p.relative_to(source_dir) for p in source_dir.rglob("*") if p.is_file())
    assert after == before

    client.set_registered_model_alias(name, "champion", "1")
    expected = mlflow.sklearn.load_model(info.model_uri).predict(x)
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert list(loaded.predict(x)) == list(expected)
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    assert client.get_registered_model(name).aliases == {"champion": "1"}
    assert mlflow.pyfunc.load_model(f"models:/{name}/1") is not None
    assert mlflow.pyfunc.load_model(f"models:/{name}/latest") is not None

    # The download URI names the registry's copy, not the run's artifacts.
    uri = client.get_model_version_download_uri(name, "1")
    assert uri == f"mlflow-artifacts:/_lakeforge_registry/{name.replace('.', '/')}/1"

    # Delete the run and its experiment, and even the source files: the version still loads.
    experiment_id = client.get_run(run_id).info.experiment_id
    client.delete_run(run_id)
    client.delete_experiment(experiment_id)
    shutil.rmtree(source_dir / experiment_id)
    again = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert list(again.predict(x)) == list(expected)

    # The same model through the Unity Catalog API and the CLI.
    with any_server.client() as c:
        uc = c.get(f"{UC}/models/{name}", params={"include_aliases": True}).json()
        assert uc["full_name"] == name and uc["aliases"] == [{"alias_name": "champion", "version_num": 1}]
        v = c.get(f"{UC}/models/{name}/versions/1").json()
        assert v["status"] == "READY" and to_path(v["storage_location"]).is_dir()
        assert c.get(f"{UC}/models/{name}/versions/1/verify").json()["verified"] is True
    env = {**any_server.env, "LAKEFORGE_HOST": any_server.url, "LAKEFORGE_TOKEN": any_server.admin_token,
           "LAKEFORGE_PROFILES": str(tmp_path / "none.toml")}
    out = subprocess.run([sys.executable, "-m", "lakeforge.cli.main", "models", "get", name, "-o", "json"],
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["full_name"] == name


def test_tags_descriptions_search_and_delete(any_server, mlf):
    from mlflow.exceptions import RestException

    client = mlf(any_server)
    schema = _schema(any_server)
    source, _ = _saved_model(any_server)
    for short in ("alpha", "beta", "gamma"):
        client.create_registered_model(f"{schema}.{short}", tags={"kind": short[0]}, description=f"the {short}")
    for _ in range(3):
        client.create_model_version(f"{schema}.beta", source, tags={"stage": "dev"})

    rm = client.get_registered_model(f"{schema}.beta")
    assert rm.description == "the beta" and rm.tags == {"kind": "b"}
    assert [v.version for v in rm.latest_versions] == ["3"]
    assert [v.version for v in client.get_latest_versions(f"{schema}.beta")] == ["3"]

    client.set_registered_model_tag(f"{schema}.beta", "owner", "ml-team")
    client.delete_registered_model_tag(f"{schema}.beta", "kind")
    client.update_registered_model(f"{schema}.beta", description="changed")
    rm = client.get_registered_model(f"{schema}.beta")
    assert rm.tags == {"owner": "ml-team"} and rm.description == "changed"
    client.set_model_version_tag(f"{schema}.beta", "2", "validated", "yes")
    client.delete_model_version_tag(f"{schema}.beta", "2", "stage")
    client.update_model_version(f"{schema}.beta", "2", description="second")
    v2 = client.get_model_version(f"{schema}.beta", "2")
    assert v2.tags == {"validated": "yes"} and v2.description == "second"
    with pytest.raises(RestException) as e:
        client.delete_registered_model_tag(f"{schema}.beta", "never-set")
    assert _code(e) == "RESOURCE_DOES_NOT_EXIST"

    # Search: name =, LIKE, ILIKE, tags, order_by, paging.
    names = lambda models: [m.name for m in models]
    assert names(client.search_registered_models(f"name = '{schema}.alpha'")) == [f"{schema}.alpha"]
    like = client.search_registered_models(f"name LIKE '{schema}.%a'", order_by=["name DESC"])
    assert names(like) == [f"{schema}.gamma", f"{schema}.beta", f"{schema}.alpha"]
    assert names(client.search_registered_models(f"name ILIKE '{schema.upper()}.G%'")) == [f"{schema}.gamma"]
    assert names(client.search_registered_models(f"tags.kind = 'g' AND name LIKE '{schema}.%'")) == \
        [f"{schema}.gamma"]
    page = client.search_registered_models(f"name LIKE '{schema}.%'", max_results=2)
    assert names(page) == [f"{schema}.alpha", f"{schema}.beta"] and page.token
    rest = client.search_registered_models(f"name LIKE '{schema}.%'", max_results=2, page_token=page.token)
    assert names(rest) == [f"{schema}.gamma"] and not rest.token
    by_time = client.search_registered_models(f"name LIKE '{schema}.%'", order_by=["last_updated_timestamp DESC"])
    assert names(by_time)[0] == f"{schema}.beta"

    versions = client.search_model_versions(f"name = '{schema}.beta'")
    assert sorted(v.version for v in versions) == ["1", "2", "3"]
    assert [v.version for v in client.search_model_versions(f"name = '{schema}.beta' AND tags.validated = 'yes'")] \
        == ["2"]
    assert len(client.search_model_versions(f"source_path = '{source}' AND name = '{schema}.beta'")) == 3
    paged = client.search_model_versions(f"name = '{schema}.beta'", max_results=2)
    assert len(paged) == 2 and paged.token
    with pytest.raises(RestException) as e:
        client.search_registered_models("nonsense ~ 1")
    assert _code(e) == "INVALID_PARAMETER_VALUE"

    # Rename within the schema; delete a version, then the model.
    client.rename_registered_model(f"{schema}.gamma", f"{schema}.delta")
    assert client.get_registered_model(f"{schema}.delta").description == "the gamma"
    client.delete_model_version(f"{schema}.beta", "1")
    assert sorted(v.version for v in client.search_model_versions(f"name = '{schema}.beta'")) == ["2", "3"]
    client.delete_registered_model(f"{schema}.beta")
    with pytest.raises(RestException) as e:
        client.get_registered_model(f"{schema}.beta")
    assert _code(e) == "RESOURCE_DOES_NOT_EXIST"


def test_unknown_names_and_bad_input(server, mlf):
    import mlflow
    from mlflow.exceptions import MlflowException, RestException

    client = mlf(server)
    schema = _schema(server)
    source, _ = _saved_model(server)
    client.create_registered_model(f"{schema}.m")
    client.create_model_version(f"{schema}.m", source)
    for call in (lambda: client.get_registered_model(f"{schema}.missing"),
                 lambda: client.get_model_version(f"{schema}.m", "7"),
                 lambda: client.get_model_version_by_alias(f"{schema}.m", "nope"),
                 lambda: client.set_registered_model_alias(f"{schema}.m", "champion", "9"),
                 lambda: client.delete_model_version(f"{schema}.missing", "1")):
        with pytest.raises(RestException) as e:
            call()
        assert _code(e) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        mlflow.pyfunc.load_model(f"models:/{schema}.m@nope")

    with pytest.raises(RestException) as e:
        client.create_registered_model(f"{schema}.m")
    assert _code(e) == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(RestException) as e:
        client.create_registered_model("churn")
    assert _code(e) == "INVALID_PARAMETER_VALUE" and "catalog.schema.model" in str(e.value)
    with pytest.raises(RestException) as e:
        client.rename_registered_model(f"{schema}.m", "main.other.m")
    assert _code(e) == "INVALID_PARAMETER_VALUE"
    with pytest.raises(RestException) as e:
        client.set_registered_model_alias(f"{schema}.m", "latest", "1")
    assert _code(e) == "INVALID_PARAMETER_VALUE"

    # A run's path may not climb out of its artifacts (into other experiments or catalog storage).
    _, run_id, _ = _log_model(f"/escape-{uuid.uuid4().hex[:6]}")
    client.log_text(run_id, "notes", "notes.txt")  # the run's own artifact directory exists
    with pytest.raises(RestException) as e:
        client.create_model_version(f"{schema}.m", f"runs:/{run_id}/../../../../__unitystorage")
    assert _code(e) == "INVALID_PARAMETER_VALUE" and "leaves the run's artifacts" in str(e.value)

    # Sources the server must not read: outside the storage root, unknown schemes, other models.
    for bad in ("/etc", "file:///etc/passwd", "s3://bucket/model", f"models:/{schema}.m@champion",
                "mlflow-artifacts:/../../../etc", "runs:/"):
        with pytest.raises(RestException) as e:
            client.create_model_version(f"{schema}.m", bad)
        assert _code(e) == "INVALID_PARAMETER_VALUE", bad
    assert [v.version for v in client.search_model_versions(f"name = '{schema}.m'")] == ["1"]

    with server.client() as c:
        r = c.get(f"{REG}/registered-models/get", params={"name": "a.b"})
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        r = c.get(f"{REG}/model-versions/get", params={"name": f"{schema}.m", "version": "x"})
        assert r.status_code == 400
        r = c.get(f"{REG}/model-versions/get", params={"name": f"{schema}.m", "version": "5"})
        assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        # The web UI's twins answer the same.
        r = c.get("/ajax-api/2.0/mlflow/registered-models/get", params={"name": f"{schema}.m"})
        assert r.status_code == 200 and r.json()["registered_model"]["name"] == f"{schema}.m"
        got = c.get(f"{REG}/model-versions/get", params={"name": f"{schema}.m", "version": "1"})
        mv = got.json()["model_version"]
        assert mv["version"] == "1" and isinstance(mv["creation_timestamp"], int) and mv["status"] == "READY"
        # Every route is named in the audit log, with the model it acted on.
        missing = c.get(f"{REG}/registered-models/get", params={"name": f"{schema}.missing"})
        events = {e["request_id"]: e for e in c.get("/api/2.0/lakeforge/audit", params={"limit": 1000})
                  .json()["events"]}
        read = events[got.headers["x-request-id"]]
        assert (read["action"], read["securable"]) == ("registry.model_versions.get", f"{schema}.m")
        denied = events[missing.headers["x-request-id"]]
        assert (denied["action"], denied["status_code"], denied["error_code"]) == \
            ("registry.registered_models.get", 404, "RESOURCE_DOES_NOT_EXIST")


def test_failed_copy_leaves_no_version_and_keeps_the_source(server, mlf):
    from mlflow.exceptions import RestException

    client = mlf(server)
    schema = _schema(server)
    source, path = _saved_model(server)
    (path / "leak").symlink_to("/etc/hostname")
    client.create_registered_model(f"{schema}.m")
    with pytest.raises(RestException) as e:
        client.create_model_version(f"{schema}.m", source)
    assert _code(e) == "INVALID_PARAMETER_VALUE" and "link" in str(e.value)
    assert client.search_model_versions(f"name = '{schema}.m'") == []
    assert (path / "MLmodel").is_file()
    with server.client() as c:
        model = c.get(f"{UC}/models/{schema}.m").json()
        versions = to_path(model["storage_location"]) / "versions"
        assert not versions.exists() or not any(versions.iterdir())
    (path / "leak").unlink()
    assert client.create_model_version(f"{schema}.m", source).version == "2"  # numbers are never reused


def test_tampered_files_are_refused(server, mlf):
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlf(server)
    name = f"{_schema(server)}.m"
    source, _ = _saved_model(server)
    client.create_registered_model(name)
    client.create_model_version(name, source)
    mlflow.pyfunc.load_model(f"models:/{name}/1")
    with server.client() as c:
        location = to_path(c.get(f"{UC}/models/{name}/versions/1").json()["storage_location"])
    pickle = max((p for p in location.rglob("*") if p.is_file() and p.name != "MLmodel"),
                 key=lambda p: p.stat().st_size)  # the model's weights
    pickle.write_bytes(pickle.read_bytes() + b"tampered")
    with pytest.raises(Exception) as e:
        mlflow.pyfunc.load_model(f"models:/{name}/1")
    assert "tampered" in str(e.value) and pickle.name in str(e.value)
    # An added file is refused too, and a missing one.
    pickle.write_bytes(pickle.read_bytes()[: -len(b"tampered")])
    mlflow.pyfunc.load_model(f"models:/{name}/1")
    (location / "extra.py").write_text("import os")
    with pytest.raises(Exception, match="tampered"):
        mlflow.pyfunc.load_model(f"models:/{name}/1")
    (location / "extra.py").unlink()

    # MLflow's copy_model_version (dev -> prod) copies a verified registered version.
    prod = f"{_schema(server)}.m"
    copied = client.copy_model_version(f"models:/{name}/1", prod)
    assert (copied.name, copied.version, copied.status) == (prod, "1", "READY")
    mlflow.pyfunc.load_model(f"models:/{prod}/1")
    pickle.write_bytes(pickle.read_bytes() + b"tampered")
    with pytest.raises(MlflowException, match="integrity check"):
        client.copy_model_version(f"models:/{name}/1", prod)
    with server.client() as c:
        r = c.get(f"/api/2.0/mlflow-artifacts/artifacts/_lakeforge_registry/{name.replace('.', '/')}/1/MLmodel")
        assert r.status_code == 200 and b"flavors" in r.content
        r = c.get("/model-versions/get-artifact", params={"name": name, "version": "1", "path": "MLmodel"})
        assert r.status_code == 200 and b"flavors" in r.content
        r = c.get("/model-versions/get-artifact", params={"name": name, "version": "1", "path": "../../x"})
        assert r.status_code == 400
        listing = c.get("/api/2.0/mlflow-artifacts/artifacts",
                        params={"path": f"_lakeforge_registry/{name.replace('.', '/')}/1"}).json()
        assert {"path": "MLmodel", "is_dir": False} in [{k: f[k] for k in ("path", "is_dir")} for f in listing["files"]]


def test_catalog_privileges(server, mlf):
    import mlflow
    from mlflow.exceptions import RestException

    schema = _schema(server)
    name = f"{schema}.m"
    user, token = server.new_user()
    admin = mlf(server)
    source, _ = _saved_model(server)
    admin.create_registered_model(name)
    admin.create_model_version(name, source)

    as_user = mlf(server, token)
    with pytest.raises(RestException) as e:
        as_user.create_registered_model(f"{schema}.mine")
    assert _code(e) == "PERMISSION_DENIED"
    with pytest.raises(RestException) as e:
        as_user.create_model_version(name, source)
    assert _code(e) == "PERMISSION_DENIED"
    with pytest.raises(Exception, match="PERMISSION_DENIED|does not have"):
        mlflow.pyfunc.load_model(f"models:/{name}/1")
    with server.client(token) as c:  # the files themselves need EXECUTE too
        r = c.get(f"/api/2.0/mlflow-artifacts/artifacts/_lakeforge_registry/{name.replace('.', '/')}/1/MLmodel")
        assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED"
    assert [m.name for m in as_user.search_registered_models(f"name = '{name}'")] == []

    catalog = schema.split(".")[0]
    _grant(server, "catalog", catalog, user, "USE_CATALOG")
    _grant(server, "schema", schema, user, "USE_SCHEMA", "CREATE_MODEL")
    as_user = mlf(server, token)
    as_user.create_registered_model(f"{schema}.mine")  # the creator owns it
    # Reading an experiment's files needs CAN_READ on it: experiment 0 is shared with every user.
    assert as_user.create_model_version(f"{schema}.mine", source).status == "READY"
    as_user.set_registered_model_alias(f"{schema}.mine", "champion", "1")
    mlflow.pyfunc.load_model(f"models:/{schema}.mine@champion")
    # CREATE_MODEL registers versions of another's model, but only its owner or MANAGE moves aliases.
    assert as_user.create_model_version(name, source).version == "2"
    with pytest.raises(RestException) as e:
        as_user.set_registered_model_alias(name, "champion", "2")
    assert _code(e) == "PERMISSION_DENIED"
    with pytest.raises(RestException) as e:
        as_user.delete_registered_model(name)
    assert _code(e) == "PERMISSION_DENIED"

    # Files of an experiment the user may not read cannot be registered.
    mlf(server)
    private, _, _ = _log_model(f"/private-{uuid.uuid4().hex[:6]}")
    as_user = mlf(server, token)
    with pytest.raises(RestException) as e:
        as_user.create_model_version(f"{schema}.mine", private.model_uri)
    assert _code(e) == "PERMISSION_DENIED" and "experiment" in str(e.value)

    _grant(server, "registered_model", name, user, "EXECUTE")
    as_user = mlf(server, token)
    mlflow.pyfunc.load_model(f"models:/{name}/1")
    assert [m.name for m in as_user.search_registered_models(f"name = '{name}'")] == [name]
    _grant(server, "registered_model", name, user, "MANAGE")
    as_user.set_registered_model_alias(name, "champion", "2")
    assert as_user.get_model_version_by_alias(name, "champion").version == "2"


def test_lineage_from_a_runs_delta_input(any_server, mlf, tmp_path):
    import mlflow
    import pandas as pd
    from mlflow.data.delta_dataset_source import DeltaDatasetSource

    mlf(any_server)
    schema = _schema(any_server)
    table, name = f"{schema}.customers", f"{schema}.churn"
    locations = {}
    with any_server.client() as c:
        for short in ("customers", "events"):
            r = c.post(f"{UC}/tables", json={
                "name": short, "catalog_name": schema.split(".")[0], "schema_name": "ml",
                "table_type": "MANAGED", "data_source_format": "DELTA",
                "columns": [{"name": "id", "type_text": "bigint", "type_name": "LONG", "position": 0}]})
            r.raise_for_status()
            locations[short] = r.json()["storage_location"]
    df = pd.DataFrame({"id": [1, 2, 3]})
    by_name = mlflow.data.from_pandas(df, source=DeltaDatasetSource(delta_table_name=table, delta_table_id="t1"))
    # A Delta dataset named by path is matched to the catalog table stored there.
    by_path = mlflow.data.from_pandas(df, source=DeltaDatasetSource(path=str(to_path(locations["events"]))),
                                      name="events")
    _, run_id, _ = _log_model(f"/lineage-{uuid.uuid4().hex[:6]}", inputs=[by_name, by_path])
    mv = mlflow.register_model(f"runs:/{run_id}/model", name)
    assert mv.run_id == run_id

    with any_server.client() as c:
        graph = c.get("/api/2.0/lineage/graph", params={"type": "REGISTERED_MODEL", "name": name,
                                                       "direction": "upstream"}).json()
    edges = [(e["source"]["name"], e["target"]["name"], e["entity_type"], e["entity_id"]) for e in graph["edges"]]
    assert sorted(edges) == [(table, name, "MODEL_VERSION", f"{name}/{mv.version}"),
                             (f"{schema}.events", name, "MODEL_VERSION", f"{name}/{mv.version}")]
    env = {**any_server.env, "LAKEFORGE_HOST": any_server.url, "LAKEFORGE_TOKEN": any_server.admin_token,
           "LAKEFORGE_PROFILES": str(tmp_path / "none.toml"), "COLUMNS": "200"}
    # As the issue writes it: `lakeforge lineage main.ml.churn` (the type is inferred from the catalog).
    out = subprocess.run([sys.executable, "-m", "lakeforge.cli.main", "lineage", name, "-o", "json"], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert {e["source"]["name"] for e in json.loads(out.stdout)["edges"]} == {table, f"{schema}.events"}


def _revoke(server: Server, kind: str, name: str, principal: str, *privileges: str) -> None:
    with server.client() as c:
        c.patch(f"{UC}/permissions/{kind}/{name}",
                json={"changes": [{"principal": principal, "remove": list(privileges)}]}).raise_for_status()


def _search_all(client, filter_string: str, max_results: int | None = None, order_by=None,
                versions: bool = False) -> tuple[list, int]:
    """Every result of a search, page after page; returns (names or (name, version), pages)."""
    found, token, pages = [], None, 0
    while True:
        if versions:
            page = client.search_model_versions(filter_string, max_results=max_results or 10_000,
                                                order_by=order_by, page_token=token)
            found += [(v.name, int(v.version)) for v in page]
        else:
            page = client.search_registered_models(filter_string, max_results=max_results or 100,
                                                   order_by=order_by, page_token=token)
            found += [m.name for m in page]
        pages += 1
        token = page.token
        if not token:
            return found, pages
        assert pages < 100


def test_search_shows_exactly_the_models_the_caller_may_see(any_server, mlf):
    """Searches filter by the caller's privileges in the database: the same rules as reading one
    model (EXECUTE on it, its schema or catalog, or owning one of them; USE_CATALOG and USE_SCHEMA
    too), and paging returns each visible model once."""
    admin = mlf(any_server)
    catalog = f"vis_{uuid.uuid4().hex[:8]}"
    with any_server.client() as c:
        c.post(f"{UC}/catalogs", json={"name": catalog}).raise_for_status()
        for schema in ("a", "b"):
            c.post(f"{UC}/schemas", json={"name": schema, "catalog_name": catalog}).raise_for_status()
    in_a = [f"{catalog}.a.m{i}" for i in range(5)]
    in_b = [f"{catalog}.b.m{i}" for i in range(3)]
    for name in in_a + in_b:
        admin.create_registered_model(name, tags={"schema": name.split(".")[1]})
    source, _ = _saved_model(any_server)
    for name in (in_a[0], in_b[0], in_b[1]):
        admin.create_model_version(name, source)
    mine = f"name LIKE '{catalog}.%'"
    assert _search_all(admin, mine)[0] == sorted(in_a + in_b)

    user, token = any_server.new_user()
    as_user = mlf(any_server, token)
    assert _search_all(as_user, mine)[0] == []
    assert _search_all(as_user, mine, versions=True)[0] == []
    # USE_CATALOG and USE_SCHEMA reveal no model.
    _grant(any_server, "catalog", catalog, user, "USE_CATALOG")
    for schema in ("a", "b"):
        _grant(any_server, "schema", f"{catalog}.{schema}", user, "USE_SCHEMA")
    assert _search_all(as_user, mine)[0] == []

    # EXECUTE on one model: exactly that one, and its versions only.
    _grant(any_server, "registered_model", in_b[1], user, "EXECUTE")
    assert _search_all(as_user, mine)[0] == [in_b[1]]
    assert [n for n in _search_all(as_user, "")[0] if n.startswith(f"{catalog}.")] == [in_b[1]]
    assert _search_all(as_user, mine, versions=True)[0] == [(in_b[1], 1)]
    assert [m.name for m in as_user.search_registered_models(f"name = '{in_b[0]}'")] == []

    # EXECUTE on a schema: every model in it.
    _grant(any_server, "schema", f"{catalog}.a", user, "EXECUTE")
    visible = sorted([*in_a, in_b[1]])
    assert _search_all(as_user, mine)[0] == visible
    assert _search_all(as_user, mine, versions=True)[0] == [(in_a[0], 1), (in_b[1], 1)]
    assert _search_all(as_user, f"{mine} AND tags.schema = 'a'")[0] == in_a

    # Paging: each visible model exactly once, in every order.
    found, pages = _search_all(as_user, mine, max_results=2)
    assert found == visible and pages == 3
    found, _ = _search_all(as_user, mine, max_results=2, order_by=["name DESC"])
    assert found == visible[::-1]
    found, _ = _search_all(as_user, mine, max_results=2, order_by=["creation_timestamp DESC"])
    assert sorted(found) == visible and len(found) == len(set(found))
    found, pages = _search_all(as_user, f"{mine} AND tags.schema ILIKE 'A'", max_results=2)
    assert found == in_a and pages == 3

    # Without USE_SCHEMA on b, EXECUTE on its model no longer reveals it.
    _revoke(any_server, "schema", f"{catalog}.b", user, "USE_SCHEMA")
    assert _search_all(as_user, mine)[0] == in_a
    # Owning a model reveals it (given USE_SCHEMA), without any grant on it.
    _grant(any_server, "schema", f"{catalog}.b", user, "USE_SCHEMA", "CREATE_MODEL")
    as_user.create_registered_model(f"{catalog}.b.own")
    assert _search_all(as_user, f"name LIKE '{catalog}.b.%'")[0] == [f"{catalog}.b.m1", f"{catalog}.b.own"]
    # Without USE_CATALOG nothing in the catalog shows, not even what the user owns.
    _revoke(any_server, "catalog", catalog, user, "USE_CATALOG")
    assert _search_all(as_user, mine)[0] == []
    # A grant on the catalog to a group the user is in reveals every model in it.
    _grant(any_server, "catalog", catalog, "users", "USE_CATALOG", "EXECUTE")
    assert _search_all(as_user, mine)[0] == sorted([*in_a, *in_b, f"{catalog}.b.own"])
