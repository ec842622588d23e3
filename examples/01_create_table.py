"""Step 1 by hand: a schema and a table of customers, written with the Lakeforge SDK.

    export LAKEFORGE_HOST=http://127.0.0.1:8080 LAKEFORGE_TOKEN=$(cat ~/.lakeforge/admin-token)
    .venv/bin/python examples/01_create_table.py
"""

from datetime import UTC, datetime

from _names import SCHEMA, TABLE

from lakeforge import ApiError, Client
from lakeforge.demo.data import training_customers

lf = Client()  # LAKEFORGE_HOST and LAKEFORGE_TOKEN from the environment
try:
    lf.schemas.create(SCHEMA, comment="Lakeforge examples")
    print(f"created schema {SCHEMA}")
except ApiError as e:
    if e.status != 409:  # already there: fine, the examples can run again
        raise

# 5,000 customers with numeric and categorical features, an event time and a churn label (0/1).
customers = training_customers(5_000, end=datetime.now(UTC))
result = lf.tables.write(customers, TABLE, mode="overwrite")
print(f"wrote {result['num_rows']} rows to {TABLE} (Delta version {result['version']})")
print(lf.sql(f"SELECT contract, count(*) AS customers, avg(churned) AS churn_rate FROM {TABLE} "
             "GROUP BY contract ORDER BY contract").to_pandas().to_string(index=False))
