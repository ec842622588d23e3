"""Monitoring benchmark: a Lakeforge monitor refresh (profile + drift) vs Evidently's `DataDriftPreset`,
same data, same run.

    ./dev bench bench/monitoring.py [--rows 1000000 | --quick] [--workdir DIR] [--skip-evidently]

Data (bench/monitoring_data.py): reference and current, `--rows` rows each, 20 numeric and 5 categorical
columns, 12 of them shifted in current; current spreads over 7 daily windows. Written as Parquet (what
Evidently reads) and as Delta tables (what the monitor reads), the same values.

Contenders, each in its own child process, one at a time:
- Evidently 0.7.23, in its own venv (bench/.venv-evidently, built here with uv: it needs pandas<3):
  `Report([DataDriftPreset()])`, default methods, reference vs all of current.
- Lakeforge: `lakeforge.monitoring.engine.refresh` of a time_series monitor ("1 day", the reference as
  baseline): a full refresh; then 1% more rows in a new 8th day and an incremental refresh; then 1% more
  rows inside the 7 existing days (late data) and an incremental refresh; then a full refresh of the
  same data, compared with the incremental result.

Measured from outside (os.wait4 on each child): wall, user+sys CPU and peak RSS of the whole process.
From inside each child: the tool's own work, without interpreter start-up and imports: for Evidently,
Parquet -> pandas + `Dataset` wrap + `Report.run`; for Lakeforge, `refresh()` (Delta -> metric tables).
The machine's 1-minute load average before each child is recorded: on a shared machine compare CPU.
Drift verdicts: Evidently's own per column; Lakeforge's from its drift table, by the rule in
bench/monitoring_lakeforge.py (Evidently's default thresholds, per daily window, majority of windows).
Results: bench/results/monitoring.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Standard library only, like everything imported here: the parent stays small (its children's ru_maxrss is theirs).
from bench.monitoring_measure import run_measured

ROOT = Path(__file__).resolve().parents[1]
EVIDENTLY_VENV = ROOT / "bench" / ".venv-evidently"
EVIDENTLY_PINS = ["evidently==0.7.23", "pandas<3", "numpy<2.3"]
TARGETS = {"cpu_ratio_min": 30.0, "peak_rss_mb_max": 500.0, "incremental_share_max": 0.05}


def ensure_evidently_venv() -> str:
    """Evidently's own venv (it fails to import with the project's pandas 3); built once with uv."""
    py = EVIDENTLY_VENV / "bin" / "python"
    probe = "import evidently, pandas; print(evidently.__version__, pandas.__version__)"
    if py.exists():
        found = subprocess.run([str(py), "-c", probe], check=False, capture_output=True, text=True)
        if found.returncode == 0:
            return found.stdout.strip()
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not uv:
        raise SystemExit("uv not found (it is in the project venv after ./dev test or ./dev bench)")
    subprocess.run([uv, "venv", "-q", "--allow-existing", "--python", sys.executable, str(EVIDENTLY_VENV)], check=True)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(py), *EVIDENTLY_PINS], check=True)
    return subprocess.run([str(py), "-c", probe], capture_output=True, text=True, check=True).stdout.strip()


def child(python: str, module: str, *args: str, work: Path, log: str) -> dict:
    env = {**os.environ, "DO_NOT_TRACK": "1", "PYTHONWARNINGS": "ignore"}
    return run_measured([python, "-m", module, *args], cwd=ROOT, env=env, log=work / log)


def evidently(work: Path) -> dict:
    out = work / "evidently.json"
    process = child(str(EVIDENTLY_VENV / "bin" / "python"), "bench.monitoring_evidently", str(work),
                    str(work / "layout.json"), str(out), work=work, log="evidently.log")
    inside = json.loads(out.read_text())
    s = inside["steps"]
    work_s = {k: round(sum(s[x][k] for x in ("load", "wrap", "run")), 3) for k in ("wall_s", "cpu_s")}
    return {"process": process, "inside": inside, "tool": work_s}


def lakeforge(work: Path, name: str, refresh: str, *extra: str) -> dict:
    out = work / f"lakeforge_{name}.json"
    process = child(sys.executable, "bench.monitoring_lakeforge", str(work), str(out), "--refresh", refresh,
                    *extra, work=work, log=f"lakeforge_{name}.log")
    inside = json.loads(out.read_text())
    return {"process": process, "inside": inside, "tool": inside["steps"]["refresh"]}


def append(work: Path, batch: str) -> None:
    subprocess.run([sys.executable, "-m", "bench.monitoring_data", str(work), "--append", batch], cwd=ROOT,
                   check=True, capture_output=True)


def verdict(flagged: list[str], truth: list[str]) -> dict:
    return {"exact": sorted(flagged) == sorted(truth), "missed": sorted(set(truth) - set(flagged)),
            "extra": sorted(set(flagged) - set(truth)), "flagged": len(flagged)}


def machine() -> dict:
    versions = {pkg: metadata.version(pkg) for pkg in ("duckdb", "deltalake", "pyarrow", "datasketches", "numpy",
                                                       "scipy", "pandas")}
    mem = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")), None)
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "mem_total_mb": mem,
            "python": platform.python_version(), "versions": versions}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of reference and of current (each)")
    ap.add_argument("--quick", action="store_true", help="100,000 rows: a fast check")
    ap.add_argument("--workdir", type=Path, help="where the data and metric tables go (default: a temp dir, removed)")
    ap.add_argument("--skip-evidently", action="store_true", help="Lakeforge only (the comparison is left out)")
    args = ap.parse_args()
    rows = 100_000 if args.quick else args.rows
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lakeforge-bench-monitoring-"))
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"{work} is not empty")
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"rows": rows, "started": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": machine(), "targets": TARGETS}
    try:
        evidently_versions = None if args.skip_evidently else ensure_evidently_venv()
        gen = subprocess.run([sys.executable, "-m", "bench.monitoring_data", str(work), "--rows", str(rows)],
                             cwd=ROOT, check=True, capture_output=True, text=True)
        layout = json.loads(gen.stdout)
        (work / "layout.json").write_text(json.dumps(layout))
        report["data"] = layout
        runs = {}
        if not args.skip_evidently:
            print(f"Evidently ({evidently_versions}) on {rows:,} vs {rows:,} rows ...", flush=True)
            runs["evidently"] = evidently(work)
        print("Lakeforge full refresh ...", flush=True)
        runs["lakeforge_full"] = lakeforge(work, "full", "full")
        append(work, "new_day")
        print("Lakeforge incremental refresh (+1% rows in a new day) ...", flush=True)
        runs["lakeforge_incremental_new_day"] = lakeforge(work, "incremental_new_day", "incremental")
        append(work, "late")
        print("Lakeforge incremental refresh (+1% rows in the existing days) ...", flush=True)
        runs["lakeforge_incremental_late"] = lakeforge(work, "incremental_late", "incremental", "--dump", "incr")
        print("Lakeforge full refresh of the same data ...", flush=True)
        runs["lakeforge_full_after_appends"] = lakeforge(work, "full_after_appends", "full", "--compare", "incr")
    except BaseException:
        print(f"failed; the data, logs and metric tables are in {work}", file=sys.stderr)
        raise
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    for r in runs.values():
        r["verdict"] = verdict(r["inside"]["flagged"], layout["shifted"])
    report["runs"] = runs
    report["summary"] = summary(runs)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "monitoring.json").write_text(json.dumps(report, indent=2))
    print_table(rows, runs, report["summary"])


def summary(runs: dict) -> dict:
    full, new_day, late = (runs[k]["tool"]["cpu_s"] for k in
                           ("lakeforge_full", "lakeforge_incremental_new_day", "lakeforge_incremental_late"))
    s = {"incremental_new_day_share": round(new_day / full, 4), "incremental_late_share": round(late / full, 4),
         "lakeforge_peak_rss_mb": max(r["process"]["peak_rss_mb"] for k, r in runs.items() if k != "evidently"),
         "incremental_vs_full": runs["lakeforge_full_after_appends"]["inside"].get("compare_with_incr")}
    if "evidently" in runs:
        ev = runs["evidently"]
        s["cpu_ratio_tool"] = round(ev["tool"]["cpu_s"] / full, 1)
        s["cpu_ratio_report_run"] = round(ev["inside"]["steps"]["run"]["cpu_s"] / full, 1)
        s["cpu_ratio_process"] = round(ev["process"]["cpu_s"] / runs["lakeforge_full"]["process"]["cpu_s"], 1)
    return s


def print_table(rows: int, runs: dict, s: dict) -> None:
    labels = {"evidently": "Evidently DataDriftPreset (reference vs all of current)",
              "lakeforge_full": "Lakeforge full refresh (profile + drift, 7 daily windows vs baseline)",
              "lakeforge_incremental_new_day": "Lakeforge incremental refresh, +1% rows in a new day",
              "lakeforge_incremental_late": "Lakeforge incremental refresh, +1% late rows in the 7 days",
              "lakeforge_full_after_appends": "Lakeforge full refresh of the same data (after both appends)"}
    print(f"\n{rows:,} reference rows vs {rows:,} current rows, 20 numeric + 5 categorical columns, 12 shifted\n")
    print("| run | current rows read | tool work wall s | tool work CPU s | process wall s | process CPU s | "
          "peak RSS MB | flagged exactly the 12 shifted? | load |\n|---|---|---|---|---|---|---|---|---|")
    for key, r in runs.items():
        v = r["verdict"]
        ok = "yes" if v["exact"] else f"no ({v['flagged']} flagged; missed {v['missed']}, extra {v['extra']})"
        p = r["process"]
        read = r["inside"]["rows"]["current"] if key == "evidently" else r["inside"]["result"]["rows_read"]
        print(f"| {labels[key]} | {read:,} | {r['tool']['wall_s']:.2f} | {r['tool']['cpu_s']:.2f} | {p['wall_s']:.2f} | "
              f"{p['cpu_s']:.2f} | {p['peak_rss_mb']:.0f} | {ok} | {p['load_1m_before']} |")
    print()
    if "cpu_ratio_tool" in s:
        print(f"CPU, Evidently / Lakeforge full refresh: {s['cpu_ratio_tool']}x tool work "
              f"({s['cpu_ratio_report_run']}x Report.run alone, {s['cpu_ratio_process']}x whole processes); "
              f"target >= {TARGETS['cpu_ratio_min']:.0f}x")
    print(f"Lakeforge peak RSS: {s['lakeforge_peak_rss_mb']:.0f} MB; target <= {TARGETS['peak_rss_mb_max']:.0f} MB")
    print(f"Incremental refresh CPU / full refresh CPU: {s['incremental_new_day_share']:.1%} (new day), "
          f"{s['incremental_late_share']:.1%} (late rows); target <= {TARGETS['incremental_share_max']:.0%}")
    if s.get("incremental_vs_full"):
        print(f"Incremental vs full metric tables: {json.dumps(s['incremental_vs_full'])}")


if __name__ == "__main__":
    main()
