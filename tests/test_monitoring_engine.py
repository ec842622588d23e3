"""The monitoring engine on real Delta tables in temporary directories (no server): profile values against
exact pandas/numpy figures, windows and slices, drift rows, model quality, custom metrics, incremental
refreshes equal to full ones after appends, deletes, updates and late rows, failure and cancellation
leaving tables and state untouched, snapshots, and empty windows."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaProtocolError
from scipy.stats import chi2_contingency
from sklearn import metrics as skm

from lakeforge.errors import InvalidParameter, ResourceConflict
from lakeforge.monitoring import engine, tables
from lakeforge.monitoring.engine import hll, partials
from lakeforge.monitoring.engine.output import MetricTable
from lakeforge.monitoring.engine.scan import SourceTable
from lakeforge.monitoring.engine.state_store import StateStore
from lakeforge.monitoring.spec import CustomMetric, MonitorSpec

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)
QUANTILE_RANK_TOLERANCE = 0.02  # t-digest (k = 400): the estimate's rank within 2% of the asked rank


# ---- data and helpers ----

def frame(seed: int, n: int, start: datetime = START, days: int = 3, shift: float = 0.0) -> pa.Table:
    """n rows over `days` days: floats with NaN, nulls and zeros, small ints, strings, booleans, a date."""
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, days * 86_400_000_000, n)
    ts = pd.to_datetime(int(start.timestamp() * 1e6) + offsets, unit="us", utc=True)
    x = rng.normal(shift, 1, n)
    x[rng.random(n) < 0.03] = np.nan
    x_null = rng.random(n) < 0.05
    z = np.where(rng.random(n) < 0.3, 0.0, rng.exponential(2, n))
    k = rng.integers(0, 5, n)
    s = rng.choice(["a", "bb", "ccc", "dddd", "é"], n, p=[0.4, 0.3, 0.15, 0.1, 0.05]).astype(object)
    s[rng.random(n) < 0.1] = None
    b = rng.random(n) < 0.7
    d = pd.to_datetime(int(start.timestamp()) + rng.integers(0, 40, n) * 86400, unit="s").date
    return pa.table({
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "x": pa.array(x, pa.float64(), mask=x_null),
        "z": pa.array(z, pa.float64()),
        "k": pa.array(k, pa.int32(), mask=rng.random(n) < 0.02),
        "s": pa.array(s.tolist(), pa.string()),
        "b": pa.array(b, pa.bool_(), mask=rng.random(n) < 0.04),
        "d": pa.array(d, pa.date32()),
    })


def inference_frame(seed: int, n: int, problem: str, start: datetime = START, days: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    base = frame(seed, n, start, days)
    model = rng.choice(["m1", "m2"], n)
    if problem == "classification":
        label = rng.choice(["cat", "dog"], n)
        proba = np.clip(np.where(label == "dog", 0.65, 0.35) + rng.normal(0, 0.2, n), 0, 1)
        pred = np.where(proba > 0.5, "dog", "cat")
        label_arr = pa.array(label.tolist(), pa.string(), mask=rng.random(n) < 0.2)  # labels arrive late
        extra = {"prediction": pa.array(pred.tolist()), "label": label_arr, "proba": pa.array(proba)}
    else:
        label = rng.normal(10, 3, n)
        pred = label + rng.normal(0, 1, n)
        extra = {"prediction": pa.array(pred), "label": pa.array(label, mask=rng.random(n) < 0.2)}
    columns = {**{c: base.column(c) for c in base.column_names}, "model": pa.array(model.tolist()), **extra}
    return pa.table(columns)


class Monitor:
    """A monitor's private directories and metric tables, created empty as the service does."""

    def __init__(self, root: Path, source: Path, spec: MonitorSpec, baseline: Path | None = None):
        root.mkdir(parents=True, exist_ok=True)
        self.root, self.source, self.spec, self.baseline = root, source, spec, baseline
        self.profile_path, self.drift_path, self.state = root / "profile", root / "drift", root / "state"
        write_deltalake(str(self.profile_path), engine.profile_schema_for(spec).empty_table())
        write_deltalake(str(self.drift_path), engine.drift_schema_for(spec).empty_table())

    def refresh(self, **kw) -> engine.RefreshResult:
        return engine.refresh(str(self.source), self.spec, state_dir=self.state, profile_path=str(self.profile_path),
                              drift_path=str(self.drift_path), baseline=str(self.baseline) if self.baseline else None,
                              **kw)

    def profile(self) -> list[dict]:
        return DeltaTable(str(self.profile_path)).to_pyarrow_table().to_pylist()

    def drift(self) -> list[dict]:
        return DeltaTable(str(self.drift_path)).to_pyarrow_table().to_pylist()

    def versions(self) -> tuple[int, int]:
        return DeltaTable(str(self.profile_path)).version(), DeltaTable(str(self.drift_path)).version()


def rows_of(rows: list[dict], **where) -> list[dict]:
    return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def one(rows: list[dict], **where) -> dict:
    found = rows_of(rows, **where)
    assert len(found) == 1, (where, len(found))
    return found[0]


def close(a, b, rel: float = 1e-9, abs_: float = 1e-12) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def same_value(a, b, rel: float) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return close(a, b, rel=rel, abs_=0.0) or (a == b)
    return a == b


