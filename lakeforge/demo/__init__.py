"""The demo workspace behind `lakeforge up --demo`: the whole MLOps loop, driven over the public APIs.

It runs as its own process (`python -m lakeforge.demo --url URL --token-file FILE`), never inside
the server: data generation and model training must not share the server's event loop or GIL. Each
step first looks at what exists and only creates or fixes what is missing, so running it again is
cheap and safe.
"""

CATALOG = "main"
SCHEMA = "main.demo"
CUSTOMERS = "main.demo.customers"          # training data (older events)
MODEL = "main.demo.churn"
ENDPOINT = "churn"
PAYLOAD = "main.demo.churn_payload"        # the endpoint's inference table (raw requests and responses)
LABELS = "main.demo.churn_labels"          # labels that arrive a day after the traffic
INFERENCE = "main.demo.churn_inference"    # the payload table unpacked: one row per scored customer
BASELINE = "main.demo.churn_baseline"      # training-time rows in the inference table's shape
EXPERIMENT = "lakeforge-demo"
# Marks the serving endpoint as the demo's own, so the demo never takes over a user's endpoint.
ENDPOINT_TAG = "lakeforge-demo"
