"""The model worker process: loads one MLflow model and answers scoring requests on a Unix socket.

    python -m lakeforge.serving.worker --model-dir DIR --socket PATH [--max-batch-size 64] [--max-wait-ms 0]

The event loop reads frames, answers PINGs and collects PREDICTs. Scoring takes the first waiting
request plus whatever else is already waiting (dynamic batching) and predicts each group of
compatible requests with one model call. A fast model is scored right in the event loop, since a
hand-off to another thread costs more than its prediction (about 0.8 ms on a busy 2-core box); once
batches take longer than SLOW_BATCH_S, scoring moves to a predictor thread so that PINGs and reads
are not held up behind the model.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import io
import logging
import os
import queue
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from lakeforge.serving.protocol import (HEADER, MAX_FRAME, PING, PONG, PREDICT, RESULT, ProtocolError, decode_header,
                                        decode_predict, encode_frame, encode_result)
from lakeforge.serving.scoring import (CSV, ColumnSchema, Frame, ScoringError, bad_request, column_schema,
                                       encode_predictions, error_body, frame_from_dataframe, frame_from_json,
                                       invalid_value, merge_frames, parse_content_type, parse_csv, parse_json,
                                       split_predictions)

log = logging.getLogger("lakeforge.serving.worker")

LOAD_FAILED = 3
SLOW_BATCH_S = 0.01


@dataclass
class Request:
    writer: asyncio.StreamWriter
    seq: int
    request_id: str
    content_type: str
    body: bytes


class ServedModel:
    """A loaded pyfunc model and how to score batches of requests with it."""

    def __init__(self, pyfunc_model):
        from mlflow.models.utils import _enforce_params_schema
        from mlflow.pyfunc.context import Context, set_prediction_context

        self.pyfunc = pyfunc_model
        meta = pyfunc_model.metadata
        self.input_schema = meta.get_input_schema()
        self.params_schema = meta.get_params_schema()
        self.has_signature = meta.signature is not None
        self.type_hints = bool(getattr(meta, "_is_signature_from_type_hint", lambda: False)())
        # Inputs from type hints or example-derived hints are converted inside pyfunc.predict.
        hinted = self.type_hints or bool(getattr(meta, "_is_type_hint_from_example", lambda: False)())
        self.columns = None if hinted else column_schema(self.input_schema)
        self._predict_fn = getattr(pyfunc_model, "_predict_fn", None) or pyfunc_model._model_impl.predict
        self._array_fn = _sklearn_array_fn(pyfunc_model, self._predict_fn, self.columns)
        params_arg = inspect.signature(self._predict_fn).parameters.get("params")
        self._takes_params = params_arg is not None and params_arg.kind != inspect.Parameter.VAR_KEYWORD
        self._enforce_params = _enforce_params_schema
        self._context, self._set_context = Context, set_prediction_context
        self._warned_params = False
        self._last_error_log = 0.0
        self.stats = {"requests": 0, "predict_calls": 0, "batches": 0, "merged_requests": 0,
                      "max_merged": 0, "busy_s": 0.0}

    @classmethod
    def load(cls, model_dir: str) -> ServedModel:
        import mlflow.pyfunc

        return cls(mlflow.pyfunc.load_model(model_dir))

    # ---- parsing -----------------------------------------------------------------------------------
    def parse(self, content_type: str, body: bytes) -> tuple[Any, dict | None, bool]:
        """(model input, params, whether it may be merged with other requests)."""
        if parse_content_type(content_type) == CSV:
            if self.columns is not None:
                return frame_from_dataframe(self.columns, parse_csv(body)), self._params(None), True
            return self._mlflow_parse(None, body), self._params(None), True
        key, value, params = parse_json(body)
        merge = not params
        params = self._params(params)
        if self.type_hints:
            if key != "inputs":
                raise bad_request("This model's signature comes from Python type hints: send the input as 'inputs'")
            return value, params, False
        if self.columns is not None:
            frame = frame_from_json(self.columns, key, value)
            if frame is not None:
                return frame, params, merge
        return self._mlflow_parse(key, value), params, merge

    def _mlflow_parse(self, key: str | None, value: Any) -> Any:
        """The input exactly as `mlflow models serve` would hand it to pyfunc.predict."""
        from mlflow.exceptions import MlflowException
        from mlflow.pyfunc import scoring_server

        try:
            if key is None:
                return scoring_server.parse_csv_input(io.StringIO(value.decode("utf-8")), self.input_schema)
            return scoring_server.infer_and_parse_data({key: value}, self.input_schema)
        except UnicodeDecodeError as e:
            raise bad_request(f"The CSV body is not valid UTF-8: {e}") from None
        except MlflowException as e:
            raise bad_request(e.message) from None

    def _params(self, params: dict | None) -> dict | None:
        if self.params_schema is None:
            if params and not self._warned_params:
                self._warned_params = True
                log.warning("requests send params but the model's signature declares none; they are ignored")
            return None
        from mlflow.exceptions import MlflowException

        try:
            return self._enforce_params(params, self.params_schema)  # fills in the declared defaults
        except MlflowException as e:
            raise invalid_value(e.message) from None

    # ---- predicting --------------------------------------------------------------------------------
    def predict(self, data: Any, params: dict | None, request_id: str | None = None) -> Any:
        if not isinstance(data, Frame):
            return self.pyfunc.predict(data, params=params)
        if self._array_fn is not None and data.columns == self.columns.names and data.index is None:
            return self._array_fn(data.array())
        # Validated and converted already: call the flavor itself, as pyfunc.predict would after
        # enforcing the schema, inside the same prediction context (tracing reads it).
        df = data.to_dataframe()
        with self._set_context(self._context(request_id=request_id, model_id=self.pyfunc.model_id)):
            return self._predict_fn(df, params=params) if self._takes_params else self._predict_fn(df)

    def score_batch(self, batch: list) -> list[tuple[int, bytes]]:
        """One (HTTP status, JSON body) per request. Requests whose inputs are rows with the same
        columns and no params of their own are predicted with one model call."""
        self.stats["requests"] += len(batch)
        results: list[tuple[int, bytes] | None] = [None] * len(batch)
        parsed: dict[int, tuple[Any, dict | None]] = {}
        groups: dict[tuple, list[int]] = {}
        for i, request in enumerate(batch):
            try:
                data, params, mergeable = self.parse(request.content_type, request.body)
            except ScoringError as e:
                results[i] = (e.status, error_body(e.error_code, e.message))
                continue
            except Exception:
                results[i] = self.internal_error(request.request_id, "parsing the request")
                continue
            parsed[i] = (data, params)
            key = _merge_key(data) if mergeable else None
            groups.setdefault(key if key is not None else ("alone", i), []).append(i)
        for members in groups.values():
            if len(members) == 1 or not self._score_merged(batch, parsed, members, results):
                for i in members:
                    results[i] = self._score_one(batch[i], *parsed[i])
        return results

    def _score_merged(self, batch, parsed, members, results) -> bool:
        inputs = [parsed[i][0] for i in members]
        counts = [len(x) if isinstance(x, pd.DataFrame) else x.rows for x in inputs]
        self.stats["predict_calls"] += 1
        try:
            merged = merge_frames(inputs) if isinstance(inputs[0], Frame) else pd.concat(inputs)
            predictions = self.predict(merged, parsed[members[0]][1])
        except Exception as e:  # one bad request must not fail the others: each alone, below
            log.debug("a merged batch of %d requests failed (%s); predicting them one by one", len(members), e)
            return False
        pieces = split_predictions(predictions, counts)
        if pieces is None:
            return False
        for i, piece in zip(members, pieces):
            results[i] = self._encode(batch[i].request_id, piece)
        self.stats["batches"] += 1
        self.stats["merged_requests"] += len(members)
        self.stats["max_merged"] = max(self.stats["max_merged"], len(members))
        return True

    def _score_one(self, request, data: Any, params: dict | None) -> tuple[int, bytes]:
        from mlflow.exceptions import MlflowException

        self.stats["predict_calls"] += 1
        try:
            predictions = self.predict(data, params, request.request_id)
        except MlflowException as e:
            if e.message.startswith("Failed to enforce schema"):
                reason = e.message.rsplit("Error: ", 1)[-1]
                return 400, error_body("INVALID_PARAMETER_VALUE", f"{reason} (request {request.request_id})")
            return self._model_error(request.request_id, e)
        except Exception as e:
            return self._model_error(request.request_id, e)
        return self._encode(request.request_id, predictions)

    def _model_error(self, request_id: str, e: Exception) -> tuple[int, bytes]:
        now = time.monotonic()
        if now - self._last_error_log > 10.0:  # a model failing on every request must not flood the log
            self._last_error_log = now
            log.warning("the model raised on request %s", request_id, exc_info=e)
        message = str(e)[:4000]
        return 400, error_body("MODEL_ERROR", f"Model raised {type(e).__name__}: {message} (request {request_id})")

    def _encode(self, request_id: str, predictions: Any) -> tuple[int, bytes]:
        try:
            return 200, encode_predictions(predictions)
        except Exception as e:
            return 400, error_body("MODEL_ERROR", f"Model returned output that cannot be encoded as JSON: "
                                                  f"{type(e).__name__}: {e} (request {request_id})")

    def internal_error(self, request_id: str, doing: str = "scoring the request") -> tuple[int, bytes]:
        log.exception("internal error %s (request %s)", doing, request_id)
        return 500, error_body("INTERNAL_ERROR", f"Internal error in the model worker while {doing} "
                                                 f"(request {request_id})")


# Estimators whose predict turns a DataFrame into a numpy array before anything else happens.
# Column-aware ones (sklearn.compose, FunctionTransformer, pandas set_output) are not among them.
_ARRAY_ESTIMATOR_MODULES = tuple(f"sklearn.{m}" for m in (
    "linear_model", "ensemble", "tree", "svm", "neighbors", "naive_bayes", "discriminant_analysis",
    "neural_network", "kernel_ridge", "gaussian_process", "preprocessing._data", "impute",
    "decomposition", "pipeline"))


def _sklearn_array_fn(pyfunc_model, predict_fn, columns: ColumnSchema | None):
    """The scikit-learn method to call with the frame's numpy block, or None.

    A plain sklearn estimator fitted on exactly the signature's columns, in that order, does with
    such a DataFrame nothing but check its column names (done: they are the signature's) and take
    its numpy values; that inspection costs about 1 ms a call, several times the prediction."""
    raw = getattr(pyfunc_model._model_impl, "sklearn_model", None)
    if raw is None or columns is None or columns.uniform is None or not all(columns.required):
        return None
    names = getattr(raw, "feature_names_in_", None)
    if names is None or tuple(map(str, names)) != columns.names:
        return None
    try:
        estimators = [raw] + [v for v in raw.get_params(deep=True).values() if hasattr(v, "fit")]
    except Exception:  # a custom estimator with its own idea of get_params
        return None
    for est in estimators:
        if (not type(est).__module__.startswith(_ARRAY_ESTIMATOR_MODULES)
                or getattr(est, "_sklearn_output_config", None)):
            return None
    method = getattr(raw, getattr(predict_fn, "__name__", ""), None)
    if method is None:
        return None
    # What sklearn says when handed the values without the names we already checked.
    warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
    return method


def _merge_key(data: Any) -> tuple | None:
    if isinstance(data, Frame):
        return ("frame", data.columns)
    if isinstance(data, pd.DataFrame):
        return ("dataframe", tuple(data.columns), tuple(map(str, data.dtypes)))
    return None


class WorkerServer:
    """The socket side of the worker: reads requests, batches them, scores them in the loop or in
    the predictor thread, writes the answers."""

    def __init__(self, model: ServedModel, socket_path: str, model_dir: str, max_batch_size: int = 64,
                 max_wait_ms: float = 0.0):
        self.model = model
        self.socket_path = socket_path
        self.model_dir = model_dir
        self.max_batch_size = max(1, max_batch_size)
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self._queue: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
        self._ready: list[Request] = []  # waiting to be scored in the loop
        self._scheduled: asyncio.Handle | None = None
        self._threaded = 0  # handed to the predictor thread, not yet answered
        self._batch_s = 0.0  # moving average of a batch's scoring time
        self._writers: set[asyncio.StreamWriter] = set()
        self._inflight = 0
        self._stopping = False
        self._idle = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- event loop side ---------------------------------------------------------------------------
    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        predictor = threading.Thread(target=self._predict_forever, name="lakeforge-predictor", daemon=True)
        predictor.start()
        try:
            os.unlink(self.socket_path)  # a stale socket from an earlier worker
        except FileNotFoundError:
            pass
        server = await asyncio.start_unix_server(self._serve, path=self.socket_path)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, stop.set)
        watch = asyncio.create_task(self._watch_parent(stop))
        log.info("lakeforge-worker ready pid=%d", os.getpid())
        await stop.wait()

        self._stopping = True
        server.close()  # stop accepting; requests already read are answered before exiting
        watch.cancel()
        if self._inflight:
            self._idle.clear()
            await self._idle.wait()
        for writer in list(self._writers):
            writer.close()
        self._queue.put(None)
        predictor.join(timeout=5)
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        log.info("lakeforge-worker stopped pid=%d", os.getpid())

    async def _watch_parent(self, stop: asyncio.Event) -> None:
        # The server starts workers in their own session, so nothing else stops an orphaned worker.
        parent = os.getppid()
        while os.getppid() == parent:
            await asyncio.sleep(1.0)
        log.warning("the serving process %d is gone; stopping", parent)
        stop.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                length, seq, kind = decode_header(await reader.readexactly(HEADER.size))
                payload = await reader.readexactly(length) if length else b""
                if kind == PREDICT and self._stopping:
                    writer.write(encode_frame(seq, RESULT, encode_result(503, error_body(
                        "TEMPORARILY_UNAVAILABLE", "The model worker is shutting down; retry"))))
                elif kind == PREDICT:
                    request = Request(writer, seq, *decode_predict(payload))
                    self._inflight += 1
                    self._submit(request)
                elif kind == PING:
                    writer.write(encode_frame(seq, PONG, orjson.dumps(self.pong())))
                else:
                    raise ProtocolError(f"unexpected frame kind {kind}")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        except ProtocolError as e:
            log.warning("closing a connection that broke the protocol: %s", e)
        finally:
            self._writers.discard(writer)
            writer.close()

    def _submit(self, request: Request) -> None:
        if self._threaded or (self._batch_s > SLOW_BATCH_S and not self._ready):
            self._threaded += 1  # and stay in the thread until it has answered all it holds
            self._queue.put(request)
            return
        self._ready.append(request)
        if len(self._ready) >= self.max_batch_size:
            if self._scheduled is not None:
                self._scheduled.cancel()
            self._scheduled = self._loop.call_soon(self._score_ready)
        elif self._scheduled is None:
            # Runs after the frames already received are read, so those join the batch.
            self._scheduled = (self._loop.call_later(self.max_wait, self._score_ready) if self.max_wait
                               else self._loop.call_soon(self._score_ready))

    def _score_ready(self) -> None:
        self._scheduled = None
        batch, self._ready = self._ready[:self.max_batch_size], self._ready[self.max_batch_size:]
        if self._ready:
            self._scheduled = self._loop.call_soon(self._score_ready)
        if batch:
            self._deliver(batch, self._score(batch))

    def _score(self, batch: list[Request]) -> list[tuple[int, bytes]]:
        started = time.perf_counter()
        try:
            results = self.model.score_batch(batch)
        except Exception:  # score_batch answers every request itself; this is a last resort
            log.exception("scoring a batch of %d requests failed", len(batch))
            results = [self.model.internal_error(r.request_id) for r in batch]
        elapsed = time.perf_counter() - started
        self.model.stats["busy_s"] += elapsed
        self._batch_s = 0.8 * self._batch_s + 0.2 * elapsed
        return results

    def pong(self) -> dict:
        return {"pid": os.getpid(), "model_dir": self.model_dir, "signature": self.model.has_signature,
                "fast_path": self.model.columns is not None, "max_batch_size": self.max_batch_size,
                "max_wait_ms": self.max_wait * 1000.0, **self.model.stats}

    def _deliver(self, batch: list[Request], results: list[tuple[int, bytes]], threaded: bool = False) -> None:
        # One write per connection per batch: fewer syscalls when a batch came over one socket.
        frames: dict[asyncio.StreamWriter, list[bytes]] = {}
        for request, (status, body) in zip(batch, results):
            if len(body) > MAX_FRAME - 2:
                status, body = 500, orjson.dumps({
                    "error_code": "INTERNAL_ERROR",
                    "message": f"The response of {len(body)} bytes exceeds the worker's {MAX_FRAME} byte "
                               f"limit (request {request.request_id})"})
            frames.setdefault(request.writer, []).append(
                encode_frame(request.seq, RESULT, encode_result(status, body)))
        for writer, chunks in frames.items():
            if not writer.is_closing():
                writer.write(b"".join(chunks))
        self._inflight -= len(batch)
        if threaded:
            self._threaded -= len(batch)
        if self._inflight == 0:
            self._idle.set()

    # ---- predictor thread --------------------------------------------------------------------------
    def _predict_forever(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch, stopping = self._gather(first)
            self._loop.call_soon_threadsafe(self._deliver, batch, self._score(batch), True)

    def _gather(self, first: Request) -> tuple[list[Request], bool]:
        """`first` plus what is already queued, up to the batch size, waiting up to max_wait for
        more; the flag says the stop sentinel was seen."""
        batch, deadline = [first], None
        while len(batch) < self.max_batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                if self.max_wait <= 0:
                    break
                deadline = deadline or time.monotonic() + self.max_wait
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # fewer microseconds per frame; optional inside a model's own environment
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


_stop_requested = False


def _stop_while_loading(signum, frame) -> None:
    """SIGTERM before the model loaded: unwind and exit 0. A second SIGTERM ends the process at
    once, and a load stuck in native code (which never runs this handler) is killed by the server
    after its grace."""
    global _stop_requested
    _stop_requested = True
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lakeforge.serving.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", required=True, help="local MLflow model directory (holds MLmodel)")
    parser.add_argument("--socket", required=True, help="Unix socket path to listen on once the model loaded")
    parser.add_argument("--max-batch-size", type=int, default=64, help="most requests merged into one predict")
    parser.add_argument("--max-wait-ms", type=float, default=0.0,
                        help="how long a batch waits for more requests (0: take only what is already queued)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Until the loop installs its handler, SIGTERM means "stop now, cleanly".
    signal.signal(signal.SIGTERM, _stop_while_loading)
    os.environ.setdefault("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "true")  # what `mlflow models serve` sets
    model_dir = str(Path(args.model_dir).resolve())
    try:
        model = ServedModel.load(model_dir)
        if _stop_requested:  # the model's loader swallowed the SystemExit: stop now, without serving
            raise SystemExit(0)
    except Exception as e:
        log.exception("loading the model from %s failed", model_dir)
        # The server reports this last line as the reason; keep it on one line.
        message = " ".join(str(e).split())[:2000]
        log.error("lakeforge-worker: failed to load model: %s: %s", type(e).__name__, message)
        logging.shutdown()
        os._exit(LOAD_FAILED)  # no atexit handler may print after that line
    server = WorkerServer(model, args.socket, model_dir, args.max_batch_size, args.max_wait_ms)
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        runner.run(server.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