def keyed(rows: list[dict], model_col: str | None) -> dict:
    out = {}
    for r in rows:
        key = (r["window"]["start"], r["window"]["end"], r["granularity"], r.get("log_type"), r.get("drift_type"),
               r["slice_key"], r["slice_value"], r.get(model_col) if model_col else None, r["column_name"],
               (r.get("window_cmp") or {}).get("start"))
        assert key not in out, key
        out[key] = r
    return out


def assert_same_tables(a: Monitor, b: Monitor, rel: float = 1e-12) -> None:
    """Equal metric tables: ints and strings exactly, floats to `rel`; logging_table_commit_version aside
    (rows an incremental refresh did not touch keep the version they were computed from)."""
    model_col = a.spec.model_id_col
    for ra, rb in ((a.profile(), b.profile()), (a.drift(), b.drift())):
        ka, kb = keyed(ra, model_col), keyed(rb, model_col)
        assert ka.keys() == kb.keys(), (sorted(ka.keys() - kb.keys())[:3], sorted(kb.keys() - ka.keys())[:3])
        for key, row in ka.items():
            other = kb[key]
            for column, value in row.items():
                if column == "logging_table_commit_version":
                    continue
                assert same_value(value, other[column], rel), (key, column, value, other[column])


def window_of(ts: pd.Series, day: datetime) -> pd.Series:
    return (ts >= day) & (ts < day + DAY)


# ---- profile values ----

def test_profile_values_equal_exact_figures(tmp_path):
    data = frame(1, 4000)
    write_deltalake(str(tmp_path / "src"), data)
    spec = MonitorSpec(profile_type="time_series", timestamp_col="ts", granularities=("1 day",))
    monitor = Monitor(tmp_path / "m", tmp_path / "src", spec)
    result = monitor.refresh()
    assert (result.full, result.rows_read, result.windows_recomputed, result.source_version) == (True, 4000, 3, 0)
    rows = monitor.profile()
    assert result.profile_rows == len(rows) == 3 * (1 + 7)
    df = data.to_pandas()
    for i in range(3):
        day = START + i * DAY
        w = df[window_of(df.ts, day)]
        group = [r for r in rows if r["window"]["start"] == day and r["slice_key"] is None]
        assert all(r["window"]["end"] == day + DAY and r["granularity"] == "1 day" for r in group)
        assert all(r["log_type"] == tables.INPUT and r["monitor_version"] == 1 for r in group)
        table = one(group, column_name=":table")
        assert table["count"] == len(w)
        assert table["non_null_columns"] == ["ts", "x", "z", "k", "s", "b", "d"]
        types = {r["column_name"]: r["data_type"] for r in group}
        assert types == {":table": None, "ts": "timestamp", "x": "double", "z": "double", "k": "int",
                         "s": "string", "b": "boolean", "d": "date"}

        x = one(group, column_name="x")
        arr = data.filter(pa.array(window_of(df.ts, day).to_numpy())).column("x")
        nulls = arr.null_count
        nan = int(np.isnan(arr.drop_null().to_numpy()).sum())
        finite = arr.drop_null().to_numpy()
        finite = finite[~np.isnan(finite)]
        assert (x["count"], x["num_nulls"], x["num_nan"]) == (len(w), nulls, nan)
        assert close(x["percent_null"], 100 * nulls / len(w)) and close(x["percent_nan"], 100 * nan / len(w))
        assert close(x["avg"], finite.mean(), rel=1e-12)
        assert close(x["stddev"], finite.std(ddof=1), rel=1e-12)
        assert (x["min"], x["max"]) == (finite.min(), finite.max())
        assert x["quantiles"][0] == finite.min() and x["quantiles"][-1] == finite.max()
        for q, estimate in zip(tables.QUANTILES, x["quantiles"]):
            rank = np.searchsorted(np.sort(finite), estimate, side="right") / len(finite)
            assert abs(rank - q) <= QUANTILE_RANK_TOLERANCE, (q, rank)
        assert x["median"] == x["quantiles"][tables.QUANTILES.index(0.5)]
        assert abs(x["distinct_count"] - len(np.unique(finite))) <= 0.05 * len(finite)  # HLL, ~1.6% error

        z = one(group, column_name="z")
        assert z["num_zeros"] == int((w.z == 0).sum()) and close(z["percent_zeros"], 100 * (w.z == 0).mean())

        k = one(group, column_name="k")
        ks = w.k.dropna()
        assert (k["num_nulls"], k["distinct_count"]) == (int(w.k.isna().sum()), ks.nunique())
        assert close(k["avg"], ks.mean(), rel=1e-12) and close(k["stddev"], ks.std(ddof=1), rel=1e-12)
        assert (k["min"], k["max"]) == (float(ks.min()), float(ks.max()))
        assert k["quantiles"] == np.quantile(ks.to_numpy(float), tables.QUANTILES).tolist()  # few values: exact

        s = one(group, column_name="s")
        strings = w.s.dropna()
        assert (s["num_nulls"], s["distinct_count"]) == (int(w.s.isna().sum()), strings.nunique())
        assert close(s["percent_distinct"], 100 * strings.nunique() / len(w))
        counts = sorted(strings.value_counts().items(), key=lambda kv: (-kv[1], kv[0]))
        assert [(f["item"], f["count"]) for f in s["frequent_items"]] == counts[:10]
        lengths = strings.str.len()
        assert (s["min_length"], s["max_length"]) == (lengths.min(), lengths.max())
        assert close(s["avg_length"], lengths.mean(), rel=1e-12)
        assert s["avg"] is None and s["quantiles"] is None

        b = one(group, column_name="b")
        bools = w.b.dropna()
        assert b["distinct_count"] == 2 and b["num_nulls"] == int(w.b.isna().sum())
        assert {f["item"]: f["count"] for f in b["frequent_items"]} == {
            "true": int(bools.sum()), "false": int((~bools.astype(bool)).sum())}

        d = one(group, column_name="d")
        assert abs(d["distinct_count"] - w.d.nunique()) <= 1 and d["avg"] is None


