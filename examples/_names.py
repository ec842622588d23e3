"""Names the examples share (override with EXAMPLES_SCHEMA / EXAMPLES_ENDPOINT to run them side by side)."""

import os

SCHEMA = os.environ.get("EXAMPLES_SCHEMA", "main.examples")
TABLE = f"{SCHEMA}.customers"
MODEL = f"{SCHEMA}.churn"
ENDPOINT = os.environ.get("EXAMPLES_ENDPOINT", "churn-examples")
PAYLOAD = f"{SCHEMA}.{ENDPOINT.replace('-', '_')}_payload"   # the endpoint's inference table
PREDICTIONS = f"{SCHEMA}.churn_predictions"                  # the same, one row per scored customer
