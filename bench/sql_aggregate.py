"""SQL aggregate benchmark: GROUP BY over a 1M-row Delta table registered in the catalog, through
Lakeforge's statement API (databricks-sdk) side by side with DuckDB reading the same Delta table
directly (the floor).

    ./dev bench bench/sql_aggregate.py [--rows 1000000] [--runs 30]

The floor does per run what a user with deltalake and DuckDB does to answer the question from
scratch: open the Delta table (read its log), expose its Arrow dataset to a DuckDB connection and run
the query. Lakeforge does the same plus HTTP, authentication, planning, access checks and the JSON
result. The figure that cannot be beaten by anyone (the dataset already open, the connection warm) is
reported too, for context. Target: Lakeforge within 1.3x of the floor.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness import start_server

UC = "/api/2.1/unity-catalog"
QUERY = ("SELECT category, count(*) AS n, sum(value) AS total, avg(value) AS mean FROM {table} "
         "GROUP BY category ORDER BY category")
COLUMNS = [("id", "bigint", "LONG"), ("category", "string", "STRING"), ("value", "double", "DOUBLE"),
           ("quantity", "int", "INT"), ("ts", "timestamp", "TIMESTAMP")]


def make_data(rows: int) -> pa.Table:
    rng = np.random.default_rng(7)
    return pa.table({
        "id": pa.array(np.arange(rows, dtype=np.int64)),
        "category": pa.array([f"cat-{i:02d}" for i in rng.integers(0, 20, rows)]),
        "value": pa.array(rng.normal(100, 15, rows)),
        "quantity": pa.array(rng.integers(1, 50, rows).astype(np.int32)),
        "ts": pa.array((1_700_000_000_000_000 + rng.integers(0, 10**12, rows)).astype("datetime64[us]"))
        .cast(pa.timestamp("us", tz="UTC")),
    })


def setup(server, rows: int) -> str:
    cols = [{"name": n, "type_text": t, "type_name": tn, "position": i} for i, (n, t, tn) in enumerate(COLUMNS)]
    with server.client() as c:
        c.post(UC + "/catalogs", json={"name": "bench"}).raise_for_status()
        c.post(UC + "/schemas", json={"name": "s", "catalog_name": "bench"}).raise_for_status()
        r = c.post(UC + "/tables", json={"name": "events", "catalog_name": "bench", "schema_name": "s",
                                         "table_type": "MANAGED", "data_source_format": "DELTA", "columns": cols})
        r.raise_for_status()
    path = r.json()["storage_location"][len("file://"):]
    write_deltalake(path, make_data(rows), mode="append")
    return path


def timed(fns: dict, runs: int, warmup: int = 3) -> tuple[dict[str, list[float]], dict]:
    """Run the contenders in turn, run after run, so drift on a shared machine hits all alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    out: dict = {}
    for i in range(warmup + runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            out[name] = fn()
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    return times, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="lakeforge-bench-sql-"))
    server = start_server(home, env={"LAKEFORGE_LOG_LEVEL": "warning"})
    try:
        path = setup(server, args.rows)
        w = server.workspace()

        def lakeforge():
            resp = w.statement_execution.execute_statement(statement=QUERY.format(table="bench.s.events"),
                                                           warehouse_id="x", wait_timeout="30s")
            assert resp.status.state.value == "SUCCEEDED", resp.status
            return [[r[0], int(r[1]), float(r[2])] for r in resp.result.data_array]

        def floor():
            con = duckdb.connect()
            con.register("events", DeltaTable(path).to_pyarrow_dataset())
            rows = con.sql(QUERY.format(table="events")).fetchall()
            con.close()
            return [[r[0], int(r[1]), float(r[2])] for r in rows]

        warm = duckdb.connect()
        warm.register("events", DeltaTable(path).to_pyarrow_dataset())

        def warm_query():
            return warm.sql(QUERY.format(table="events")).fetchall()

        times, out = timed({"lakeforge": lakeforge, "duckdb_direct": floor, "duckdb_warm": warm_query}, args.runs)
        lf_times, floor_times, warm_times = times["lakeforge"], times["duckdb_direct"], times["duckdb_warm"]
        lf_rows, floor_rows = out["lakeforge"], out["duckdb_direct"]
        assert [r[:2] for r in lf_rows] == [r[:2] for r in floor_rows]
        assert all(abs(a[2] - b[2]) < 1e-6 * abs(b[2]) for a, b in zip(lf_rows, floor_rows))
    finally:
        server.stop()
    med = {k: statistics.median(v) * 1000 for k, v in
           (("lakeforge", lf_times), ("duckdb_direct", floor_times), ("duckdb_warm", warm_times))}
    report = {"rows": args.rows, "runs": args.runs, "query": QUERY.format(table="bench.s.events"),
              "machine": {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count(),
                          "duckdb": duckdb.__version__},
              "median_ms": {k: round(v, 2) for k, v in med.items()},
              "p90_ms": {k: round(sorted(v)[int(len(v) * 0.9) - 1] * 1000, 2) for k, v in
                         (("lakeforge", lf_times), ("duckdb_direct", floor_times), ("duckdb_warm", warm_times))},
              "ratio_vs_floor": round(med["lakeforge"] / med["duckdb_direct"], 3),
              "ratio_vs_warm": round(med["lakeforge"] / med["duckdb_warm"], 3), "target_ratio": 1.3}
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "sql_aggregate.json").write_text(json.dumps(report, indent=2))
    print("\n| benchmark | rows | Lakeforge SQL API p50 ms | DuckDB over the Delta table p50 ms (floor) | ratio "
          "| DuckDB, dataset already open p50 ms |\n|---|---|---|---|---|---|")
    print(f"| SQL aggregate (GROUP BY, count/sum/avg) | {args.rows:,} | {med['lakeforge']:.1f} | "
          f"{med['duckdb_direct']:.1f} | {report['ratio_vs_floor']:.2f}x | {med['duckdb_warm']:.1f} |")


if __name__ == "__main__":
    main()