def test_hll_distinct_counts_are_mergeable_and_close():
    rng = np.random.default_rng(7)
    values = rng.integers(0, 50_000, 200_000)
    idx, rank = hll.positions(hll.mix(values))
    whole = hll.per_group(np.zeros(len(values), np.int64), idx, rank, 1)[0]
    parts = [hll.per_group(np.zeros(len(p), np.int64), *hll.positions(hll.mix(p)), 1)[0]
             for p in np.array_split(values, 5)]
    merged = parts[0]
    for p in parts[1:]:
        merged = merged.merge(p)
    assert np.array_equal(merged.registers(), whole.registers())
    truth = len(np.unique(values))
    assert abs(whole.estimate() - truth) / truth < 0.05
    small = hll.per_group(np.zeros(3, np.int64), *hll.positions(hll.mix(np.array([1, 2, 3]))), 1)[0]
    assert round(small.estimate()) == 3 and small.dense is None


# ---- windows and slices ----

def test_windows_of_each_granularity_and_slices(tmp_path):
    moments = [datetime(2026, 3, 4, 10, 7, 30, tzinfo=UTC), datetime(2026, 3, 8, 23, 59, tzinfo=UTC),
               datetime(2026, 3, 9, 0, 0, tzinfo=UTC), datetime(2025, 12, 31, 23, 0, tzinfo=UTC),
               datetime(2019, 6, 1, tzinfo=UTC)]  # years back: the first refresh reads all history
    n = len(moments)
    data = pa.table({"ts": pa.array(moments, pa.timestamp("us", tz="UTC")), "v": pa.array(np.arange(n) * 1.0),
                     "region": pa.array(["eu", "us", "eu", "us", "ap"])})
    write_deltalake(str(tmp_path / "src"), data)
    grans = ("5 minutes", "1 hour", "1 day", "1 week", "2 weeks", "1 month", "1 year")
    spec = MonitorSpec(profile_type="time_series", timestamp_col="ts", granularities=grans,
                       slicing_exprs=("region", "v >= 2"))
    monitor = Monitor(tmp_path / "m", tmp_path / "src", spec)
    monitor.refresh()
    rows = [r for r in monitor.profile() if r["column_name"] == ":table" and r["slice_key"] is None]
    got = {(r["granularity"], r["window"]["start"], r["window"]["end"]) for r in rows}
    t = datetime
    expected = {
        ("5 minutes", t(2026, 3, 4, 10, 5, tzinfo=UTC), t(2026, 3, 4, 10, 10, tzinfo=UTC)),
        ("1 hour", t(2026, 3, 4, 10, tzinfo=UTC), t(2026, 3, 4, 11, tzinfo=UTC)),
        ("1 day", t(2026, 3, 8, tzinfo=UTC), t(2026, 3, 9, tzinfo=UTC)),
        ("1 week", t(2026, 3, 2, tzinfo=UTC), t(2026, 3, 9, tzinfo=UTC)),      # Monday to Monday
        ("1 week", t(2026, 3, 9, tzinfo=UTC), t(2026, 3, 16, tzinfo=UTC)),
        ("2 weeks", t(2026, 3, 2, tzinfo=UTC), t(2026, 3, 16, tzinfo=UTC)),    # epoch weeks from 1970-01-05
        ("1 month", t(2026, 3, 1, tzinfo=UTC), t(2026, 4, 1, tzinfo=UTC)),
        ("1 month", t(2025, 12, 1, tzinfo=UTC), t(2026, 1, 1, tzinfo=UTC)),
        ("1 year", t(2026, 1, 1, tzinfo=UTC), t(2027, 1, 1, tzinfo=UTC)),
        ("1 year", t(2019, 1, 1, tzinfo=UTC), t(2020, 1, 1, tzinfo=UTC)),
    }
    assert expected <= got
    assert len([g for g in got if g[0] == "1 day"]) == 5
    year_2026 = one(rows, granularity="1 year", window={"start": t(2026, 1, 1, tzinfo=UTC),
                                                        "end": t(2027, 1, 1, tzinfo=UTC)})
    assert year_2026["count"] == 3
    slices = {(r["slice_key"], r["slice_value"], r["count"]) for r in monitor.profile()
              if r["column_name"] == ":table" and r["granularity"] == "1 year"
              and r["window"]["start"] == t(2026, 1, 1, tzinfo=UTC)}
    assert slices == {(None, None, 3), ("region", "eu", 2), ("region", "us", 1), ("v >= 2", "true", 1),
                      ("v >= 2", "false", 2)}


