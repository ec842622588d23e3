"""Model workers as real processes: the scoring protocol, batching, failures, signals."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from lakeforge.serving.protocol import (HEADER, MAX_FRAME, PREDICT, RESULT, decode_header, decode_predict,
                                        decode_result, encode_frame, encode_predict, encode_result)
from lakeforge.serving.worker_client import ModelWorkerClient, WorkerUnavailable

COLUMNS = [f"f{i}" for i in range(20)]
JSON = "application/json"
LOAD_TIMEOUT = 240  # importing mlflow takes 10-30 s on a busy 2-core box

# A model that misbehaves on purpose: x == 13 raises, x == 99 takes a while.
MISBEHAVING_MODEL = textwrap.dedent("""
    import time
    import mlflow

    class Misbehaving(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            x = model_input["x"].to_numpy()
            if (x == 13).any():
                raise ValueError("unlucky number 13")
            if (x == 99).any():
                time.sleep(2.0)
            return x * 2

    mlflow.models.set_model(Misbehaving())
""")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("models")
    X, y = make_classification(n_samples=400, n_features=20, random_state=0)
    X = pd.DataFrame(X, columns=COLUMNS)
    lr = LogisticRegression(max_iter=1000).fit(X, y)
    signature = infer_signature(X, lr.predict(X))
    mlflow.sklearn.save_model(lr, root / "lr", signature=signature, input_example=X.head(2))
    mlflow.sklearn.save_model(lr, root / "lr_proba", signature=infer_signature(X, lr.predict_proba(X)),
                              pyfunc_predict_fn="predict_proba")
    code = root / "misbehaving.py"
    code.write_text(MISBEHAVING_MODEL)
    x = pd.DataFrame({"x": [1.0, 2.0]})
    mlflow.pyfunc.save_model(root / "misbehaving", python_model=str(code),
                             signature=infer_signature(x, x["x"].to_numpy() * 2))
    broken = root / "broken"
    broken.mkdir()
    for f in (root / "lr").iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.skops").write_bytes(b"this is not a model")
    paths = {k: str(root / k) for k in ("lr", "lr_proba", "misbehaving", "broken")}
    return {"root": root, "X": X, "estimator": lr, **paths}


class Worker:
    def __init__(self, model_dir: str, socket: str, *extra: str):
        self.socket = socket
        self.stderr = Path(socket).with_suffix(".log")
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lakeforge.serving.worker", "--model-dir", model_dir, "--socket", socket,
                 *extra], stdin=subprocess.DEVNULL, stdout=err, stderr=err)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def workers(models, tmp_path_factory):
    """Every worker the module needs, started at once: each spends most of its start importing mlflow."""
    # Unix socket paths are limited to ~100 bytes, too short for pytest's tmp dirs.
    sockets = Path(f"/tmp/lfw-{os.getpid()}")
    sockets.mkdir(exist_ok=True)
    ws = {
        "lr": Worker(models["lr"], str(sockets / "lr.sock")),
        "misbehaving": Worker(models["misbehaving"], str(sockets / "misbehaving.sock")),
        "victim": Worker(models["misbehaving"], str(sockets / "victim.sock")),
        "terminated": Worker(models["misbehaving"], str(sockets / "terminated.sock")),
        "broken": Worker(models["broken"], str(sockets / "broken.sock")),
    }
    yield ws
    for w in ws.values():
        w.stop()
    for f in sockets.iterdir():
        f.unlink()
    sockets.rmdir()


def run(coro):
    return asyncio.run(coro)


async def connected(worker: Worker) -> ModelWorkerClient:
    client = ModelWorkerClient(worker.socket)
    await client.connect(LOAD_TIMEOUT)
    return client


async def score(worker: Worker, *requests: tuple[str, bytes]) -> list[tuple[int, dict]]:
    client = await connected(worker)
    try:
        answers = await asyncio.gather(*(client.predict(f"req-{i}", ct, body) for i, (ct, body) in enumerate(requests)))
    finally:
        await client.close()
    return [(status, orjson.loads(body)) for status, body in answers]


def expected(models, rows: pd.DataFrame) -> list:
    import mlflow.pyfunc

    return orjson.loads(orjson.dumps(mlflow.pyfunc.load_model(models["lr"]).predict(rows),
                                     option=orjson.OPT_SERIALIZE_NUMPY))


# ---- framing ----------------------------------------------------------------------------------------
def test_frames_round_trip():
    frame = encode_frame(7, PREDICT, encode_predict("r-1", JSON, b'{"inputs": [1]}'))
    length, seq, kind = decode_header(frame[:HEADER.size])
    assert (seq, kind, length) == (7, PREDICT, len(frame) - HEADER.size)
    assert decode_predict(frame[HEADER.size:]) == ("r-1", JSON, b'{"inputs": [1]}')
    assert decode_result(encode_result(415, b"{}")) == (415, b"{}")
    assert HEADER.format == "!IQB" and MAX_FRAME == 64 * 1024 * 1024
    assert RESULT == 4


# ---- the scoring protocol ------------------------------------------------------------------------
def test_every_input_format_predicts_what_pyfunc_predicts(models, workers):
    rows = models["X"].iloc[:5]
    want = expected(models, rows)
    split = {"columns": COLUMNS, "data": rows.to_numpy().tolist()}
    records = rows.to_dict(orient="records")
    bodies = [
        (JSON, orjson.dumps({"dataframe_split": split})),
        (JSON, orjson.dumps({"dataframe_records": records})),
        (JSON, orjson.dumps({"instances": records})),
        (JSON, orjson.dumps({"inputs": {c: rows[c].tolist() for c in COLUMNS}})),
        (JSON, orjson.dumps({"dataframe_split": split, "client_request_id": "abc", "usage_context": {"a": 1}})),
        ("application/json; charset=utf-8", orjson.dumps({"dataframe_split": split})),
        ("text/csv", rows.to_csv(index=False).encode()),
    ]
    for status, body in run(score(workers["lr"], *bodies)):
        assert status == 200, body
        assert body == {"predictions": want}


def test_columns_are_reordered_converted_and_extras_dropped(models, workers):
    rows = models["X"].iloc[:3]
    ints = rows.round().astype(int)
    shuffled = rows[COLUMNS[::-1]].assign(extra="ignored")
    answers = run(score(
        workers["lr"],
        (JSON, orjson.dumps({"dataframe_split": {"columns": list(shuffled.columns),
                                                 "data": shuffled.to_numpy().tolist()}})),
        (JSON, orjson.dumps({"dataframe_split": {"columns": COLUMNS, "data": ints.to_numpy().tolist()}})),
    ))
    assert answers[0] == (200, {"predictions": expected(models, rows)})
    assert answers[1] == (200, {"predictions": expected(models, ints.astype(float))})


def test_params_are_ignored_when_the_model_declares_none(models, workers):
    rows = models["X"].iloc[:2]
    body = {"dataframe_split": {"columns": COLUMNS, "data": rows.to_numpy().tolist()}, "params": {"temperature": 0.5}}
    assert run(score(workers["lr"], (JSON, orjson.dumps(body)))) == [(200, {"predictions": expected(models, rows)})]


def test_bad_requests_say_what_is_wrong(models, workers):
    row = models["X"].iloc[0]
    missing = {"dataframe_records": [row.drop("f3").to_dict()]}
    mistyped = {"dataframe_split": {"columns": COLUMNS, "data": [[*row.tolist()[:5], "abc", *row.tolist()[6:]]]}}
    answers = run(score(
        workers["lr"],
        (JSON, orjson.dumps(missing)),
        (JSON, orjson.dumps(mistyped)),
        ("text/plain", b"1,2,3"),
        (JSON, b'{"dataframe_split": {"columns": ['),
        (JSON, orjson.dumps({"inputs": {}, "instances": []})),
        (JSON, orjson.dumps({"params": {}})),
        (JSON, orjson.dumps({"dataframe_split": {"columns": COLUMNS, "data": [[1.0, 2.0]]}})),
    ))
    (s1, b1), (s2, b2), (s3, b3), (s4, b4), (s5, b5), (s6, b6), (s7, b7) = answers
    assert s1 == 400 and b1["error_code"] == "INVALID_PARAMETER_VALUE" and "'f3'" in b1["message"]
    assert b1["message"] == "Missing column 'f3' required by the model signature"
    assert s2 == 400 and "'f5'" in b2["message"] and "string" in b2["message"] and "double" in b2["message"]
    # 400 rather than MLflow's 415: Lakeforge answers every malformed request alike (commit b59580a).
    assert s3 == 400 and b3["error_code"] == "BAD_REQUEST" and "text/plain" in b3["message"]
    assert s4 == 400 and b4["error_code"] == "BAD_REQUEST" and "Malformed JSON" in b4["message"]
    assert s5 == 400 and b5["error_code"] == "BAD_REQUEST" and "exactly one of" in b5["message"]
    assert s6 == 400 and "exactly one of" in b6["message"]
    assert s7 == 400 and b7["error_code"] == "BAD_REQUEST" and "20 values" in b7["message"]


def x_body(x: float) -> tuple[str, bytes]:
    return JSON, orjson.dumps({"dataframe_split": {"columns": ["x"], "data": [[x]]}})


def test_a_model_that_raises_answers_400_and_the_worker_stays_up(workers):
    body = x_body
    (status, err), = run(score(workers["misbehaving"], body(13.0)))
    assert status == 400 and err["error_code"] == "MODEL_ERROR"
    assert err["message"] == "Model raised ValueError: unlucky number 13 (request req-0)"
    # The bad request travels in a batch with good ones: only it fails.
    answers = run(score(workers["misbehaving"], *[body(x) for x in (1.0, 13.0, 3.0, 4.0)]))
    assert [s for s, _ in answers] == [200, 400, 200, 200]
    assert [b.get("predictions") for _, b in answers] == [[2.0], None, [6.0], [8.0]]


def test_a_slow_model_predicts_in_a_thread_and_still_answers_pings(workers):
    async def main():
        client = await connected(workers["misbehaving"])
        first = await client.predict("s1", *x_body(99.0))  # 2 s: scoring moves to the predictor thread
        slow = asyncio.create_task(client.predict("s2", *x_body(99.0)))
        await asyncio.sleep(0.2)
        pong = await client.ping(timeout=1.5)  # answered while the model is busy
        fast = await asyncio.gather(*(client.predict(f"f{i}", *x_body(float(i))) for i in range(5)))
        second = await slow
        await client.close()
        return first, second, pong, fast

    first, second, pong, fast = run(main())
    assert first == second == (200, b'{"predictions":[198.0]}')
    assert pong["pid"] == workers["misbehaving"].proc.pid
    assert [orjson.loads(b)["predictions"] for _, b in fast] == [[2.0 * i] for i in range(5)]


# ---- batching ---------------------------------------------------------------------------------------
def test_concurrent_requests_are_merged_and_each_gets_its_own_rows(models, workers):
    X = models["X"].iloc[:200]
    want = models["estimator"].predict(X).tolist()

    async def main():
        client = await connected(workers["lr"])
        before = await client.ping()
        answers = await asyncio.gather(*(
            client.predict(f"r{i}", JSON, orjson.dumps({"dataframe_split": {"columns": COLUMNS,
                                                                            "data": [X.iloc[i].tolist()]}}))
            for i in range(len(X))))
        after = await client.ping()
        await client.close()
        return before, answers, after

    before, answers, after = run(main())
    assert [orjson.loads(b)["predictions"] for _, b in answers] == [[p] for p in want]
    assert after["batches"] > before["batches"]
    assert after["merged_requests"] - before["merged_requests"] >= 2
    assert after["pid"] == workers["lr"].proc.pid and after["signature"] is True


# ---- failures and signals ---------------------------------------------------------------------------
def test_killed_worker_fails_pending_calls_at_once(workers):
    victim = workers["victim"]

    async def main():
        client = await connected(victim)
        slow = orjson.dumps({"dataframe_split": {"columns": ["x"], "data": [[99.0]]}})
        calls = [asyncio.create_task(client.predict(f"r{i}", JSON, slow)) for i in range(5)]
        await asyncio.sleep(0.3)
        os.kill(victim.proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        results = await asyncio.gather(*calls, return_exceptions=True)
        elapsed = time.monotonic() - killed
        with pytest.raises(WorkerUnavailable):
            await client.predict("late", JSON, slow)
        return results, elapsed, client.connected

    results, elapsed, still_connected = run(main())
    assert all(isinstance(r, WorkerUnavailable) for r in results), results
    assert elapsed < 1.0 and not still_connected
    assert victim.proc.wait(10) == -signal.SIGKILL


def test_sigterm_finishes_in_flight_requests_then_exits_0(workers):
    worker = workers["terminated"]

    async def main():
        client = await connected(worker)
        slow = orjson.dumps({"dataframe_split": {"columns": ["x"], "data": [[99.0]]}})
        call = asyncio.create_task(client.predict("r", JSON, slow))
        await asyncio.sleep(0.3)
        worker.proc.send_signal(signal.SIGTERM)
        return await call

    assert run(main()) == (200, b'{"predictions":[198.0]}')
    assert worker.proc.wait(30) == 0
    assert not os.path.exists(worker.socket)


def test_a_model_that_does_not_load_exits_3_and_says_why(workers):
    broken = workers["broken"]
    assert broken.proc.wait(LOAD_TIMEOUT) == 3
    last = broken.stderr.read_text().strip().splitlines()[-1]
    assert "lakeforge-worker: failed to load model: " in last
    assert not os.path.exists(broken.socket)

    async def main():
        with pytest.raises(WorkerUnavailable):
            await ModelWorkerClient(broken.socket).connect(0.3)

    run(main())


# ---- the fast path predicts what pyfunc.predict predicts -------------------------------------------
def test_fast_path_matches_pyfunc_predict_exactly(models):
    import mlflow.pyfunc

    from lakeforge.serving.worker import Request, ServedModel

    X = models["X"]
    for name, dataframe_path in (("lr", False), ("lr_proba", False), ("lr_proba", True)):
        pyfunc_model = mlflow.pyfunc.load_model(models[name])
        served = ServedModel(pyfunc_model)
        assert served.columns is not None
        if dataframe_path:
            served._array_fn = None  # the path of flavors other than plain scikit-learn estimators
        for rows in (X.iloc[:1], X.iloc[10:17], X.iloc[:100]):
            body = orjson.dumps({"dataframe_split": {"columns": COLUMNS, "data": rows.to_numpy().tolist()}})
            (status, answer), = served.score_batch([Request(None, 1, "r", JSON, body)])
            assert status == 200
            want = pyfunc_model.predict(rows)
            got = np.asarray(orjson.loads(answer)["predictions"])
            # Bit for bit: probabilities too, so the fast path must not even change the BLAS layout.
            assert got.dtype == want.dtype and np.array_equal(got, want), (name, dataframe_path)


# ---- per-model environments -------------------------------------------------------------------------
def test_a_model_environment_is_built_once_and_serves(models, tmp_path):
    from lakeforge.errors import FailedPrecondition
    from lakeforge.serving.environments import ensure_environment

    cache = tmp_path / "envs"
    python = ensure_environment(Path(models["lr"]), cache)
    env = python.parent.parent
    assert env.parent == cache and len(env.name) == 64 and python.exists()
    assert sorted(p.name for p in cache.iterdir()) == [env.name, f"{env.name}.lock"]  # no build left over
    inode = env.stat().st_ino
    assert ensure_environment(Path(models["lr"]), cache) == python and env.stat().st_ino == inode

    socket = f"/tmp/lfw-env-{os.getpid()}.sock"
    err = tmp_path / "worker.log"
    with open(err, "wb") as out:
        proc = subprocess.Popen([str(python), "-m", "lakeforge.serving.worker", "--model-dir", models["lr"],
                                 "--socket", socket], stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=tmp_path)
    try:
        rows = models["X"].iloc[:3]
        body = orjson.dumps({"dataframe_split": {"columns": COLUMNS, "data": rows.to_numpy().tolist()}})

        async def main():
            client = ModelWorkerClient(socket)
            pong = await client.connect(LOAD_TIMEOUT)
            answer = await client.predict("r", JSON, body)
            await client.close()
            return pong, answer

        pong, (status, answer) = run(main())
        assert pong["pid"] == proc.pid, err.read_text()[-2000:]
        assert status == 200 and orjson.loads(answer) == {"predictions": expected(models, rows)}
    finally:
        proc.terminate()
        assert proc.wait(60) == 0

    # A requirement nobody can satisfy: uv's own words come back, and nothing half-built stays.
    impossible = tmp_path / "impossible"
    impossible.mkdir()
    (impossible / "requirements.txt").write_text("numpy==0.0.1\n")
    with pytest.raises(FailedPrecondition) as e:
        ensure_environment(impossible, cache)
    assert "numpy" in e.value.message and "installing the model's requirements" in e.value.message
    assert not [p for p in cache.iterdir() if p.name.startswith(".build-")]


def test_fast_path_takes_numpy_only_for_estimators_that_ignore_column_names(models, tmp_path):
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from lakeforge.serving.worker import Request, ServedModel

    X, y = models["X"], models["estimator"].predict(models["X"])
    scaled = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    by_name = make_pipeline(ColumnTransformer([("s", StandardScaler(), COLUMNS[::-1])]), LogisticRegression()).fit(X, y)
    rows = X.iloc[20:31]
    body = orjson.dumps({"dataframe_records": rows.to_dict(orient="records")})
    for name, estimator, shortcut in (("scaled", scaled, True), ("by_name", by_name, False)):
        mlflow.sklearn.save_model(estimator, tmp_path / name, signature=infer_signature(X, y),
                                  pyfunc_predict_fn="predict_proba")
        pyfunc_model = mlflow.pyfunc.load_model(str(tmp_path / name))
        served = ServedModel(pyfunc_model)
        assert (served._array_fn is not None) == shortcut, name
        (status, answer), = served.score_batch([Request(None, 1, "r", JSON, body)])
        assert status == 200 and np.array_equal(orjson.loads(answer)["predictions"], pyfunc_model.predict(rows)), name
