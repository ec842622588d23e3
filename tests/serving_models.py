"""Registered models for the serving tests, logged with stock MLflow into a real server."""

from __future__ import annotations

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

    catalog = f"srv_{uuid.uuid4().hex[:8]}"
    with server.client() as c:
        c.post(f"{UC}/catalogs", json={"name": catalog}).raise_for_status()
        c.post(f"{UC}/schemas", json={"name": "ml", "catalog_name": catalog}).raise_for_status()
    schema = f"{catalog}.ml"
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_TOKEN")}
    os.environ.update({"MLFLOW_TRACKING_URI": server.url, "MLFLOW_REGISTRY_URI": server.url,
                       "MLFLOW_TRACKING_TOKEN": server.admin_token})
    try:
        mlflow.set_tracking_uri(server.url)
        mlflow.set_registry_uri(server.url)
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
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    return Registered(schema=schema, model=f"{schema}.churn", flaky=f"{schema}.flaky", x=x, expected=expected)


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