def test_top_100_slice_values(tmp_path):
    n = 150 * 3 + 10
    values = [f"u{i:03d}" for i in range(150) for _ in range(3)] + ["u149"] * 10
    data = pa.table({"ts": pa.array([START] * n, pa.timestamp("us", tz="UTC")), "user": pa.array(values),
                     "v": pa.array(np.ones(n))})
    write_deltalake(str(tmp_path / "src"), data)
    spec = MonitorSpec(profile_type="time_series", timestamp_col="ts", granularities=("1 day",),
                       slicing_exprs=("user",))
    monitor = Monitor(tmp_path / "m", tmp_path / "src", spec)
    monitor.refresh()
    shown = sorted(r["slice_value"] for r in monitor.profile() if r["slice_key"] == "user" and r["column_name"] == "v")
    assert len(shown) == 100 and "u149" in shown  # the most frequent, then ties by value
    assert shown[:99] == [f"u{i:03d}" for i in range(99)]


# ---- drift ----

def test_drift_rows_consecutive_and_baseline(tmp_path):
    days = [frame(10 + i, 1500, START + i * DAY, days=1, shift=0.8 * (i == 2)) for i in range(3)]
    for part in days:
        write_deltalake(str(tmp_path / "src"), part, mode="append")
    write_deltalake(str(tmp_path / "base"), frame(99, 3000, START - 7 * DAY, days=7))
    spec = MonitorSpec(profile_type="time_series", timestamp_col="ts", granularities=("1 day",),
                       slicing_exprs=("b",))
    monitor = Monitor(tmp_path / "m", tmp_path / "src", spec, baseline=tmp_path / "base")
    monitor.refresh()
    drift = monitor.drift()
    whole = [r for r in drift if r["slice_key"] is None]
    consecutive = rows_of(whole, drift_type=tables.CONSECUTIVE, column_name="x")
    assert sorted(r["window"]["start"] for r in consecutive) == [START + DAY, START + 2 * DAY]
    assert all(r["window_cmp"]["start"] == r["window"]["start"] - DAY for r in consecutive)
    baseline = rows_of(whole, drift_type=tables.BASELINE_DRIFT, column_name="x")
    assert len(baseline) == 3
    assert all(r["window_cmp"]["start"] >= START - 7 * DAY and r["window_cmp"]["end"] < START for r in baseline)
    calm, shifted = (one(consecutive, window={"start": START + d, "end": START + d + DAY}) for d in (DAY, 2 * DAY))
    assert shifted["ks_test"]["statistic"] > 0.2 > calm["ks_test"]["statistic"]
    assert shifted["ks_test"]["pvalue"] < 1e-6 and shifted["js_distance"] > calm["js_distance"]
    assert shifted["wasserstein_distance"] > 0.5 and shifted["population_stability_index"] > 0.1
    assert shifted["chi_squared_test"] is None and shifted["tv_distance"] is None

    # counts, averages and categorical tests against the exact figures of the two windows
    df = pa.concat_tables(days).to_pandas()
    cur, prev = df[window_of(df.ts, START + 2 * DAY)], df[window_of(df.ts, START + DAY)]
    assert shifted["count_delta"] == len(cur) - len(prev)
    assert close(shifted["avg_delta"], cur.x.mean() - prev.x.mean(), rel=1e-9)
    s = one(whole, drift_type=tables.CONSECUTIVE, column_name="s", window={"start": START + 2 * DAY,
                                                                         "end": START + 3 * DAY})
    a, b = prev.s.value_counts(), cur.s.value_counts()
    table = pd.concat([a, b], axis=1).fillna(0).to_numpy().T
    chi2, p, _, _ = chi2_contingency(table, correction=False)
    assert close(s["chi_squared_test"]["statistic"], chi2, rel=1e-9) and close(s["chi_squared_test"]["pvalue"], p,
                                                                                 rel=1e-6)
    pa_, pb = a / a.sum(), b / b.sum()
    diff = (pa_ - pb).abs()
    assert close(s["tv_distance"], diff.sum() / 2, rel=1e-9) and close(s["l_infinity_distance"], diff.max(), rel=1e-9)
    assert close(s["percent_null_delta"], 100 * (cur.s.isna().mean() - prev.s.isna().mean()), rel=1e-9)
    table_row = one(whole, drift_type=tables.CONSECUTIVE, column_name=":table",
                    window={"start": START + 2 * DAY, "end": START + 3 * DAY})
    assert table_row["non_null_columns_delta"] == {"added": 0, "missing": 0}
    # slices are compared slice by slice; baseline profile rows are in the profile table
    assert rows_of(drift, slice_key="b", slice_value="true", drift_type=tables.BASELINE_DRIFT, column_name="x")
    base_rows = rows_of(monitor.profile(), log_type=tables.BASELINE, column_name=":table", slice_key=None)
    assert len(base_rows) == 1 and base_rows[0]["count"] == 3000


# ---- model quality ----

