"""Data for the monitoring benchmark: a reference table and a current table with the same 25 feature
columns (20 numeric, 5 categorical) and a timestamp, 12 of the columns shifted in current.

Deterministic (seeded), written once as Parquet (what Evidently reads, through pandas) and as Delta
tables (what Lakeforge's monitor reads), the same values in both. The current table spreads over 7 daily
windows and is written one commit per day, the way a daily load lands; the appends used for incremental
refreshes are generated here too, from the current distribution:

- `new_day`: 1% more rows, all in an 8th day;
- `late`: 1% more rows whose timestamps fall inside the 7 existing days (late-arriving data).

    python bench/monitoring_data.py OUT_DIR --rows N   (run by bench/monitoring.py)
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import write_deltalake

TIMESTAMP_COL = "ts"
DAY_US = 86_400_000_000
REFERENCE_START = datetime(2026, 1, 1, tzinfo=UTC)   # the reference covers the week before
CURRENT_START = datetime(2026, 1, 8, tzinfo=UTC)
CURRENT_DAYS = 7


@dataclass(frozen=True)
class Numeric:
    name: str
    kind: str            # normal | lognormal | uniform | exponential | poisson (int64)
    shift: str = ""      # how current differs from reference; "" = not shifted
    null_share: float = 0.0


@dataclass(frozen=True)
class Categorical:
    name: str
    cardinality: int
    shift: str = ""      # reversed | flattened | ""


# Every shift is sized to sit well past Evidently's default thresholds (normed Wasserstein >= 0.1,
# Jensen-Shannon distance >= 0.1) at 1M rows and per daily window at 100k; the comments give the effect.
NUMERIC = [
    Numeric("n00", "normal"),
    Numeric("n01", "normal", "mean +0.3 sd"),                        # W/sd 0.30
    Numeric("n02", "lognormal"),
    Numeric("n03", "lognormal", "scale x1.25"),                      # W/sd ~0.47
    Numeric("n04", "uniform"),
    Numeric("n05", "uniform", "range moved +10% of its width"),     # W/sd 0.35
    Numeric("n06", "exponential"),
    Numeric("n07", "exponential", "scale x1.3"),                     # W/sd 0.30
    Numeric("n08", "poisson"),
    Numeric("n09", "poisson", "lambda 30 -> 33"),                    # W/sd ~0.55
    Numeric("n10", "normal", null_share=0.02),
    Numeric("n11", "normal", "sd x1.4"),                             # W/sd ~0.32
    Numeric("n12", "lognormal"),
    Numeric("n13", "normal", "mean -0.25 sd", null_share=0.02),     # W/sd 0.25
    Numeric("n14", "uniform"),
    Numeric("n15", "lognormal", "log-mean +0.2"),                    # W/sd ~0.41
    Numeric("n16", "exponential"),
    Numeric("n17", "normal", "mean +0.5 sd, sd x0.7"),               # W/sd ~0.5
    Numeric("n18", "poisson"),
    Numeric("n19", "normal"),
]
CATEGORICAL = [
    Categorical("c0", 5),
    Categorical("c1", 20, "reversed"),        # popularity order reversed: JS distance ~0.4
    Categorical("c2", 50),
    Categorical("c3", 200, "flattened"),      # the 10 most popular values lose half their share
    Categorical("c4", 1000, "reversed"),
]
SHIFTED = sorted([c.name for c in NUMERIC if c.shift] + [c.name for c in CATEGORICAL if c.shift])
NUMERIC_COLUMNS = [c.name for c in NUMERIC]
CATEGORICAL_COLUMNS = [c.name for c in CATEGORICAL]


def _numeric(col: Numeric, rng: np.random.Generator, n: int, shifted: bool) -> pa.Array:
    s = col.shift if shifted else ""
    if col.kind == "normal":
        mean, sd = 100.0, 15.0
        if "mean +0.3" in s:
            mean += 0.3 * sd
        if "mean -0.25" in s:
            mean -= 0.25 * sd
        if "mean +0.5" in s:
            mean += 0.5 * sd
        if "sd x1.4" in s:
            sd *= 1.4
        if "sd x0.7" in s:
            sd *= 0.7
        values = rng.normal(mean, sd, n)
    elif col.kind == "lognormal":
        values = rng.lognormal(0.2 if "log-mean" in s else 0.0, 0.5, n) * (1.25 if "scale" in s else 1.0)
    elif col.kind == "uniform":
        values = rng.uniform(5.0 if s else 0.0, 55.0 if s else 50.0, n)
    elif col.kind == "exponential":
        values = rng.exponential(3.0 * (1.3 if s else 1.0), n)
    elif col.kind == "poisson":
        return pa.array(rng.poisson(33 if s else 30, n).astype(np.int64))
    else:
        raise ValueError(col.kind)
    mask = rng.random(n) < col.null_share if col.null_share else None
    return pa.array(values, mask=mask)


def _popularity(col: Categorical, shifted: bool) -> np.ndarray:
    p = 1.0 / np.arange(1, col.cardinality + 1) ** 1.1  # Zipf-like
    p /= p.sum()
    if shifted and col.shift == "reversed":
        p = p[::-1].copy()
    elif shifted and col.shift == "flattened":
        p[:10] *= 0.5
        p[10:] += (1 - p.sum()) / (col.cardinality - 10)
    return p


def _categorical(col: Categorical, rng: np.random.Generator, n: int, shifted: bool) -> pa.Array:
    labels = pa.array([f"{col.name}_{i:04d}" for i in range(col.cardinality)])
    return labels.take(pa.array(rng.choice(col.cardinality, n, p=_popularity(col, shifted))))


def make_table(rows: int, seed: int, shifted: bool, start: datetime, days: float) -> pa.Table:
    """`rows` rows with timestamps uniform over `days` days from `start`, sorted by time."""
    rng = np.random.default_rng(seed)
    start_us = int(start.timestamp() * 1_000_000)
    ts = np.sort(start_us + rng.integers(0, int(days * DAY_US), rows))
    columns = {TIMESTAMP_COL: pa.array(ts.astype("datetime64[us]")).cast(pa.timestamp("us", tz="UTC"))}
    for col in NUMERIC:
        columns[col.name] = _numeric(col, rng, rows, shifted)
    for col in CATEGORICAL:
        columns[col.name] = _categorical(col, rng, rows, shifted)
    return pa.table(columns)


def write(out: Path, rows: int) -> dict:
    """Write everything the benchmark reads under `out`; returns the layout (paths and row counts)."""
    out.mkdir(parents=True, exist_ok=True)
    reference = make_table(rows, seed=1, shifted=False, start=REFERENCE_START, days=CURRENT_DAYS)
    current = make_table(rows, seed=2, shifted=True, start=CURRENT_START, days=CURRENT_DAYS)
    pq.write_table(reference, out / "reference.parquet")
    pq.write_table(current, out / "current.parquet")
    write_deltalake(str(out / "reference_delta"), reference)
    day = pc.floor_temporal(current[TIMESTAMP_COL], unit="day")
    for d in range(CURRENT_DAYS):  # one commit per daily load
        when = pa.scalar(CURRENT_START + timedelta(days=d), pa.timestamp("us", tz="UTC"))
        write_deltalake(str(out / "current_delta"), current.filter(pc.equal(day, when)), mode="append")
    extra = max(1, rows // 100)
    new_day = make_table(extra, seed=3, shifted=True, start=CURRENT_START + timedelta(days=CURRENT_DAYS), days=1)
    late = make_table(extra, seed=4, shifted=True, start=CURRENT_START, days=CURRENT_DAYS)
    pq.write_table(new_day, out / "append_new_day.parquet")
    pq.write_table(late, out / "append_late.parquet")
    return {"rows": rows, "append_rows": extra, "shifted": SHIFTED, "numeric": NUMERIC_COLUMNS,
            "categorical": CATEGORICAL_COLUMNS, "timestamp_col": TIMESTAMP_COL,
            "shifts": {c.name: c.shift for c in NUMERIC + CATEGORICAL if c.shift}}


def append(delta_path: Path, parquet_path: Path) -> int:
    """Append one generated batch to the current Delta table (one commit); returns its row count."""
    batch = pq.read_table(parquet_path)
    write_deltalake(str(delta_path), batch, mode="append")
    return batch.num_rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--append", choices=["new_day", "late"], help="append that batch to current_delta instead")
    args = ap.parse_args()
    if args.append:
        n = append(args.out / "current_delta", args.out / f"append_{args.append}.parquet")
        print(json.dumps({"appended": n}))
    else:
        print(json.dumps(write(args.out, args.rows)))


if __name__ == "__main__":
    main()
