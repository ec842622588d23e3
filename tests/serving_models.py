"""Registered models for the serving tests, logged with stock MLflow into a real server."""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass

import numpy as np

from tests.harness import Server

UC = "/api/2.1/unity-catalog"
FEATURES = [f"f{i}" for i in range(20)]


@dataclass
class Registered:
    schema: str  # catalog.schema
    model: str  # catalog.schema.churn (versions 1 and 2 differ)
    flaky: str  # catalog.schema.flaky: a pyfunc model that raises on f0 == -999
    x: object  # a feature DataFrame
    expected: dict  # version -> predictions on x


def _frame(n: int, seed: int):
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=n, n_features=20, random_state=seed)
    return pd.DataFrame(x, columns=FEATURES), y


def register_models(server: Server, versions: int = 2, flaky: bool = True) -> Registered:
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    schema = _new_schema(server)
    catalog = schema.split(".")[0]
    with _mlflow_against(server):
        mlflow.set_experiment(f"/serving-{catalog}")
        x, y = _frame(500, 0)
        expected = {}
        for version, c_value in ((1, 1.0), (2, 0.001))[:versions]:
            model = LogisticRegression(C=c_value, max_iter=1000).fit(x, y if version == 1 else 1 - y)
            with mlflow.start_run():
                mlflow.sklearn.log_model(model, name="model", signature=infer_signature(x, model.predict(x)),
                                         input_example=x.head(2), registered_model_name=f"{schema}.churn")
            expected[version] = model.predict(x).tolist()
        if not flaky:
            return Registered(schema=schema, model=f"{schema}.churn", flaky="", x=x, expected=expected)
        with mlflow.start_run():
            mlflow.pyfunc.log_model(name="model", python_model=_flaky_model(),
                                    signature=infer_signature(x.head(5), np.zeros(5)),
                                    registered_model_name=f"{schema}.flaky")
    return Registered(schema=schema, model=f"{schema}.churn", flaky=f"{schema}.flaky", x=x, expected=expected)


def register_slow_model(server: Server, load_seconds: float, ignore_sigterm: bool = False) -> str:
    """A pyfunc model whose load takes `load_seconds` (its worker stays in loading that long); it
    writes SLOW_LOAD_MARKER to the worker's log when the load begins. With `ignore_sigterm` the load
    ignores SIGTERM, like a load stuck in native code. Returns its full name."""
    import mlflow
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    schema = _new_schema(server)
    x, _ = _frame(5, 0)
    with _mlflow_against(server):
        mlflow.set_experiment(f"/serving-{schema.split('.')[0]}")
        with mlflow.start_run():
            # Explicit requirements: inferring them would load (and so wait for) the model.
            mlflow.pyfunc.log_model(name="model", python_model=_slow_model(load_seconds, ignore_sigterm),
                                    signature=infer_signature(x, np.zeros(5)), pip_requirements=["mlflow"],
                                    registered_model_name=f"{schema}.slow")
    return f"{schema}.slow"


SLOW_LOAD_MARKER = "slow model: loading"


def _new_schema(server: Server) -> str:
    catalog = f"srv_{uuid.uuid4().hex[:8]}"
    with server.client() as c:
        c.post(f"{UC}/catalogs", json={"name": catalog}).raise_for_status()
        c.post(f"{UC}/schemas", json={"name": "ml", "catalog_name": catalog}).raise_for_status()
    return f"{catalog}.ml"


@contextlib.contextmanager
def _mlflow_against(server: Server):
    """Stock MLflow's tracking and registry pointed at the server, as the admin, for the block."""
    import mlflow

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_TOKEN")}
    os.environ.update({"MLFLOW_TRACKING_URI": server.url, "MLFLOW_REGISTRY_URI": server.url,
                       "MLFLOW_TRACKING_TOKEN": server.admin_token})
    try:
        mlflow.set_tracking_uri(server.url)
        mlflow.set_registry_uri(server.url)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)


def _slow_model(load_seconds: float, ignore_sigterm: bool):
    import mlflow.pyfunc

    marker = SLOW_LOAD_MARKER  # the class is pickled by value: no reference back to this module

    class SlowModel(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            import signal
            import sys
            import time

            if ignore_sigterm:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print(marker, file=sys.stderr, flush=True)
            time.sleep(load_seconds)

        def predict(self, context, model_input, params=None):
            return model_input["f0"].to_numpy()

    return SlowModel()


def _flaky_model():
    import mlflow.pyfunc

    class FlakyModel(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            if (model_input["f0"] == -999).any():
                raise ValueError("f0 must not be -999")
            return model_input["f1"].to_numpy() * 2

    return FlakyModel()


def split_body(x) -> dict:
    return {"dataframe_split": {"columns": list(x.columns), "data": x.to_numpy().tolist()}}