@pytest.mark.parametrize("problem", ["classification", "regression"])
def test_model_quality_per_window_and_model(tmp_path, problem):
    data = inference_frame(3, 3000, problem)
    write_deltalake(str(tmp_path / "src"), data)
    spec = MonitorSpec(profile_type="inference_log", timestamp_col="ts", granularities=("1 day",),
                       model_id_col="model", prediction_col="prediction", label_col="label",
                       prediction_proba_col="proba" if problem == "classification" else None, problem_type=problem)
    monitor = Monitor(tmp_path / "m", tmp_path / "src", spec)
    monitor.refresh()
    rows = rows_of(monitor.profile(), column_name=":table", slice_key=None)
    assert {r["model"] for r in rows} == {None, "m1", "m2"}
    df = data.to_pandas()
    for r in rows:
        w = df[window_of(df.ts, r["window"]["start"])]
        if r["model"] is not None:
            w = w[w.model == r["model"]]
        labeled = w[w.label.notna()]
        assert r["count"] == len(w) and r["num_labeled"] == len(labeled)
        if problem == "classification":
            assert close(r["accuracy_score"], skm.accuracy_score(labeled.label, labeled.prediction))
            assert close(r["f1_score"]["macro"], skm.f1_score(labeled.label, labeled.prediction, average="macro"))
            assert close(r["roc_auc_score"], skm.roc_auc_score(labeled.label == "dog", labeled.proba), abs_=2e-3)
            assert r["confusion_matrix"]["counts"] == skm.confusion_matrix(
                labeled.label, labeled.prediction, labels=["cat", "dog"]).tolist()
        else:
            assert close(r["mean_squared_error"], skm.mean_squared_error(labeled.label, labeled.prediction))
            assert close(r["r2_score"], skm.r2_score(labeled.label, labeled.prediction))
            assert close(r["mean_absolute_error"], skm.mean_absolute_error(labeled.label, labeled.prediction))
    column_rows = rows_of(monitor.profile(), column_name="x", model="m1", slice_key=None)
    assert len(column_rows) == 3 and all(r["num_labeled"] is None for r in column_rows)


# ---- custom metrics ----

def test_custom_metrics(tmp_path):
    days = [frame(20 + i, 800, START + i * DAY, days=1) for i in range(2)]
    for part in days:
        write_deltalake(str(tmp_path / "src"), part, mode="append")
    metrics = (
        CustomMetric("aggregate", "squared_avg", ("z",), "avg(`{{input_column}}` * `{{input_column}}`)", "double"),
        CustomMetric("aggregate", "big_z", (":table",), "sum(CASE WHEN z > 3 THEN 1 ELSE 0 END)", "bigint"),
        CustomMetric("derived", "root_squared_avg", ("z",), "sqrt(squared_avg)", "double"),
        CustomMetric("drift", "squared_avg_delta", ("z",),
                     "{{current_df}}.squared_avg - {{base_df}}.squared_avg", "double"),
    )
    spec = MonitorSpec(profile_type="time_series", timestamp_col="ts", granularities=("1 day",),
                       slicing_exprs=("s",), custom_metrics=metrics)
    monitor = Monitor(tmp_path / "m", tmp_path / "src", spec)
    monitor.refresh()
    df = pa.concat_tables(days).to_pandas()
    profile = monitor.profile()
    for i in range(2):
        w = df[window_of(df.ts, START + i * DAY)]
        z = one(profile, column_name="z", slice_key=None, window={"start": START + i * DAY, "end": START + (i + 1) * DAY})
        assert close(z["squared_avg"], (w.z ** 2).mean(), rel=1e-9)
        assert close(z["root_squared_avg"], math.sqrt((w.z ** 2).mean()), rel=1e-9)
        table = one(profile, column_name=":table", slice_key=None,
                    window={"start": START + i * DAY, "end": START + (i + 1) * DAY})
        assert table["big_z"] == int((w.z > 3).sum()) and table["squared_avg"] is None
        sliced = one(profile, column_name="z", slice_key="s", slice_value="bb",
                     window={"start": START + i * DAY, "end": START + (i + 1) * DAY})
        assert close(sliced["squared_avg"], (w[w.s == "bb"].z ** 2).mean(), rel=1e-9)
    drift = one(monitor.drift(), column_name="z", slice_key=None, drift_type=tables.CONSECUTIVE)
    w0, w1 = (df[window_of(df.ts, START + i * DAY)] for i in range(2))
    assert close(drift["squared_avg_delta"], (w1.z ** 2).mean() - (w0.z ** 2).mean(), rel=1e-9)


def test_custom_drift_metric_per_model(tmp_path):
    for i in range(2):
        write_deltalake(str(tmp_path / "src"), inference_frame(25 + i, 600, "regression", START + i * DAY, 1),
                        mode="append")
    write_deltalake(str(tmp_path / "base"), inference_frame(27, 600, "regression", START - 7 * DAY, 7)
                    .drop_columns(["model"]))  # a baseline without model ids: compared across all models
    metrics = (CustomMetric("aggregate", "mean_error", (":table",), "avg({{prediction_col}} - {{label_col}})", "double"),
               CustomMetric("drift", "mean_error_delta", (":table",),
                            "{{current_df}}.mean_error - {{base_df}}.mean_error", "double"))
    spec = MonitorSpec(profile_type="inference_log", timestamp_col="ts", granularities=("1 day",), model_id_col="model",
                       prediction_col="prediction", label_col="label", problem_type="regression", custom_metrics=metrics)
    monitor = Monitor(tmp_path / "m", tmp_path / "src", spec, baseline=tmp_path / "base")
    monitor.refresh()
    profile = monitor.profile()

    def value(model, start, log_type=tables.INPUT):
        return one(profile, column_name=":table", slice_key=None, model=model, log_type=log_type,
                   **({"window": {"start": start, "end": start + DAY}} if log_type == tables.INPUT else {}))["mean_error"]

    for model in ("m1", "m2", None):
        consecutive = one(monitor.drift(), column_name=":table", slice_key=None, model=model,
                          drift_type=tables.CONSECUTIVE)
        assert close(consecutive["mean_error_delta"], value(model, START + DAY) - value(model, START), rel=1e-9)
        baseline = one(monitor.drift(), column_name=":table", slice_key=None, model=model,
                       drift_type=tables.BASELINE_DRIFT, window={"start": START, "end": START + DAY})
        assert close(baseline["mean_error_delta"], value(model, START) - value(None, None, tables.BASELINE), rel=1e-9)


