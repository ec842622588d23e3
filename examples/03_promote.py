"""Step 3 by hand: promote the newest version to @champion if it beats the current champion.

Each version's run logged `test_roc_auc`; the registry knows which run made which version.
"""

import os

import mlflow
from _names import MODEL
from mlflow.exceptions import MlflowException

os.environ["MLFLOW_TRACKING_URI"] = os.environ["LAKEFORGE_HOST"]
os.environ["MLFLOW_TRACKING_TOKEN"] = os.environ["LAKEFORGE_TOKEN"]
client = mlflow.MlflowClient()


def auc(version) -> float:
    return client.get_run(version.run_id).data.metrics["test_roc_auc"]


newest = max(client.search_model_versions(f"name = '{MODEL}'"), key=lambda v: int(v.version))
try:
    champion = client.get_model_version_by_alias(MODEL, "champion")
except MlflowException:
    champion = None  # no champion yet: the newest version becomes it

if champion is None or (newest.version != champion.version and auc(newest) > auc(champion)):
    client.set_registered_model_alias(MODEL, "champion", newest.version)
    print(f"{MODEL}@champion -> version {newest.version} (test ROC AUC {auc(newest):.3f})")
else:
    print(f"{MODEL}@champion stays version {champion.version} (test ROC AUC {auc(champion):.3f})")
loaded = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")   # verified against its sha256 manifest
print(f"loaded models:/{MODEL}@champion: {loaded.metadata.model_uuid}")
