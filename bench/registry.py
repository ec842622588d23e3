"""Registry benchmark: Lakeforge (registry in the catalog) vs stock `mlflow server` (SQLite backend),
same run, same client code (stock MLflow).

    ./dev bench bench/registry.py [--models 1000] [--rounds 5]

1. register-and-load: log a scikit-learn model in a run, `mlflow.register_model(...)`, then
   `mlflow.pyfunc.load_model("models:/<name>/<version>")` and predict; median wall time of a round,
   and of its steps: log (pickling, the tracking calls and the artifact upload; pip requirements are
   given, not inferred), register, load (download the version's files, unpickle, predict).
2. search: `MlflowClient.search_registered_models(max_results=1000)` with `--models` registered
   models present; median wall time of a call. On Lakeforge also as a user who is no admin and
   holds USE_CATALOG, USE_SCHEMA and EXECUTE on the models' schema (every model visible, each
   visibility decided by the catalog's privileges).
Results: bench/results/registry.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness import free_port, start_server  # noqa: E402


def _start_mlflow(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen([str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{workdir}/mlflow.db",
                             "--artifacts-destination", str(workdir / "artifacts"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], cwd=workdir, env=env,
                            stdout=open(workdir / "mlflow.log", "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("mlflow server did not start: " + (workdir / "mlflow.log").read_text()[-2000:])


def _client_env(url: str, token: str | None) -> None:
    import mlflow

    os.environ["MLFLOW_TRACKING_URI"] = url
    os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    if token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"scikit-learn=={version('scikit-learn')}", f"mlflow=={version('mlflow')}"]


REQUIREMENTS = _requirements()


def _train():
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(n_samples=500, n_features=20, random_state=0)
    return LogisticRegression(max_iter=500).fit(X, y), X[:5]


def run_side(label: str, url: str, token: str | None, prefix: str, models: int, rounds: int) -> dict:
    import mlflow
    from mlflow import MlflowClient

    _client_env(url, token)
    model, X = _train()
    mlflow.set_experiment(f"bench-{label}")
    steps: dict[str, list[float]] = {"round": [], "log": [], "register": [], "load": []}
    for i in range(rounds):
        t0 = time.perf_counter()
        with mlflow.start_run():
            # Requirements given, as a production pipeline pins them: otherwise MLflow infers them in a
            # subprocess on the client (5-10 s of client CPU that swamps the platform's share of the round).
            info = mlflow.sklearn.log_model(model, name="model", pip_requirements=REQUIREMENTS)
        t1 = time.perf_counter()
        mv = mlflow.register_model(info.model_uri, f"{prefix}roundtrip")
        t2 = time.perf_counter()
        loaded = mlflow.pyfunc.load_model(f"models:/{prefix}roundtrip/{mv.version}")
        loaded.predict(X)
        t3 = time.perf_counter()
        for step, took in (("round", t3 - t0), ("log", t1 - t0), ("register", t2 - t1), ("load", t3 - t2)):
            steps[step].append(took)
        print(label, "round", i, f"{t3 - t0:.2f}s (log {t1 - t0:.2f}s, register {t2 - t1:.3f}s, "
              f"load {t3 - t2:.3f}s)", flush=True)
    client = MlflowClient()
    t0 = time.perf_counter()
    for i in range(models):
        client.create_registered_model(f"{prefix}m{i:04d}")
    create_s = time.perf_counter() - t0
    median = lambda xs, digits=3: round(statistics.median(xs), digits)
    return {"register_and_load_s": median(steps["round"]), "log_s": median(steps["log"]),
            "register_s": median(steps["register"]), "load_s": median(steps["load"]),
            "search_1000_s": median(_search_times(client, models, rounds), 4),
            "create_registered_model_ms": round(create_s / models * 1000, 2)}


def _search_times(client, models: int, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        found = client.search_registered_models(max_results=1000)
        times.append(time.perf_counter() - t0)
    assert len(found) >= min(models, 1000), len(found)
    return times


def search_as_user(url: str, token: str, models: int, rounds: int) -> float:
    from mlflow import MlflowClient

    _client_env(url, token)
    return round(statistics.median(_search_times(MlflowClient(), models, rounds)), 4)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lakeforge-bench-registry-"))
    results = {}
    lf = start_server(work / "lakeforge")
    try:
        with lf.client() as c:
            c.post("/api/2.1/unity-catalog/schemas", json={"name": "bench", "catalog_name": "main"}).raise_for_status()
        results["lakeforge"] = run_side("lakeforge", lf.url, lf.admin_token, "main.bench.", args.models, args.rounds)
        user, token = lf.new_user()
        with lf.client() as c:
            for kind, name, privileges in (("catalog", "main", ["USE_CATALOG"]),
                                           ("schema", "main.bench", ["USE_SCHEMA", "EXECUTE"])):
                c.patch(f"/api/2.1/unity-catalog/permissions/{kind}/{name}",
                        json={"changes": [{"principal": user, "add": privileges}]}).raise_for_status()
        results["lakeforge"]["search_1000_as_user_s"] = search_as_user(lf.url, token, args.models, args.rounds)
    finally:
        lf.stop()
    (work / "mlflow").mkdir()
    proc, url = _start_mlflow(work / "mlflow")
    try:
        results["mlflow server (sqlite)"] = run_side("mlflow", url, None, "", args.models, args.rounds)
    finally:
        proc.terminate()
        proc.wait(30)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "registry.json").write_text(json.dumps({"models": args.models, "rounds": args.rounds, "results": results},
                                                  indent=2))
    print("\n| server | register + load round (s) | of it: log / register / load (s) | "
          "search, 1000 models (s) | same, as a non-admin user (s) | create_registered_model (ms) |\n"
          "|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['register_and_load_s']} | {r['log_s']} / {r['register_s']} / {r['load_s']} | "
              f"{r['search_1000_s']} | {r.get('search_1000_as_user_s', '–')} | {r['create_registered_model_ms']} |")


if __name__ == "__main__":
    main()
