"""The Lakeforge side of the monitoring benchmark: one refresh of a time-series monitor, in its own process.

    python -m bench.monitoring_lakeforge DATA_DIR OUT_JSON --refresh full|incremental [--dump NAME | --compare NAME]

The monitor: `time_series` on DATA_DIR/current_delta, timestamp column `ts`, granularity "1 day", the
reference Delta table as its baseline; its state and metric tables live under DATA_DIR/monitor and carry
over from one invocation to the next (the first creates the empty metric tables, as the service does).
`engine.refresh` is timed from inside (wall and process CPU); then the drift table is read to decide
which columns drifted (`flagged` below) and, with --dump/--compare, the metric tables are saved or
compared with a saved copy (incremental vs full).

A column is flagged when its BASELINE drift, per daily window, passes Evidently's default rule for
large data in a majority of the windows: numeric columns `wasserstein_distance` / the baseline's standard
deviation >= 0.1 (Evidently's "Wasserstein distance (normed)"), categorical columns `js_distance` >= 0.1
(Lakeforge's JS distance uses base-2 logarithms, Evidently's natural ones: ours reads 1.2x higher).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.monitoring_measure import Steps, peak_rss_mb

THRESHOLD = 0.1
# Imports that cost tens of MB; the output lists those the run loaded.
HEAVY_MODULES = ("pandas", "pyarrow.dataset", "scipy.stats", "sqlglot", "jinja2")
# Every window of the benchmark's data has ended by then (the data sits in January 2026).
NOW = datetime(2026, 1, 20, tzinfo=UTC)
# Metric columns compared between an incremental and a full refresh.
COMPARED = {"profile": ["count", "num_nulls", "avg", "stddev", "min", "max", "median", "distinct_count"],
            "drift": ["count_delta", "avg_delta", "js_distance", "wasserstein_distance",
                      "population_stability_index", "tv_distance", "l_infinity_distance"]}


class Phases:
    """The engine's progress messages, each with the wall and CPU seconds since the refresh started: where
    the refresh spends its time."""

    def __init__(self) -> None:
        self.marks: list[dict] = []
        self.w, self.c = time.perf_counter(), time.process_time()

    def __call__(self, fraction: float, message: str) -> None:
        self.marks.append({"at_wall_s": round(time.perf_counter() - self.w, 3),
                           "at_cpu_s": round(time.process_time() - self.c, 3),
                           "fraction": round(fraction, 3), "message": message})


def refresh(data_dir: Path, full: bool, step: Steps, phases: Phases):
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    from lakeforge.monitoring import engine
    from lakeforge.monitoring.engine.scan import SourceTable
    from lakeforge.monitoring.spec import MonitorSpec

    spec = MonitorSpec(profile_type="time_series", timestamp_col="ts", granularities=("1 day",))
    monitor = data_dir / "monitor"
    profile_path, drift_path = monitor / "profile_metrics", monitor / "drift_metrics"
    with step("setup"):
        if not profile_path.exists():  # what the service does when the monitor is created
            schema, baseline_schema = (pa.schema(DeltaTable(str(data_dir / t)).schema().to_arrow())
                                       for t in ("current_delta", "reference_delta"))
            engine.validate(spec, schema, baseline_schema)
            write_deltalake(str(profile_path), engine.profile_schema_for(spec).empty_table())
            write_deltalake(str(drift_path), engine.drift_schema_for(spec).empty_table())
    with step("refresh"):
        phases.w, phases.c = time.perf_counter(), time.process_time()
        result = engine.refresh(str(data_dir / "current_delta"), spec, state_dir=monitor / "state",
                                profile_path=str(profile_path), drift_path=str(drift_path),
                                baseline=str(data_dir / "reference_delta"), full=full, now=NOW, progress=phases)
    with step("read_metrics"):  # as the engine reads them (a pyarrow dataset would import pandas)
        profile = SourceTable(str(profile_path)).read_all()
        drift = SourceTable(str(drift_path)).read_all()
    return result, profile, drift


def flags(profile, drift, numeric: list[str], categorical: list[str]) -> tuple[list[str], dict]:
    """The flagged columns (module docstring) and, per column, the windows' scores and verdicts."""
    from lakeforge.monitoring.tables import BASELINE, BASELINE_DRIFT

    baseline_sd = {r["column_name"]: r["stddev"] for r in profile.to_pylist()
                   if r["log_type"] == BASELINE and r["slice_key"] is None and r["column_name"] in numeric}
    missing = [c for c in numeric if not baseline_sd.get(c)]
    if missing:
        raise RuntimeError(f"no baseline stddev in the profile table for {missing}")
    scores: dict[str, list[float]] = {c: [] for c in numeric + categorical}
    for r in drift.to_pylist():
        if r["drift_type"] != BASELINE_DRIFT or r["slice_key"] is not None or r["granularity"] != "1 day":
            continue
        c = r["column_name"]
        if c in baseline_sd:
            scores[c].append(r["wasserstein_distance"] / baseline_sd[c])
        elif c in scores:
            scores[c].append(r["js_distance"])
    detail, flagged = {}, []
    for c, s in scores.items():
        over = sum(1 for v in s if v is not None and v >= THRESHOLD)
        detail[c] = {"score": "wasserstein/baseline_sd" if c in baseline_sd else "js_distance",
                     "windows": len(s), "windows_flagged": over,
                     "min": round(min(s), 4) if s else None, "max": round(max(s), 4) if s else None}
        if s and over > len(s) / 2:
            flagged.append(c)
    return sorted(flagged), detail