# ---- incremental == full ----

SPECS = {
    "time_series": lambda: MonitorSpec(
        profile_type="time_series", timestamp_col="ts", granularities=("1 hour", "1 day", "1 week"),
        slicing_exprs=("s", "k >= 2"),
        custom_metrics=(CustomMetric("aggregate", "z_max", ("z",), "max(z)", "double"),)),
    "inference_log": lambda: MonitorSpec(
        profile_type="inference_log", timestamp_col="ts", granularities=("1 day",), model_id_col="model",
        prediction_col="prediction", label_col="label", prediction_proba_col="proba", problem_type="classification",
        slicing_exprs=("b",)),
}


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_incremental_refreshes_equal_full_ones(tmp_path, kind):
    make = (lambda seed, n, start, days: inference_frame(seed, n, "classification", start, days)) \
        if kind == "inference_log" else frame
    src = tmp_path / "src"
    for i in range(3):
        write_deltalake(str(src), make(30 + i, 700, START + i * DAY, 1), mode="append")
    write_deltalake(str(tmp_path / "base"), make(40, 600, START - 7 * DAY, 7))
    spec = SPECS[kind]()
    incremental = Monitor(tmp_path / "inc", src, spec, baseline=tmp_path / "base")
    first = incremental.refresh()
    assert first.full

    def check(expect_windows: int | None = None) -> None:
        result = incremental.refresh()
        assert not result.full
        if expect_windows is not None:
            assert result.windows_recomputed == expect_windows
        full = Monitor(tmp_path / f"full{check.n}", src, spec, baseline=tmp_path / "base")
        check.n += 1
        full.refresh()
        assert full.refresh(full=True).full  # twice: a full refresh over existing state is the same
        assert_same_tables(incremental, full)
    check.n = 0

    write_deltalake(str(src), make(50, 300, START + 3 * DAY, 1), mode="append")  # a new day
    check()
    DeltaTable(str(src)).delete("s = 'ccc'")                                     # a delete
    check()
    DeltaTable(str(src)).update(updates={"z": "z * 2"}, predicate="k = 1")       # an update
    check()
    late = make(60, 1, START, 1)                                                 # one late row
    late = late.set_column(0, "ts", pa.array([START + DAY + timedelta(hours=5)], pa.timestamp("us", tz="UTC")))
    write_deltalake(str(src), late, mode="append")
    granularities = len(spec.granularities)
    check(expect_windows=granularities)                                          # only its windows
    versions = incremental.versions()
    nothing = incremental.refresh()
    assert (nothing.windows_recomputed, nothing.rows_read, nothing.full) == (0, 0, False)
    assert incremental.versions() == versions  # no change, no commit


def test_emptied_window_keeps_count_zero_rows(tmp_path):
    src = tmp_path / "src"
    for i in range(3):
        write_deltalake(str(src), frame(70 + i, 300, START + i * DAY, 1), mode="append")
    spec = MonitorSpec(profile_type="time_series", timestamp_col="ts", granularities=("1 day",))
    monitor = Monitor(tmp_path / "m", src, spec)
    monitor.refresh()
    DeltaTable(str(src)).delete(f"ts >= '{(START + DAY).isoformat()}' AND ts < '{(START + 2 * DAY).isoformat()}'")
    result = monitor.refresh()
    assert not result.full and result.windows_recomputed == 1
    emptied = rows_of(monitor.profile(), window={"start": START + DAY, "end": START + 2 * DAY})
    assert {r["column_name"] for r in emptied} == {":table", "ts", "x", "z", "k", "s", "b", "d"}
    assert all(r["count"] == 0 and r["slice_key"] is None for r in emptied)
    assert one(emptied, column_name="x")["avg"] is None and one(emptied, column_name="x")["percent_null"] is None
    monitor.refresh(full=True)  # a full refresh over the same state keeps the window it knows
    assert len(rows_of(monitor.profile(), window={"start": START + DAY, "end": START + 2 * DAY})) == 8


# ---- failure, cancellation, configuration change ----

