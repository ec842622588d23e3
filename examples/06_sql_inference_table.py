"""Step 6 by hand: read the inference table with SQL, through databricks-sdk's statement execution API
and through the Lakeforge SDK.
"""

import os

from _names import PAYLOAD, PREDICTIONS
from databricks.sdk import WorkspaceClient

from lakeforge import Client

w = WorkspaceClient(host=os.environ["LAKEFORGE_HOST"], token=os.environ["LAKEFORGE_TOKEN"])
resp = w.statement_execution.execute_statement(
    statement=f"SELECT status_code, count(*) AS requests, avg(execution_time_ms) AS avg_ms "
              f"FROM {PAYLOAD} GROUP BY status_code ORDER BY status_code",
    warehouse_id="any", wait_timeout="30s")
print(f"{PAYLOAD} (raw requests): {resp.result.data_array}")

lf = Client()
print(lf.sql(f"SELECT contract, count(*) AS customers, avg(prediction) AS predicted_churn "
             f"FROM {PREDICTIONS} GROUP BY contract ORDER BY contract").to_pandas().to_string(index=False))
