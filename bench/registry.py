"""Registry benchmark: Lakeforge (registry in the catalog) vs stock `mlflow server` (SQLite backend),
same run, same client code (stock MLflow).

    ./dev bench bench/registry.py [--models 1000] [--rounds 5]

1. register-and-load: log a scikit-learn model in a run, `mlflow.register_model(...)`, then
   `mlflow.pyfunc.load_model("models:/<name>/<version>")`; median wall time of a round.
2. search: `MlflowClient.search_registered_models(max_results=1000)` with `--models` registered
   models present; median wall time of a call.
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
    round_times = []
    for i in range(rounds):
        t0 = time.perf_counter()
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(model, name="model")
        mv = mlflow.register_model(info.model_uri, f"{prefix}roundtrip")
        loaded = mlflow.pyfunc.load_model(f"models:/{prefix}roundtrip/{mv.version}")
        loaded.predict(X)
        round_times.append(time.perf_counter() - t0)
        print(label, "round", i, f"{round_times[-1]:.2f}s", flush=True)
    client = MlflowClient()
    t0 = time.perf_counter()
    for i in range(models):
        client.create_registered_model(f"{prefix}m{i:04d}")
    create_s = time.perf_counter() - t0
    search_times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        found = client.search_registered_models(max_results=1000)
        search_times.append(time.perf_counter() - t0)
    assert len(found) >= min(models, 1000), len(found)
    return {"register_and_load_s": round(statistics.median(round_times), 3),
            "search_1000_s": round(statistics.median(search_times), 4),
            "create_registered_model_ms": round(create_s / models * 1000, 2)}


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
    print("\n| server | register + load (median s) | search_registered_models, 1000 models (median s) | "
          "create_registered_model (ms) |\n|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['register_and_load_s']} | {r['search_1000_s']} | {r['create_registered_model_ms']} |")


if __name__ == "__main__":
    main()