def test_failed_refresh_leaves_tables_and_state(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write_deltalake(str(src), frame(80, 500), mode="append")
    spec = MonitorSpec(profile_type="time_series", timestamp_col="ts", granularities=("1 day",))
    monitor = Monitor(tmp_path / "m", src, spec)
    monitor.refresh()
    before = (monitor.profile(), monitor.drift(), (monitor.state / "manifest.pkl").read_bytes())
    state_files = sorted(p.name for p in monitor.state.iterdir())
    write_deltalake(str(src), frame(81, 500, START + 3 * DAY, 1), mode="append")

    real = MetricTable.replace

    def fail_on_drift(self, rows):  # fault injection: the drift table's write fails after the profile's
        if self.path == str(monitor.drift_path):
            raise OSError("disk full")
        real(self, rows)

    monkeypatch.setattr(MetricTable, "replace", fail_on_drift)
    with pytest.raises(OSError, match="disk full"):
        monitor.refresh()
    monkeypatch.undo()
    assert (monitor.profile(), monitor.drift(), (monitor.state / "manifest.pkl").read_bytes()) == before
    assert sorted(p.name for p in monitor.state.iterdir()) == state_files
    assert not monitor.refresh().full  # and the next refresh picks up from the old state
    assert len(rows_of(monitor.profile(), column_name=":table")) == 4


def test_cancelled_refresh_leaves_tables_and_state(tmp_path):
    src = tmp_path / "src"
    write_deltalake(str(src), frame(90, 500), mode="append")
    spec = MonitorSpec(profile_type="time_series", timestamp_col="ts", granularities=("1 day",))
    monitor = Monitor(tmp_path / "m", src, spec)
    monitor.refresh()
    write_deltalake(str(src), frame(91, 500, START + 3 * DAY, 1), mode="append")
    versions, manifest = monitor.versions(), (monitor.state / "manifest.pkl").read_bytes()
    seen: list[float] = []
    with pytest.raises(engine.RefreshCancelled):
        monitor.refresh(progress=lambda f, m: seen.append(f), cancelled=lambda: bool(seen) and seen[-1] >= 0.75)
    assert monitor.versions() == versions and (monitor.state / "manifest.pkl").read_bytes() == manifest
    assert seen == sorted(seen)
    fractions: list[float] = []
    monitor.refresh(progress=lambda f, m: fractions.append(f))
    assert fractions[0] == 0.0 and fractions[-1] == 1.0


def test_new_monitor_version_recomputes(tmp_path):
    src = tmp_path / "src"
    write_deltalake(str(src), frame(95, 400), mode="append")
    spec = MonitorSpec(profile_type="time_series", timestamp_col="ts", granularities=("1 day",))
    monitor = Monitor(tmp_path / "m", src, spec)
    monitor.refresh()
    assert not monitor.refresh().full
    monitor.spec = MonitorSpec(profile_type="time_series", timestamp_col="ts", granularities=("1 day",),
                               monitor_version=2)
    result = monitor.refresh()
    assert result.full and result.windows_recomputed == 3
    assert {r["monitor_version"] for r in monitor.profile()} == {2}


def test_one_refresh_at_a_time_and_foreign_writes_force_a_full_refresh(tmp_path):
    src = tmp_path / "src"
    write_deltalake(str(src), frame(97, 300), mode="append")
    spec = MonitorSpec(profile_type="time_series", timestamp_col="ts", granularities=("1 day",))
    monitor = Monitor(tmp_path / "m", src, spec)
    monitor.refresh()
    with StateStore(monitor.state).lock(), pytest.raises(ResourceConflict, match="Another refresh"):
        monitor.refresh()
    rows = DeltaTable(str(monitor.profile_path)).to_pyarrow_table()
    write_deltalake(str(monitor.profile_path), rows.slice(0, 3), mode="overwrite")  # someone else wrote
    assert monitor.refresh().full
    assert len(monitor.profile()) == rows.num_rows


def test_missing_column_is_invalid_parameter(tmp_path):
    write_deltalake(str(tmp_path / "src"), frame(98, 50))
    spec = MonitorSpec(profile_type="time_series", timestamp_col="event_time", granularities=("1 day",))
    with pytest.raises(InvalidParameter, match="timestamp_col column 'event_time' not found"):
        Monitor(tmp_path / "m", tmp_path / "src", spec).refresh()


def test_bad_slicing_expression_is_invalid_parameter(tmp_path):
    write_deltalake(str(tmp_path / "src"), frame(96, 50))
    spec = MonitorSpec(profile_type="time_series", timestamp_col="ts", granularities=("1 day",),
                       slicing_exprs=("no_such_column > 1",))
    monitor = Monitor(tmp_path / "m", tmp_path / "src", spec)
    with pytest.raises(InvalidParameter, match="Slicing expression"):
        monitor.refresh()
    assert not (monitor.state / "manifest.pkl").exists()


# ---- distinct values past the value-count cap ----

def test_categorical_registers_past_the_value_cap_match_all_values(tmp_path):
    """Exact value counts leave a categorical column's HLL registers to be computed from them when a merge
    (or a file on its own) goes past VALUE_CAP values: the registers are those of every value seen, and
    incremental refreshes equal full ones."""
    src = tmp_path / "src"

    def day_of(seed: int, values: list[str]) -> pa.Table:
        rng = np.random.default_rng(seed)
        n = len(values)
        ts = int(START.timestamp() * 1e6) + rng.integers(0, 86_400_000_000, n)
        return pa.table({"ts": pa.array(ts, pa.timestamp("us", tz="UTC")), "s": pa.array(values, pa.string())})

    batches = [[f"v{j}" for j in range(700)] * 2, [f"v{j}" for j in range(500, 1200)],  # merged: past the cap
               [f"w{j}" for j in range(1300)]]                                             # one file past it
    spec = MonitorSpec(profile_type="time_series", timestamp_col="ts", granularities=("1 day",))
    incremental = Monitor(tmp_path / "inc", src, spec)
    for i, values in enumerate(batches):
        write_deltalake(str(src), day_of(i, values), mode="append")
        incremental.refresh()
        full = Monitor(tmp_path / f"full{i}", src, spec)
        full.refresh()
        assert_same_tables(incremental, full)
    seen = sorted({v for values in batches for v in values})
    store = StateStore(incremental.state)
    window = store.load(store.manifest().windows[("1 day", int(START.timestamp() * 1e6))])
    state = window[(None, None, None)]
    column = 1  # ts, s
    assert state.counts[column].truncated and state.hll[column] is not None
    con = duckdb.connect()
    expect = partials.value_registers(con, seen)
    np.testing.assert_array_equal(state.hll[column].registers(), expect.registers())
    row = one(incremental.profile(), column_name="s", log_type=tables.INPUT)
    assert row["distinct_count"] == round(expect.estimate())
    assert abs(row["distinct_count"] - len(seen)) <= 0.05 * len(seen)


# ---- reading the table ----

def test_files_read_as_a_delta_dataset_would(tmp_path):
    """Partition columns take the file's partition value (nulls included), columns added later read as nulls
    in older files, and types are the table's: as deltalake's pyarrow dataset gives them."""
    path = str(tmp_path / "t")
    first = frame(11, 40).drop_columns(["x"])  # (NaN: unequal to itself)
    first = first.append_column("part", pa.array(["x y", None, "z/w", "x y"] * 10))
    write_deltalake(path, first.append_column("n", pa.array(range(40), pa.int32())), partition_by=["part", "n"])
    later = frame(12, 5).drop_columns(["x"]).append_column("part", pa.array(["x y"] * 5))
    later = later.append_column("n", pa.array([1] * 5, pa.int32())).append_column("added", pa.array([1.5] * 5))
    write_deltalake(path, later, mode="append", schema_mode="merge")
    source = SourceTable(path)
    ours = pa.concat_tables([source._columns(f, list(source.schema)) for f in sorted(source.files)])
    dataset = DeltaTable(path).to_pyarrow_dataset()
    theirs = pa.concat_tables([f.to_table(schema=dataset.schema)
                               for f in sorted(dataset.get_fragments(), key=lambda f: f.path)])
    assert ours.schema == theirs.schema and ours.equals(theirs)
    assert source.count() == 45
    # files alone do not give the rows of a table with deletion vectors: refused, as the dataset does
    write_deltalake(str(tmp_path / "dv"), frame(13, 5), configuration={"delta.enableDeletionVectors": "true"})
    with pytest.raises(DeltaProtocolError, match="deletionVectors"):
        SourceTable(str(tmp_path / "dv"))


def test_engine_import_leaves_heavy_modules_out():
    """scipy.stats (small-sample KS p-values), sqlglot (slices, custom metrics) and pyarrow.dataset stay
    unimported until a refresh needs them: tens of MB each."""
    code = ("import sys, lakeforge.monitoring.engine; "
            "print(sorted(m for m in ('scipy.stats', 'sqlglot', 'pyarrow.dataset') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- snapshots ----

def test_snapshot_profiles_the_whole_table_each_refresh(tmp_path):
    src = tmp_path / "src"
    write_deltalake(str(src), frame(100, 600), mode="append")
    write_deltalake(str(tmp_path / "base"), frame(101, 600))
    spec = MonitorSpec(profile_type="snapshot")
    monitor = Monitor(tmp_path / "m", src, spec, baseline=tmp_path / "base")
    t1, t2 = datetime(2026, 4, 1, 12, tzinfo=UTC), datetime(2026, 4, 2, 12, tzinfo=UTC)
    monitor.refresh(now=t1)
    write_deltalake(str(src), frame(102, 400, shift=1.0), mode="append")
    result = monitor.refresh(now=t2)
    assert result.full and result.rows_read == 1000
    tables_rows = rows_of(monitor.profile(), column_name=":table", slice_key=None, log_type=tables.INPUT)
    assert sorted((r["window"]["start"], r["window"]["end"], r["count"]) for r in tables_rows) == [
        (t1, t1, 600), (t2, t2, 1000)]
    assert all(r["granularity"] == "snapshot" for r in tables_rows)
    df = pa.concat_tables([frame(100, 600), frame(102, 400, shift=1.0)]).column("x").drop_null().to_numpy()
    x = one(monitor.profile(), column_name="x", log_type=tables.INPUT, window={"start": t2, "end": t2})
    assert close(x["avg"], df[~np.isnan(df)].mean(), rel=1e-12)
    consecutive = one(monitor.drift(), column_name="x", drift_type=tables.CONSECUTIVE)
    assert consecutive["window"]["start"] == t2 and consecutive["window_cmp"]["start"] == t1
    assert len(rows_of(monitor.drift(), column_name="x", drift_type=tables.BASELINE_DRIFT)) == 2
