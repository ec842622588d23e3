"""The churn model: a one-hot + logistic-regression pipeline, tracked and registered with stock MLflow.

Logistic regression fits 200,000 rows in a couple of seconds on two cores and is what the data's
generator is (a logistic model), so it is a fair champion; the challenger is the same pipeline
fitted on recent labeled traffic.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np
import pandas as pd

from lakeforge.demo import EXPERIMENT, MODEL
from lakeforge.demo.data import CATEGORICAL, FEATURES, LABEL, NUMERIC


def fit(frame: pd.DataFrame):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = ColumnTransformer([
        ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ("numeric", StandardScaler(), NUMERIC)])
    model = Pipeline([("features", features), ("classifier", LogisticRegression(max_iter=500))])
    return model.fit(frame[FEATURES], frame[LABEL])


def churn_proba(model, frame: pd.DataFrame) -> np.ndarray:
    """The probability of class 1 (churn) for each row."""
    return model.predict_proba(frame[FEATURES])[:, list(model.classes_).index(1)]


def evaluate(model, frame: pd.DataFrame) -> dict[str, float]:
    """ROC AUC (the demo's promotion metric), F1 and accuracy on labeled rows."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    truth = frame[LABEL].to_numpy().astype(int)
    proba = churn_proba(model, frame)
    predicted = (proba >= 0.5).astype(int)
    return {"roc_auc": float(roc_auc_score(truth, proba)), "f1": float(f1_score(truth, predicted)),
            "accuracy": float(accuracy_score(truth, predicted))}


def quiet_mlflow() -> None:
    """MLflow's run links, environment notes and warnings would scroll the progress bar away."""
    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def log_and_register(model, train: pd.DataFrame, *, source_table: str, run_name: str, params: dict,
                     metrics: dict, tags: dict[str, str]) -> tuple[str, str]:
    """Log a run (params, metrics, the catalog table it trained on, the model) and register the model
    as a new version of MODEL carrying `tags`; returns (version, run path in the MLflow UI). The
    training input names its catalog table, so registering records the lineage table -> model."""
    quiet_mlflow()
    # MLflow writes run links and registration notes straight to stdout/stderr; the demo prints its own.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return _log_and_register(model, train, source_table, run_name, params, metrics, tags)


def _log_and_register(model, train, source_table, run_name, params, metrics, tags) -> tuple[str, str]:
    import mlflow
    import sklearn
    from mlflow.data.delta_dataset_source import DeltaDatasetSource

    experiment = mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        dataset = mlflow.data.from_pandas(train, name=source_table, targets=LABEL,
                                          source=DeltaDatasetSource(delta_table_name=source_table))
        mlflow.log_input(dataset, context="training")
        # Requirements stated, not inferred: inferring them imports and probes the model (seconds).
        requirements = [f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}",
                        f"numpy=={np.__version__}"]
        # Served, the model answers class probabilities ([p(stay), p(churn)] per row): the inference
        # table then holds what a monitor needs for ROC AUC and log loss, not only the class.
        info = mlflow.sklearn.log_model(model, name="model", input_example=train[FEATURES].head(5),
                                        pip_requirements=requirements, pyfunc_predict_fn="predict_proba")
    version = mlflow.register_model(info.model_uri, MODEL).version
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(MODEL, version, key, value)
    return str(version), f"/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"


def load(version: str):
    """A registered version as the sklearn pipeline (predict_proba included), verified by the registry."""
    import mlflow

    quiet_mlflow()
    return mlflow.sklearn.load_model(f"models:/{MODEL}/{version}")
