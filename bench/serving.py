"""Serving benchmark: a Lakeforge endpoint (inference table on) vs `mlflow models serve` of the same
model version, same run, same load generator.

    ./dev bench bench/serving.py [--seconds 20]

Model: scikit-learn LogisticRegression on `make_classification(5000, 20 features)`, columns
f0..f19, logged with stock MLflow (signature + input example) and registered in Lakeforge's catalog;
MLflow serves the catalog's own copy of that version (`--env-manager local`, 1 worker, its default).
Load: wrk, keep-alive, single-row `dataframe_split` bodies (the body in ../shared/reference/mlflow.md),
3 s warm-up, then `--seconds` at concurrency 1 and at concurrency 16. wrk shares the 2 cores.
Results: bench/results/serving.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import wrk  # noqa: E402
from lakeforge.catalog.storage import to_path  # noqa: E402
from tests.harness import free_port, start_server  # noqa: E402

FEATURES = [f"f{i}" for i in range(20)]


def _register(server) -> tuple[str, Path, list[float]]:
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(n_samples=5000, n_features=20, random_state=0)
    frame = pd.DataFrame(x, columns=FEATURES)
    model = LogisticRegression(max_iter=1000).fit(frame, y)
    os.environ.update({"MLFLOW_TRACKING_URI": server.url, "MLFLOW_TRACKING_TOKEN": server.admin_token})
    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    with server.client() as c:
        c.post("/api/2.1/unity-catalog/schemas", json={"name": "bench", "catalog_name": "main"})
    mlflow.set_experiment("/bench-serving")
    with mlflow.start_run():
        mlflow.sklearn.log_model(model, name="model", input_example=frame.head(2),
                                 signature=infer_signature(frame, model.predict(frame)),
                                 registered_model_name="main.bench.lr")
    with server.client() as c:
        versions = c.get("/api/2.1/unity-catalog/models/main.bench.lr/versions").json()["model_versions"]
        location = max(versions, key=lambda v: v["version"])["storage_location"]
    return "main.bench.lr", to_path(location), frame.iloc[0].tolist()


def _wait_ok(probe, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not become ready")


def _measure(url: str, token: str, body: str, seconds: int) -> dict:
    wrk.run(url, token, connections=4, seconds=3, method="POST", body=body)  # warm-up
    out = {}
    for c in (1, 16):
        r = wrk.run(url, token, connections=c, seconds=seconds, method="POST", body=body)
        out[f"c{c}"] = {"requests_per_s": round(r.requests_per_s, 1), "p50_ms": round(r.p50_ms, 3),
                        "p99_ms": round(r.p99_ms, 3), "errors": r.errors}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=20)
    args = ap.parse_args()
    wrk.require()
    work = Path(tempfile.mkdtemp(prefix="lakeforge-bench-serving-"))
    results = {}
    lf = start_server(work / "lakeforge")
    mlflow_proc = None
    try:
        model, model_dir, row = _register(lf)
        body = json.dumps({"dataframe_split": {"columns": FEATURES, "data": [row]}})
        with lf.client() as c:
            r = c.post("/api/2.0/serving-endpoints", json={
                "name": "bench", "config": {"served_entities": [{"entity_name": model, "entity_version": "1"}]},
                "ai_gateway": {"inference_table_config": {"catalog_name": "main", "schema_name": "bench",
                                                          "table_name_prefix": "bench", "enabled": True}}})
            r.raise_for_status()
            _wait_ok(lambda: c.get("/api/2.0/serving-endpoints/bench").json()["state"]["config_update"]
                     == "NOT_UPDATING", "the Lakeforge endpoint")
            check = c.post("/serving-endpoints/bench/invocations", content=body,
                           headers={"Content-Type": "application/json"})
            assert check.status_code == 200, check.text
        results["lakeforge"] = _measure(f"{lf.url}/serving-endpoints/bench/invocations", lf.admin_token, body,
                                        args.seconds)
        with lf.client() as c:  # every request reached the inference table (after a flush)
            time.sleep(3)
            n = c.post("/api/2.0/sql/statements", json={"statement": "SELECT count(*) FROM main.bench.bench_payload",
                                                        "wait_timeout": "50s"}).json()
            results["lakeforge"]["inference_table_rows"] = int(n["result"]["data_array"][0][0])

        port = free_port()
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
        mlflow_proc = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m",
                                        str(model_dir), "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                                       env=env, stdout=open(work / "mlflow-serve.log", "wb"), stderr=subprocess.STDOUT)
        murl = f"http://127.0.0.1:{port}"
        _wait_ok(lambda: httpx.get(murl + "/ping", timeout=2).status_code == 200, "mlflow models serve")
        check = httpx.post(murl + "/invocations", content=body, headers={"Content-Type": "application/json"})
        assert check.status_code == 200, check.text
        results["mlflow models serve"] = _measure(murl + "/invocations", "none", body, args.seconds)
    finally:
        if mlflow_proc is not None:
            mlflow_proc.terminate()
            mlflow_proc.wait(30)
        lf.stop()
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "serving.json").write_text(json.dumps({"seconds": args.seconds, "results": results}, indent=2))
    print("\n| server | c=1 p50 ms | c=1 p99 ms | c=1 req/s | c=16 p50 ms | c=16 p99 ms | c=16 req/s | errors |\n"
          "|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        a, b = r["c1"], r["c16"]
        print(f"| {name} | {a['p50_ms']} | {a['p99_ms']} | {a['requests_per_s']} | {b['p50_ms']} | {b['p99_ms']} | "
              f"{b['requests_per_s']} | {a['errors'] + b['errors']} |")
    lf_rps, ml_rps = results["lakeforge"]["c16"]["requests_per_s"], results["mlflow models serve"]["c16"]["requests_per_s"]
    print(f"\nc=16 throughput ratio: {lf_rps / ml_rps:.1f}x; inference table rows: "
          f"{results['lakeforge']['inference_table_rows']}")


if __name__ == "__main__":
    main()