def _keyed(table, kind: str) -> dict:
    key_cols = ["granularity", "slice_key", "slice_value", "column_name"]
    key_cols += ["log_type"] if kind == "profile" else ["drift_type"]
    out = {}
    for r in table.to_pylist():
        key = (r["window"]["start"], *(r[k] for k in key_cols))
        if kind == "drift":
            key += ((r["window_cmp"] or {}).get("start"),)
        out[key] = r
    return out


def compare(saved: dict, now: dict) -> dict:
    """Rows present in one table only, and the largest relative difference of each compared metric."""
    report = {}
    for kind in ("profile", "drift"):
        a, b = _keyed(saved[kind], kind), _keyed(now[kind], kind)
        worst: dict[str, float] = {}
        for key in a.keys() & b.keys():
            for m in COMPARED[kind]:
                x, y = a[key].get(m), b[key].get(m)
                if x is None or y is None or (isinstance(x, float) and math.isnan(x)):
                    if (x is None) != (y is None):
                        worst[m] = math.inf
                    continue
                diff = abs(x - y) / max(abs(x), abs(y), 1e-12)
                worst[m] = max(worst.get(m, 0.0), diff)
        report[kind] = {"rows": [len(a), len(b)], "only_in_one": len(a.keys() ^ b.keys()),
                        "max_rel_diff": {m: (v if math.isinf(v) else float(f"{v:.3g}")) for m, v in worst.items()}}
    return report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--refresh", choices=["full", "incremental"], required=True)
    ap.add_argument("--dump", help="save the metric tables as DATA_DIR/NAME_{profile,drift}.parquet")
    ap.add_argument("--compare", help="compare the metric tables with a --dump of that name")
    args = ap.parse_args()
    layout = json.loads((args.data_dir / "layout.json").read_text())
    step = Steps()
    # Everything a refresh imports, imported (and timed) here, so that the refresh step of every run, first or
    # not, counts the refresh's work alone, as in a long-running server. pyarrow imports pandas (about 0.7 s
    # of CPU, 60 MB) on its first conversion of numpy or Python values. The engine imports scipy.stats (0.9 s,
    # 45 MB) only for the KS p-value of a comparison of effective size <= 10,000 (the new day's window here):
    # imported here for every run, so the full refreshes' peak RSS counts it too. Neither the engine nor this
    # script imports pyarrow.dataset.
    with step("import"):
        import pandas  # noqa: F401
        import pyarrow.parquet as pq
        import scipy.stats  # noqa: F401

        import lakeforge.monitoring.engine  # noqa: F401
    phases = Phases()
    result, profile, drift = refresh(args.data_dir, args.refresh == "full", step, phases)
    flagged, detail = flags(profile, drift, layout["numeric"], layout["categorical"])
    out = {"refresh": args.refresh, "result": {k: getattr(result, k) for k in
                                                ("source_version", "full", "rows_read", "windows_recomputed",
                                                 "profile_rows", "drift_rows")},
           "steps": step.times, "refresh_phases": phases.marks, "peak_rss_mb": peak_rss_mb(), "flagged": flagged, "columns": detail,
           "heavy_modules_loaded": sorted(m for m in HEAVY_MODULES if m in sys.modules)}
    if args.dump:
        for kind, table in (("profile", profile), ("drift", drift)):
            pq.write_table(table, args.data_dir / f"{args.dump}_{kind}.parquet")
    if args.compare:
        saved = {kind: pq.ParquetFile(args.data_dir / f"{args.compare}_{kind}.parquet").read()
                 for kind in ("profile", "drift")}
        out["compare_with_" + args.compare] = compare(saved, {"profile": profile, "drift": drift})
    args.out.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
