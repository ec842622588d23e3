"""Step 2 by hand: train on the catalog table, track the run with stock MLflow, register the model.

The run's input names the catalog table, so registering records the lineage table -> model
(`lakeforge lineage main.examples.churn`).
"""

import os

import mlflow
from _names import MODEL, TABLE
from mlflow.data.delta_dataset_source import DeltaDatasetSource
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lakeforge import Client

os.environ["MLFLOW_TRACKING_URI"] = os.environ["LAKEFORGE_HOST"]    # tracking and registry: the same server
os.environ["MLFLOW_TRACKING_TOKEN"] = os.environ["LAKEFORGE_TOKEN"]

NUMERIC = ["tenure_months", "monthly_charges", "data_usage_gb", "support_calls", "age"]
CATEGORICAL = ["contract", "plan", "region", "payment_method"]

frame = Client().tables.read(TABLE).to_pandas()
train = frame.sample(frac=0.8, random_state=0)
test = frame.drop(train.index)

model = Pipeline([
    ("features", ColumnTransformer([("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                                    ("numeric", StandardScaler(), NUMERIC)])),
    ("classifier", LogisticRegression(max_iter=500)),
]).fit(train[NUMERIC + CATEGORICAL], train["churned"])
auc = roc_auc_score(test["churned"], model.predict_proba(test[NUMERIC + CATEGORICAL])[:, 1])

mlflow.set_experiment("examples-churn")
with mlflow.start_run() as run:
    mlflow.log_params({"model": "logistic_regression", "rows": len(train)})
    mlflow.log_metric("test_roc_auc", auc)
    mlflow.log_input(mlflow.data.from_pandas(train, targets="churned", source=DeltaDatasetSource(
        delta_table_name=TABLE)), context="training")
    info = mlflow.sklearn.log_model(model, name="model", input_example=train[NUMERIC + CATEGORICAL].head(3),
                                    pip_requirements=["scikit-learn", "pandas"])
version = mlflow.register_model(info.model_uri, MODEL)
print(f"run {run.info.run_id}: test ROC AUC {auc:.3f}")
print(f"registered {MODEL} version {version.version}")
