"""Catalog API benchmark: latency p50/p99 and requests/s with 1 and 16 concurrent clients for
get-table, list-tables and create/delete-schema, on SQLite and PostgreSQL.

    ./dev bench bench/catalog_api.py [--seconds 10] [--backend sqlite|postgresql|both] [--workers 1,2]
                                     [--ops get-table,get-missing-table,list-tables,create-delete]

get-table, get-missing-table and list-tables are driven by wrk; create/delete-schema pairs by a
Python asyncio client (each worker creates a schema and deletes it, so the timing is for the pair of
requests). get-table asks for the same unchanged table again and again (the server answers it from
memory after the first read); get-missing-table asks for a table that does not exist, so every
request reads the database (one query) and answers 404 — wrk counts those as errors. Each cell
records the machine's load average when it started and, for the wrk-driven operations, the CPU
time the server processes spent per request (user + system, from /proc: steadier than req/s when
other work shares the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import wrk  # noqa: E402
from tests.harness import create_pg_database, drop_pg_database, start_server  # noqa: E402

UC = "/api/2.1/unity-catalog"
_TICK = os.sysconf("SC_CLK_TCK")
TABLES_IN_SCHEMA = 50


def setup_catalog(server) -> None:
    with server.client() as c:
        c.post(UC + "/catalogs", json={"name": "bench"}).raise_for_status()
        c.post(UC + "/schemas", json={"name": "s", "catalog_name": "bench"}).raise_for_status()
        cols = [{"name": f"c{i}", "type_text": "double", "type_name": "DOUBLE", "position": i} for i in range(10)]
        for i in range(TABLES_IN_SCHEMA):
            c.post(UC + "/tables", json={"name": f"t{i:03d}", "catalog_name": "bench", "schema_name": "s",
                                         "table_type": "MANAGED", "data_source_format": "DELTA",
                                         "columns": cols}).raise_for_status()


async def create_delete(server, workers: int, seconds: float) -> dict:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {server.admin_token}"}

    async def worker(w: int) -> None:
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as c:
            i = 0
            while time.perf_counter() < deadline:
                name = f"w{w}_{i}"
                t0 = time.perf_counter()
                r1 = await c.post(UC + "/schemas", json={"name": name, "catalog_name": "bench"})
                r2 = await c.delete(f"{UC}/schemas/bench.{name}")
                if r1.status_code != 200 or r2.status_code != 200:
                    raise RuntimeError(f"create/delete failed: {r1.text} {r2.text}")
                latencies.append(time.perf_counter() - t0)
                i += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {"pairs_per_s": len(latencies) / elapsed, "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000, "pairs": len(latencies)}


OPS = ("get-table", "get-missing-table", "list-tables", "create-delete")


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the server process and its descendants (the worker processes)."""
    total, pending = 0.0, [pid]
    while pending:
        p = pending.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    pending += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def bench_backend(backend: str, seconds: int, workers: int, ops=OPS) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"lakeforge-bench-{backend}-"))
    pg_name = None
    url = None
    if backend == "postgresql":
        url, pg_name = create_pg_database()
    server = start_server(home, database_url=url, env={"LAKEFORGE_LOG_LEVEL": "warning"}, workers=workers)
    time.sleep(2 if workers > 1 else 0)  # let every worker finish starting
    results: dict = {}
    try:
        setup_catalog(server)
        targets = {"get-table": f"{server.url}{UC}/tables/bench.s.t007",
                   "get-missing-table": f"{server.url}{UC}/tables/bench.s.missing",
                   "list-tables": f"{server.url}{UC}/tables?catalog_name=bench&schema_name=s"}
        for op, target in targets.items():
            if op not in ops:
                continue
            wrk.run(target, server.admin_token, connections=4, seconds=2)  # warm-up
            for c in (1, 16):
                load, cpu = os.getloadavg()[0], server_cpu_seconds(server.proc.pid)
                r = wrk.run(target, server.admin_token, connections=c, seconds=seconds)
                cpu = server_cpu_seconds(server.proc.pid) - cpu
                results[f"{op} c={c}"] = {"requests_per_s": round(r.requests_per_s), "p50_ms": round(r.p50_ms, 2),
                                          "p99_ms": round(r.p99_ms, 2), "errors": r.errors, "load_1m": round(load, 2),
                                          "server_cpu_ms_per_request": round(cpu * 1000 / (r.requests_per_s * seconds), 3)}
                if op == "get-missing-table":
                    results[f"{op} c={c}"]["note"] = "every answer is a 404, counted by wrk as an error"
                print(backend, workers, op, c, results[f"{op} c={c}"], flush=True)
        for c in (1, 16) if "create-delete" in ops else ():
            load = os.getloadavg()[0]
            r = asyncio.run(create_delete(server, c, seconds))
            results[f"create+delete-schema c={c}"] = {"requests_per_s": round(r["pairs_per_s"] * 2),
                                                      "p50_ms": round(r["p50_ms"], 2), "p99_ms": round(r["p99_ms"], 2),
                                                      "errors": 0, "note": "per create+delete pair",
                                                      "load_1m": round(load, 2)}
            print(backend, workers, "create+delete", c, results[f"create+delete-schema c={c}"], flush=True)
    finally:
        server.stop()
        if pg_name:
            drop_pg_database(pg_name)
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--workers", default="1,2", help="server worker counts to measure, comma-separated")
    ap.add_argument("--ops", default=",".join(OPS), help="operations to measure, comma-separated")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "catalog_api.json"),
                    help="where the JSON results go")
    args = ap.parse_args()
    ops = args.ops.split(",")
    unknown = set(ops) - set(OPS)
    if unknown:
        ap.error(f"unknown operations {sorted(unknown)}; choose from {', '.join(OPS)}")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    counts = [int(w) for w in args.workers.split(",")]
    report = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "seconds": args.seconds,
              "results": {f"{b} workers={w}": bench_backend(b, args.seconds, w, ops) for b in backends for w in counts}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print("\n| backend, server processes | operation | clients | req/s | p50 ms | p99 ms | server CPU ms/req | load |\n"
          "|---|---|---|---|---|---|---|---|")
    for backend, res in report["results"].items():
        for key, r in res.items():
            op, c = key.rsplit(" c=", 1)
            print(f"| {backend} | {op} | {c} | {r['requests_per_s']} | {r['p50_ms']} | {r['p99_ms']} | "
                  f"{r.get('server_cpu_ms_per_request', '')} | {r['load_1m']} |")


if __name__ == "__main__":
    main()
