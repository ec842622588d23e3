"""Step 4 by hand: serve @champion with databricks-sdk, every request logged to an inference table, and
query the endpoint.
"""

import os
from datetime import UTC, datetime, timedelta

import mlflow
from _names import ENDPOINT, MODEL, SCHEMA
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound
from databricks.sdk.service.serving import (
    AiGatewayConfig,
    AiGatewayInferenceTableConfig,
    EndpointCoreConfigInput,
    ServedEntityInput,
)

from lakeforge.demo.data import FEATURES, traffic_day

host, token = os.environ["LAKEFORGE_HOST"], os.environ["LAKEFORGE_TOKEN"]
os.environ["MLFLOW_TRACKING_URI"], os.environ["MLFLOW_TRACKING_TOKEN"] = host, token
version = mlflow.MlflowClient().get_model_version_by_alias(MODEL, "champion").version

w = WorkspaceClient(host=host, token=token)
entity = ServedEntityInput(entity_name=MODEL, entity_version=str(version), workload_size="Small",
                           scale_to_zero_enabled=False)
catalog, schema = SCHEMA.split(".")
try:
    current = w.serving_endpoints.get(ENDPOINT)
except NotFound:
    w.serving_endpoints.create_and_wait(
        ENDPOINT, config=EndpointCoreConfigInput(name=ENDPOINT, served_entities=[entity]),
        ai_gateway=AiGatewayConfig(inference_table_config=AiGatewayInferenceTableConfig(
            catalog_name=catalog, schema_name=schema, enabled=True)),
        timeout=timedelta(minutes=5))
    print(f"created endpoint {ENDPOINT} serving {MODEL} version {version}")
else:
    if [e.entity_version for e in current.config.served_entities] != [str(version)]:
        w.serving_endpoints.update_config_and_wait(ENDPOINT, served_entities=[entity], timeout=timedelta(minutes=5))
        print(f"updated endpoint {ENDPOINT} to {MODEL} version {version}")
    else:
        print(f"endpoint {ENDPOINT} already serves {MODEL} version {version}")

customers = traffic_day(1, 5, datetime.now(UTC), drift_day=2)[FEATURES]
answer = w.serving_endpoints.query(ENDPOINT, dataframe_records=customers.to_dict(orient="records"))
print(f"predictions for 5 customers: {answer.predictions}")
