"""Monitoring statistics checked against scipy and scikit-learn on the same data: drift tests and
distances (engine/stats.py), model quality (engine/quality.py), custom metrics (engine/custom.py) and
config validation (engine/validation.py). Pure computation: no server.

Tolerances for t-digest based drift (k=200, the sketch the engine keeps per column and window):
datasketches' t-digest CDF is within about 1e-3 in rank of the exact empirical CDF (mean 1e-4), and the
KS points are 2 x 512 quantiles, denser in the tails, so the KS statistic is checked to 0.01 (brief:
0.01-0.02); bin probabilities move by about 1e-3 per bin (PSI to 0.005; JS distance, a square root
that magnifies small divergences, to 0.01); Wasserstein to 1% plus 0.005 standard deviations
(interpolation between centroids, sparse in the tails). Over 8 seeds x 7 distributions the worst
errors were about 0.37 of these tolerances (KS, PSI, JS) and 0.06 (Wasserstein). Exact paths (value
counts, categories, quality counts) are checked to 1e-12 or exactly.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import replace

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from datasketches import tdigest_double
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon
from sklearn import metrics as skm

from lakeforge.errors import InvalidParameter
from lakeforge.monitoring.engine import custom, stats
from lakeforge.monitoring.engine.exactsum import exact_square_sum, exact_sum, to_float
from lakeforge.monitoring.engine.quality import QualityState
from lakeforge.monitoring.engine.validation import validate
from lakeforge.monitoring.spec import CustomMetric, MonitorSpec

RNG = np.random.default_rng(20261107)


def digest(values: np.ndarray, parts: int = 1) -> tdigest_double:
    """A t-digest as the engine builds it: per batch, merged."""
    out = tdigest_double(200)
    for chunk in np.array_split(values, parts):
        part = tdigest_double(200)
        part.update(chunk)
        out.merge(part)
    return out


def exact_bins(ref: np.ndarray, cur: np.ndarray, method: str = "linear") -> tuple[np.ndarray, np.ndarray]:
    """Bin probabilities on the exact reference ventiles, right-closed bins, with numpy."""
    edges = np.unique(np.quantile(ref, stats.BIN_RANKS, method=method))
    p = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=len(edges) + 1) / len(ref)
    q = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=len(edges) + 1) / len(cur)
    return p, q


def psi_formula(p: np.ndarray, q: np.ndarray) -> float:
    p, q = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    return float(np.sum((q - p) * np.log(q / p)))


# ---------------------------------------------------------------- numeric drift (t-digest)

CONTINUOUS = {
    "same normal, 50k": lambda: (RNG.normal(size=50_000), RNG.normal(size=50_000)),
    "mean shift 0.25 sd, 100k": lambda: (RNG.normal(size=100_000), RNG.normal(0.25, 1, size=100_000)),
    "small shift, 10k": lambda: (RNG.normal(size=10_000), RNG.normal(0.05, 1, size=10_000)),
    "scale x1.5, 50k": lambda: (RNG.normal(size=50_000), RNG.normal(0, 1.5, size=50_000)),
    "lognormal shift, 100k": lambda: (RNG.lognormal(size=100_000), RNG.lognormal(0.25, size=100_000)),
    "unequal sizes 100k/5k": lambda: (RNG.normal(size=100_000), RNG.normal(0.1, 1, size=5_000)),
    "uniform vs beta, 20k": lambda: (RNG.uniform(size=20_000), RNG.beta(2, 2, size=20_000)),
}


@pytest.mark.parametrize("case", sorted(CONTINUOUS))
def test_numeric_drift_matches_scipy_within_tdigest_error(case):
    ref, cur = CONTINUOUS[case]()
    got = stats.numeric_drift(digest(ref, parts=4), digest(cur, parts=3), len(ref), len(cur))

    ks = sps.ks_2samp(ref, cur, method="asymp")
    assert abs(got["ks_test"]["statistic"] - ks.statistic) <= 0.01
    # The p-value is the asymptotic two-sided one for our statistic, n*m/(n+m) effective size (scipy's
    # kstwo.sf, or its limit beyond 10,000: within 3%) ...
    effective = round(len(ref) * len(cur) / (len(ref) + len(cur)))
    scipy_p = float(sps.kstwo.sf(got["ks_test"]["statistic"], effective))
    if effective <= 10_000:
        assert got["ks_test"]["pvalue"] == pytest.approx(scipy_p, rel=1e-9, abs=1e-300)
    elif scipy_p > 1e-10:
        assert got["ks_test"]["pvalue"] == pytest.approx(scipy_p, rel=0.03)
    else:  # the far tail, where the limit may be off by a small factor: both are "zero"
        assert got["ks_test"]["pvalue"] < 1e-9
    # ... so it lies between scipy's p-values at the ends of the statistic's tolerance band.
    low, high = (float(sps.kstwo.sf(ks.statistic + d, effective)) for d in (0.01, -0.01))
    assert min(low * 0.97, 1e-9) <= got["ks_test"]["pvalue"] <= high * 1.03 + 1e-12

    spread = float(np.std(ref))
    assert got["wasserstein_distance"] == pytest.approx(sps.wasserstein_distance(ref, cur), rel=0.01,
                                                        abs=0.005 * spread)
    p, q = exact_bins(ref, cur)
    assert got["population_stability_index"] == pytest.approx(psi_formula(p, q), abs=0.005)
    assert got["js_distance"] == pytest.approx(float(jensenshannon(p, q, base=2)), abs=0.01)


def test_numeric_psi_and_js_are_the_formulas_on_the_binned_probabilities():
    ref, cur = RNG.normal(size=30_000), RNG.normal(0.3, 1.2, size=20_000)
    rd, cd = digest(ref), digest(cur)
    got = stats.numeric_drift(rd, cd, len(ref), len(cur))
    points = np.unique(np.concatenate([np.quantile(ref, np.linspace(0, 1, 4001))]))
    edges = np.unique(np.interp(stats.BIN_RANKS, stats.cdf(rd, points), points))
    p, q = stats.bin_probabilities(rd, cd, edges)
    assert len(p) == 20 and p.sum() == pytest.approx(1) and q.sum() == pytest.approx(1)
    np.testing.assert_allclose(p, 0.05, atol=0.003)  # ventiles of the reference
    assert stats.js_distance(p, q) == pytest.approx(float(jensenshannon(p, q, base=2)), rel=1e-12)
    assert stats.psi(p, q) == pytest.approx(psi_formula(p, q), rel=1e-12)
    assert got["js_distance"] == pytest.approx(float(jensenshannon(p, q, base=2)), abs=2e-3)


def test_numeric_drift_constant_columns():
    same = stats.numeric_drift(digest(np.full(1000, 2.0)), digest(np.full(500, 2.0)), 1000, 500)
    assert same == {"ks_test": {"statistic": 0.0, "pvalue": 1.0}, "wasserstein_distance": 0.0,
                    "population_stability_index": 0.0, "js_distance": 0.0}
    ref, cur = np.full(1000, 2.0), np.full(500, 3.5)
    moved = stats.numeric_drift(digest(ref), digest(cur), 1000, 500)
    assert moved["ks_test"]["statistic"] == sps.ks_2samp(ref, cur).statistic == 1.0
    assert moved["wasserstein_distance"] == pytest.approx(sps.wasserstein_distance(ref, cur)) == 1.5
    assert moved["js_distance"] == pytest.approx(1.0)
    assert moved["population_stability_index"] == pytest.approx(psi_formula(*exact_bins(ref, cur)))
    # A constant reference against a spread current: everything lands on one side of the one edge.
    spread = RNG.normal(2.0, 1.0, 5000)
    got = stats.numeric_drift(digest(ref), digest(spread), 1000, 5000)
    assert got["ks_test"]["statistic"] == pytest.approx(sps.ks_2samp(ref, spread).statistic, abs=0.01)
    assert got["wasserstein_distance"] == pytest.approx(sps.wasserstein_distance(ref, spread), rel=0.02)


def test_numeric_drift_empty_side_is_all_none():
    full, empty = digest(RNG.normal(size=100)), tdigest_double(200)
    none = {"ks_test": None, "wasserstein_distance": None, "population_stability_index": None, "js_distance": None}
    assert stats.numeric_drift(full, empty, 100, 0) == none
    assert stats.numeric_drift(empty, full, 0, 100) == none
    assert stats.numeric_drift(full, full, 100, 0) == none
    assert stats.numeric_drift_exact({}, {1.0: 3}) == none


def test_numeric_drift_is_deterministic():
    ref, cur = RNG.normal(size=20_000), RNG.normal(0.2, 1, size=20_000)
    first = stats.numeric_drift(digest(ref, 5), digest(cur, 2), len(ref), len(cur))
    again = stats.numeric_drift(digest(ref, 5), digest(cur, 2), len(ref), len(cur))
    assert first == again
    # as window states keep them: serialized
    assert stats.numeric_drift(digest(ref, 5).serialize(), digest(cur, 2).serialize(), len(ref), len(cur)) == first


def _crafted_digest(lo: float, hi: float, means: np.ndarray, weights: np.ndarray) -> bytes:
    """A serialized t-digest with the given centroids (first and last not at the minimum and maximum, ties)."""
    head = struct.pack("<BBBHBH", 2, 1, 20, 200, 0, 0) + struct.pack("<II", len(means), 0) + struct.pack("<dd", lo, hi)
    return head + b"".join(struct.pack("<dQ", m, w) for m, w in zip(means, weights))


def _digests_of_every_shape(rng) -> list[bytes]:
    out = []
    for size in (1, 2, 3, 10, 300, 5000, 60_000):
        for values in (rng.normal(size=size), rng.integers(0, 6, size).astype(float), rng.lognormal(size=size) ** 3,
                       np.full(size, 3.0)):
            out.append(digest(values, parts=1 + size % 3).serialize())
    merged = tdigest_double(200)
    for part in range(12):  # the engine's fold: deserialize, merge, serialize
        one = digest(rng.normal(part % 4, 1, size=int(rng.integers(1, 20_000))))
        merged = tdigest_double.deserialize(merged.serialize())
        merged.merge(one)
        out.append(merged.serialize())
    for n in (2, 3, 17):
        means = np.sort(rng.normal(size=n))
        means[1] = means[0]  # a tie
        weights = rng.integers(1, 40, n)
        out.append(_crafted_digest(means[0] - 1.0, means[-1] + 0.5, means, weights))
        out.append(_crafted_digest(means[0], means[-1], means, np.ones(n, np.int64)))
    return out


def test_digest_table_ranks_and_quantiles_are_datasketches_bit_for_bit():
    rng = np.random.default_rng(7)
    ranks = np.concatenate([stats.GRID_RANKS, rng.uniform(0, 1, 200), [0.0, 1e-9, 0.5, 1 - 1e-9, 1.0]])
    for data in _digests_of_every_shape(rng):
        native, table = tdigest_double.deserialize(data), stats.digest_table(data)
        means = table.means
        at = np.unique(np.concatenate([means, np.nextafter(means, np.inf), np.nextafter(means, -np.inf),
                                       [table.lo, table.hi], np.nextafter([table.lo, table.hi], [-np.inf, np.inf]),
                                       rng.uniform(table.lo - 1, table.hi + 1, 200)]))
        np.testing.assert_array_equal(table.rank(at), [native.get_rank(float(v)) for v in at])
        np.testing.assert_array_equal(table.quantiles(ranks), [native.get_quantile(float(r)) for r in ranks])
    assert stats.digest_table(tdigest_double(200)) is None


def test_numeric_drift_reads_the_digest_cdf_as_datasketches_does():
    ref, cur = RNG.normal(size=30_000), RNG.normal(0.3, 1.2, size=20_000)
    rd, cd = digest(ref, 3), digest(cur, 2)
    points = np.unique(np.concatenate([np.quantile(ref, np.linspace(0, 1, 301)), [ref.min() - 1, cur.max() + 1]]))
    for d in (rd, cd):
        inside = (points >= d.get_min_value()) & (points < d.get_max_value())
        expect = np.where(points >= d.get_max_value(), 1.0, 0.0)
        expect[inside] = d.get_cdf(np.nextafter(points[inside], np.inf).tolist())[:-1]
        np.testing.assert_array_equal(stats.cdf(d, points), expect)


# ---------------------------------------------------------------- numeric drift (exact counts)

DISCRETE = {
    "integers 0-9 vs 0-11": lambda: (RNG.integers(0, 10, 5000), RNG.integers(0, 12, 7000)),
    "binary 0.3 vs 0.4": lambda: (RNG.binomial(1, 0.3, 4000), RNG.binomial(1, 0.4, 3000)),
    "poisson 3 vs 3.2": lambda: (RNG.poisson(3, 20_000), RNG.poisson(3.2, 20_000)),
    "two constants": lambda: (np.full(10, 2), np.full(5, 3)),
}


@pytest.mark.parametrize("case", sorted(DISCRETE))
def test_numeric_drift_exact_equals_scipy(case):
    ref, cur = (a.astype(np.float64) for a in DISCRETE[case]())
    got = stats.numeric_drift_exact(Counter(ref.tolist()), Counter(cur.tolist()))
    ks = sps.ks_2samp(ref, cur, method="asymp")
    assert got["ks_test"]["statistic"] == pytest.approx(ks.statistic, abs=1e-12)
    assert got["ks_test"]["pvalue"] == pytest.approx(ks.pvalue, rel=1e-9, abs=1e-300)
    assert got["wasserstein_distance"] == pytest.approx(sps.wasserstein_distance(ref, cur), rel=1e-12, abs=1e-12)
    p, q = exact_bins(ref, cur, method="inverted_cdf")
    assert got["population_stability_index"] == pytest.approx(psi_formula(p, q), rel=1e-12, abs=1e-12)
    assert got["js_distance"] == pytest.approx(float(jensenshannon(p, q, base=2)), abs=1e-12)


def test_ks_pvalue_at_large_sizes_is_the_limit_distribution():
    ref, cur = RNG.integers(0, 50, 200_000).astype(float), RNG.integers(0, 50, 150_000).astype(float)
    cur[:400] = 49.0  # a small excess: a p-value well inside (0, 1)
    got = stats.numeric_drift_exact(Counter(ref.tolist()), Counter(cur.tolist()))
    ks = sps.ks_2samp(ref, cur, method="asymp")
    assert got["ks_test"]["statistic"] == pytest.approx(ks.statistic, abs=1e-12)
    assert 1e-6 < ks.pvalue < 0.9
    assert got["ks_test"]["pvalue"] == pytest.approx(ks.pvalue, rel=0.01)  # effective n = 85,714
    effective = round(200_000 * 150_000 / 350_000)
    assert got["ks_test"]["pvalue"] == sps.kstwobign.sf(np.sqrt(effective) * got["ks_test"]["statistic"])


# ---------------------------------------------------------------- categorical drift

def test_categorical_drift_equals_scipy():
    ref = {"a": 500, "b": 300, "c": 150, "d": 50}
    cur = {"a": 380, "b": 330, "c": 190, "e": 30, "d": 0}
    got = stats.categorical_drift(ref, cur)
    values = ["a", "b", "c", "d", "e"]
    table = np.array([[ref.get(v, 0) for v in values], [cur.get(v, 0) for v in values]])
    chi = sps.chi2_contingency(table, correction=False)
    assert got["chi_squared_test"]["statistic"] == pytest.approx(chi.statistic, rel=1e-12)
    assert got["chi_squared_test"]["pvalue"] == pytest.approx(chi.pvalue, rel=1e-9)
    p, q = table[0] / table[0].sum(), table[1] / table[1].sum()
    assert got["tv_distance"] == pytest.approx(0.5 * np.abs(p - q).sum(), rel=1e-12)
    assert got["l_infinity_distance"] == pytest.approx(np.abs(p - q).max(), rel=1e-12)
    assert got["js_distance"] == pytest.approx(float(jensenshannon(p, q, base=2)), rel=1e-12)


def test_categorical_drift_on_random_counts_equals_scipy():
    for k in (2, 7, 60):
        ref = {f"v{i}": int(n) for i, n in enumerate(RNG.integers(1, 1000, k))}
        cur = {f"v{i}": int(n) for i, n in enumerate(RNG.integers(1, 1000, k))}
        got = stats.categorical_drift(ref, cur)
        table = np.array([[ref[v] for v in sorted(ref)], [cur[v] for v in sorted(ref)]])
        chi = sps.chi2_contingency(table, correction=False)
        assert got["chi_squared_test"]["statistic"] == pytest.approx(chi.statistic, rel=1e-12)
        assert got["chi_squared_test"]["pvalue"] == pytest.approx(chi.pvalue, rel=1e-9, abs=1e-300)
        p, q = table[0] / table[0].sum(), table[1] / table[1].sum()
        assert got["js_distance"] == pytest.approx(float(jensenshannon(p, q, base=2)), rel=1e-12)


def test_categorical_drift_edge_cases():
    single = stats.categorical_drift({"x": 3}, {"x": 10})
    assert single == {"chi_squared_test": None, "tv_distance": 0.0, "l_infinity_distance": 0.0, "js_distance": 0.0}
    disjoint = stats.categorical_drift({"x": 3}, {"y": 4})
    assert disjoint["tv_distance"] == 1.0 and disjoint["l_infinity_distance"] == 1.0
    assert disjoint["js_distance"] == pytest.approx(1.0)
    assert disjoint["chi_squared_test"]["statistic"] == pytest.approx(
        sps.chi2_contingency([[3, 0], [0, 4]], correction=False).statistic)
    none = {"chi_squared_test": None, "tv_distance": None, "l_infinity_distance": None, "js_distance": None}
    assert stats.categorical_drift({}, {"x": 1}) == none
    assert stats.categorical_drift({"x": 2}, {"x": 0}) == none


# ---------------------------------------------------------------- exact sums

def test_exact_sums_do_not_depend_on_the_split():
    from fractions import Fraction
    x = RNG.normal(size=20_000) * 10.0 ** RNG.integers(-40, 40, 20_000)
    x[:3] = [5e-324, 1e300, -1e300]
    total = exact_sum(x)
    assert Fraction(total, 1 << 1126) == sum(Fraction(v) for v in x.tolist())
    assert exact_sum(x[:7000]) + exact_sum(x[7000:]) == total
    assert exact_sum(x[::-1]) == total
    y = RNG.normal(size=2000) * 1e3
    assert Fraction(exact_square_sum(y), 1 << 1126) == sum(Fraction(v) ** 2 for v in y.tolist())
    assert to_float(exact_sum(np.array([1.0, 2.0, 4.0])), 3) == 7 / 3


# ---------------------------------------------------------------- model quality

def binary_data(n: int):
    labels = RNG.choice(["no", "yes"], n, p=[0.6, 0.4])
    score = np.clip(RNG.normal(np.where(labels == "yes", 0.65, 0.4), 0.2), 0, 1)
    return labels, np.where(score > 0.5, "yes", "no"), score


def quality(problem_type, parts, classes=None) -> QualityState:
    state = QualityState.empty(problem_type, classes)
    for part in parts:
        piece = QualityState.empty(problem_type, classes)
        piece.update(*part)
        state = state.merge(piece)
    return state


def split(arrays, at):
    return [tuple(a[:at] if a is not None else None for a in arrays),
            tuple(a[at:] if a is not None else None for a in arrays)]


def check_class_averages(got: dict, labels, predictions, scorer) -> None:
    classes = sorted(set(labels) | set(predictions))
    per_class = scorer(labels, predictions, average=None, labels=classes, zero_division=0)
    assert list(got["one_vs_all"]) == classes
    np.testing.assert_allclose([got["one_vs_all"][c] for c in classes], per_class, rtol=1e-12)
    assert got["macro"] == pytest.approx(scorer(labels, predictions, average="macro", zero_division=0), rel=1e-12)
    assert got["weighted"] == pytest.approx(scorer(labels, predictions, average="weighted", zero_division=0),
                                            rel=1e-12)


def test_binary_classification_matches_sklearn_via_merge():
    labels, predictions, score = binary_data(20_000)
    state = quality("classification", split((labels, predictions, score), 7000), classes=["no", "yes"])
    got = state.to_metrics()
    assert got["num_labeled"] == 20_000
    assert got["accuracy_score"] == pytest.approx(skm.accuracy_score(labels, predictions), rel=1e-12)
    check_class_averages(got["precision"], labels, predictions, skm.precision_score)
    check_class_averages(got["recall"], labels, predictions, skm.recall_score)
    check_class_averages(got["f1_score"], labels, predictions, skm.f1_score)
    assert got["confusion_matrix"] == {"labels": ["no", "yes"],
                                       "counts": skm.confusion_matrix(labels, predictions).tolist()}
    # Binned AUC: 1,000 bins on [0, 1]; stated tolerance 1e-3 against the exact AUC.
    assert got["roc_auc_score"] == pytest.approx(skm.roc_auc_score(labels, score), abs=1e-3)
    assert got["log_loss"] == pytest.approx(skm.log_loss(labels, y_proba=score), rel=1e-12)
    # Same bits whatever the split, and through bytes.
    one_pass = quality("classification", [(labels, predictions, score)], classes=["no", "yes"])
    assert one_pass.to_metrics() == got
    assert QualityState.from_bytes(state.to_bytes()).to_metrics() == got
    assert state.to_bytes() == one_pass.to_bytes()


def test_binary_positive_class_is_the_greater_label():
    labels = RNG.choice(["cat", "dog"], 5000)
    p_dog = np.clip(RNG.normal(np.where(labels == "dog", 0.6, 0.45), 0.15), 0, 1)
    predictions = np.where(p_dog > 0.5, "dog", "cat")
    got = quality("classification", [(labels, predictions, p_dog)]).to_metrics()  # classes from the data
    assert got["roc_auc_score"] == pytest.approx(skm.roc_auc_score(labels, p_dog), abs=1e-3)
    assert got["log_loss"] == pytest.approx(skm.log_loss(labels, y_proba=p_dog), rel=1e-12)
    both_columns = np.stack([1 - p_dog, p_dog], axis=1)  # proba rows aligned with classes, binary
    two = quality("classification", [(labels, predictions, both_columns)], classes=["cat", "dog"]).to_metrics()
    assert two["roc_auc_score"] == got["roc_auc_score"]
    assert two["log_loss"] == pytest.approx(got["log_loss"], rel=1e-12)


def test_binned_auc_scores_exact_ties_like_sklearn():
    labels = np.array(["0", "1"] * 500)
    score = np.where(RNG.random(1000) < 0.5, 0.25, 0.75)  # two distinct scores: ties everywhere
    got = quality("classification", [(labels, labels, score)]).to_metrics()
    assert got["roc_auc_score"] == pytest.approx(skm.roc_auc_score(labels, score), abs=1e-12)


def test_multiclass_matches_sklearn():
    classes = ["a", "b", "c", "d"]
    n = 20_000
    truth = RNG.integers(0, 4, n)
    logits = RNG.normal(size=(n, 4))
    logits[np.arange(n), truth] += 1.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels, predictions = np.array(classes)[truth], np.array(classes)[proba.argmax(axis=1)]
    got = quality("classification", split((labels, predictions, proba), 12_345), classes=classes).to_metrics()
    assert got["accuracy_score"] == pytest.approx(skm.accuracy_score(labels, predictions), rel=1e-12)
    check_class_averages(got["f1_score"], labels, predictions, skm.f1_score)
    check_class_averages(got["precision"], labels, predictions, skm.precision_score)
    assert got["confusion_matrix"]["counts"] == skm.confusion_matrix(labels, predictions, labels=classes).tolist()
    assert got["roc_auc_score"] == pytest.approx(
        skm.roc_auc_score(labels, proba, multi_class="ovr", average="macro", labels=classes), abs=1e-3)
    assert got["log_loss"] == pytest.approx(skm.log_loss(labels, y_proba=proba, labels=classes), rel=1e-12)


def test_classification_skips_missing_labels_and_compares_as_strings():
    labels = np.array([1.0, np.nan, 0.0, 1.0, 0.0, np.nan, 1.0, 0.0])  # an int column with nulls, as floats
    predictions = np.array([1, 1, 0, 0, 0, 1, 1, 1])
    proba = np.array([0.9, 0.8, 0.2, 0.4, np.nan, 0.7, 0.6, 0.55])
    got = quality("classification", [(labels, predictions, proba)]).to_metrics()
    keep = ~np.isnan(labels)
    y, pred = labels[keep].astype(int).astype(str), predictions[keep].astype(str)
    assert got["num_labeled"] == 6
    assert got["confusion_matrix"] == {"labels": ["0", "1"], "counts": skm.confusion_matrix(y, pred).tolist()}
    assert got["accuracy_score"] == pytest.approx(skm.accuracy_score(y, pred))
    # Probability-based metrics leave out the row whose probability is missing.
    has_p = ~np.isnan(proba[keep])
    assert got["log_loss"] == pytest.approx(skm.log_loss(y[has_p], y_proba=proba[keep][has_p]), rel=1e-12)
    assert got["roc_auc_score"] == pytest.approx(skm.roc_auc_score(y[has_p], proba[keep][has_p]), abs=1e-12)
    objects = quality("classification", [(np.array(["1", None, "0"], dtype=object), np.array([1, 1, 0]), None)])
    assert objects.to_metrics()["num_labeled"] == 2
    assert objects.to_metrics()["roc_auc_score"] is None and objects.to_metrics()["log_loss"] is None


def test_labels_and_predictions_as_strings():
    from lakeforge.monitoring.engine.quality import as_strings
    assert as_strings(np.array([1.0, 2.5, np.nan])).tolist() == ["1", "2.5", None]
    assert as_strings(np.array([True, False])).tolist() == ["true", "false"]
    assert as_strings(np.array(["a", None, "b"], dtype=object)).tolist() == ["a", None, "b"]
    assert as_strings(np.array([1, None, 2.0], dtype=object)).tolist() == ["1", None, "2"]
    assert as_strings(np.array([1, "x", None, True, float("nan")], dtype=object)).tolist() == [
        "1", "x", None, "true", None]
    ints = quality("classification", [(np.array([0, 1, 1]), np.array([0.0, 1.0, 0.0]), None)]).to_metrics()
    assert ints["confusion_matrix"] == {"labels": ["0", "1"], "counts": [[1, 0], [1, 1]]}


def test_classification_without_labels_or_one_class():
    empty = QualityState.empty("classification", ["a", "b"]).to_metrics()
    assert empty["num_labeled"] == 0 and empty["accuracy_score"] is None and empty["precision"] is None
    assert empty["confusion_matrix"] == {"labels": [], "counts": []}
    one = quality("classification", [(np.array(["a", "a"]), np.array(["a", "a"]), np.array([0.2, 0.3]))]).to_metrics()
    assert one["accuracy_score"] == 1.0 and one["roc_auc_score"] is None and one["log_loss"] is None


def regression_data(n: int):
    y = RNG.normal(50, 10, n)
    return y, y + RNG.normal(0, 3, n)


def test_regression_matches_sklearn_via_merge():
    y, pred = regression_data(30_000)
    got = quality("regression", split((y, pred), 11_111)).to_metrics()
    assert got["num_labeled"] == 30_000
    assert got["mean_squared_error"] == pytest.approx(skm.mean_squared_error(y, pred), rel=1e-12)
    assert got["root_mean_squared_error"] == pytest.approx(skm.root_mean_squared_error(y, pred), rel=1e-12)
    assert got["mean_absolute_error"] == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-12)
    assert got["mean_absolute_percentage_error"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred),
                                                                  rel=1e-12)
    assert got["r2_score"] == pytest.approx(skm.r2_score(y, pred), rel=1e-12)
    parts = quality("regression", [(y[i:i + 997], pred[i:i + 997]) for i in range(0, 30_000, 997)])
    assert parts.to_metrics() == got  # exact sums: identical bits
    assert QualityState.from_bytes(parts.to_bytes()).to_metrics() == got


def test_regression_mape_leaves_out_zero_labels_and_nulls_are_skipped():
    y, pred = regression_data(1000)
    y[::10] = 0.0
    y[5], pred[7] = np.nan, np.nan
    got = quality("regression", [(y, pred)]).to_metrics()
    keep = ~np.isnan(y) & ~np.isnan(pred)
    nonzero = keep & (y != 0)
    assert got["num_labeled"] == int(keep.sum())
    assert got["mean_absolute_percentage_error"] == pytest.approx(
        skm.mean_absolute_percentage_error(y[nonzero], pred[nonzero]), rel=1e-12)
    assert got["mean_squared_error"] == pytest.approx(skm.mean_squared_error(y[keep], pred[keep]), rel=1e-12)
    assert got["r2_score"] == pytest.approx(skm.r2_score(y[keep], pred[keep]), rel=1e-12)


def test_regression_r2_edge_cases_follow_sklearn():
    constant = np.full(5, 3.0)
    assert quality("regression", [(constant, constant)]).to_metrics()["r2_score"] == skm.r2_score(constant, constant)
    off = constant + 1
    assert quality("regression", [(constant, off)]).to_metrics()["r2_score"] == skm.r2_score(constant, off) == 0.0
    single = quality("regression", [(np.array([1.0]), np.array([2.0]))]).to_metrics()
    assert single["r2_score"] is None and single["mean_squared_error"] == 1.0
    # A large mean over a small spread: the exact sums keep SS_tot accurate.
    y = 1e9 + RNG.normal(0, 1, 5000)
    pred = y + RNG.normal(0, 0.5, 5000)
    assert quality("regression", [(y, pred)]).to_metrics()["r2_score"] == pytest.approx(skm.r2_score(y, pred),
                                                                                          rel=1e-9)
    assert QualityState.empty("regression").to_metrics()["mean_squared_error"] is None


def test_quality_merge_rejects_mismatched_states():
    with pytest.raises(ValueError):
        QualityState.empty("regression").merge(QualityState.empty("classification"))
    with pytest.raises(ValueError):
        QualityState.empty("classification", ["a", "b"]).merge(QualityState.empty("classification", ["a", "c"]))
    with pytest.raises(ValueError):
        QualityState.empty("ranking")


# ---------------------------------------------------------------- custom metrics

def metric(definition, type_="aggregate", columns=(":table",), name="m", output="double") -> CustomMetric:
    return CustomMetric(type_, name, tuple(columns), definition, output)


def test_render_the_documented_examples():
    squared = metric("avg(`{{input_column}}`*`{{input_column}}`)", columns=("f1", "f2"), name="squared_avg")
    assert custom.render(squared, input_column="f1") == "avg(`f1`*`f1`)"
    assert custom.render(metric("avg(f1 - f2)")) == "avg(f1 - f2)"
    weighted = metric("avg(CASE WHEN {{prediction_col}} = {{label_col}} THEN 0 "
                      "WHEN {{prediction_col}} != {{label_col}} AND critical=TRUE THEN 2 ELSE 1 END)",
                      name="weighted_error")
    assert custom.render(weighted, prediction_col="pred", label_col="label") == (
        "avg(CASE WHEN pred = label THEN 0 WHEN pred != label AND critical=TRUE THEN 2 ELSE 1 END)")
    assert custom.render(metric("sqrt(squared_avg)", "derived", ("f1",))) == "sqrt(squared_avg)"
    drift = metric("{{current_df}}.weighted_error - {{base_df}}.weighted_error", "drift")
    assert custom.render(drift) == "current.weighted_error - base.weighted_error"
    assert custom.render(drift, current_df="c", base_df="b") == "c.weighted_error - b.weighted_error"


@pytest.mark.parametrize("definition, message", [
    ("avg({{ nope }})", "unknown template variable 'nope'"),
    ("avg({{input_column}})", "{{input_column}} is set only for metrics on named input columns"),
    ("avg({{label_col}})", "{{label_col}} is set only"),
    ("avg({{ x", "invalid template"),
    ("{{ ''.__class__ }}", "invalid template"),  # the sandbox
])
def test_render_errors(definition, message):
    with pytest.raises(InvalidParameter, match="custom metric 'm': .*" + message.replace("{", r"\{")):
        custom.render(metric(definition))


def test_output_types():
    field = '{"name":"x","type":"double","nullable":true,"metadata":{}}'
    assert custom.output_type(field) == "double"
    assert [custom.output_type(t) for t in ("long", "int", "float", "decimal(10,2)", "string", "boolean")] == [
        "bigint", "bigint", "double", "double", "string", "boolean"]
    assert custom.arrow_type("bigint") == pa.int64() and custom.arrow_type("string") == pa.string()
    for bad in ('{"name":"x","type":{"type":"struct","fields":[]}}', "array<int>", "{oops"):
        with pytest.raises(InvalidParameter, match="output_data_type"):
            custom.output_type(bad)


def test_custom_metrics_evaluate_in_duckdb():
    table = pa.table({"f1": [1.0, 2.0, 3.0, 4.0], "f2": [0.5, 0.5, 1.0, 1.0], "w": ["d1", "d1", "d2", "d2"],
                      "pred": ["a", "b", "a", "a"], "label": ["a", "a", "b", "a"],
                      "critical": [False, True, True, False]})
    con = duckdb.connect()
    con.register("t", table)
    squared = metric("avg(`{{input_column}}`*`{{input_column}}`)", columns=("f1", "f2"), name="squared_avg")
    weighted = metric("avg(CASE WHEN {{prediction_col}} = {{label_col}} THEN 0 "
                      "WHEN {{prediction_col}} != {{label_col}} AND critical=TRUE THEN 2 ELSE 1 END)",
                      name="weighted_error")
    rows = con.execute(
        f"SELECT w, {custom.aggregate_sql(squared, 'f1')} AS sq_f1, {custom.aggregate_sql(squared, 'f2')} AS sq_f2, "
        f"{custom.aggregate_sql(metric('avg(f1 - f2)'), ':table')} AS diff, "
        f"{custom.aggregate_sql(weighted, ':table', prediction_col='pred', label_col='label')} AS werr "
        "FROM t GROUP BY w ORDER BY w").fetchall()
    assert rows == [("d1", 2.5, 0.25, 1.0, 1.0), ("d2", 12.5, 1.0, 2.5, 1.0)]

    derived = metric("sqrt(squared_avg)", "derived", ("f1",), name="root")
    metrics = pa.table({"column_name": ["f1", "f1"], "squared_avg": [2.5, 12.5], "win": [1, 2]})
    con.register("m", metrics)
    assert con.execute(f"SELECT {custom.derived_sql(derived)} FROM m ORDER BY win").fetchall() == [
        (pytest.approx(2.5 ** 0.5),), (pytest.approx(12.5 ** 0.5),)]
    drift = metric("{{current_df}}.squared_avg - {{base_df}}.squared_avg", "drift", name="delta")
    got = con.execute(f"SELECT {custom.drift_sql(drift)} FROM m AS current JOIN m AS base "
                      "ON current.win = 2 AND base.win = 1").fetchall()
    assert got == [(10.0,)]
    # Spark semantics carried over: 0-based array indexes, x / 0 is null.
    row = pa.table({"quantiles": [[0.0, 1.0, 2.0]], "num_nulls": [3], "count": [0]})
    con.register("r", row)
    spark = [metric("quantiles[2]", "derived"), metric("element_at(quantiles, 1)", "derived"),
             metric("num_nulls / count", "derived")]
    assert con.execute(f"SELECT {', '.join(custom.derived_sql(m) for m in spark)} FROM r").fetchall() == [
        (2.0, 0.0, None)]
    counted = metric("count_if({{input_column}} > 2)", columns=("f1",), output="bigint")
    assert con.execute(f"SELECT {custom.aggregate_sql(counted, 'f1')} FROM t").fetchall() == [(2,)]


def test_custom_sql_must_be_one_expression():
    for bad in ("avg(f1); DROP TABLE t", "(SELECT max(f1) FROM t)", "f1 IN (SELECT 1)"):
        with pytest.raises(InvalidParameter, match="one SQL expression"):
            custom.aggregate_sql(metric(bad), ":table")
    with pytest.raises(InvalidParameter, match="invalid SQL"):
        custom.aggregate_sql(metric("avg(f1"), ":table")


# ---------------------------------------------------------------- validation

SCHEMA = pa.schema([("ts", pa.timestamp("us", tz="UTC")), ("f1", pa.float64()), ("f2", pa.int64()),
                    ("s", pa.string()), ("model", pa.string()), ("pred", pa.string()), ("label", pa.string()),
                    ("score", pa.float64()), ("proba", pa.list_(pa.float64())), ("critical", pa.bool_()),
                    ("y", pa.float64()), ("yhat", pa.float32())])
SPEC = MonitorSpec("inference_log", "ts", ("1 day",), "model", "pred", "label", "proba", "classification")
DOC_METRICS = (
    metric("avg(`{{input_column}}`*`{{input_column}}`)", columns=("f1", "f2"), name="squared_avg"),
    metric("avg(f1 - f2)", name="avg_diff"),
    metric("avg(CASE WHEN {{prediction_col}} = {{label_col}} THEN 0 WHEN {{prediction_col}} != {{label_col}} "
           "AND critical=TRUE THEN 2 ELSE 1 END)", name="weighted_error"),
    metric("sqrt(squared_avg)", "derived", ("f1", "f2"), name="root_squared_avg"),
    metric("{{current_df}}.weighted_error - {{base_df}}.weighted_error", "drift", name="error_delta"),
)


def test_valid_configs_pass():
    validate(replace(SPEC, slicing_exprs=("f1 > 1", "s", "model = 'v2'"), custom_metrics=DOC_METRICS), SCHEMA)
    builtin_names = (metric("num_nulls / count", "derived", name="null_share"),
                     metric("quantiles[2] + element_at(quantiles, 3)", "derived", name="q"),
                     metric("precision.macro - precision.one_vs_all['a']", "derived", name="gap"),
                     metric("{{current_df}}.count - {{base_df}}.count", "drift", name="count_change"),
                     metric("{{current_df}}.null_share - {{base_df}}.null_share", "drift", name="share_change"))
    validate(replace(SPEC, custom_metrics=builtin_names), SCHEMA)
    validate(MonitorSpec("snapshot"), SCHEMA)
    validate(MonitorSpec("time_series", "ts", ("5 minutes", "1 year")), SCHEMA)
    validate(replace(SPEC, problem_type="regression", prediction_col="yhat", label_col="y",
                     prediction_proba_col=None), SCHEMA)
    validate(replace(SPEC, prediction_proba_col="score"), SCHEMA)
    date_schema = pa.schema([("d", pa.date32()), ("x", pa.int32())])
    validate(MonitorSpec("time_series", "d", ("1 week",)), date_schema)


@pytest.mark.parametrize("change, message", [
    ({"profile_type": "streaming"}, "unknown profile type 'streaming'"),
    ({"timestamp_col": None}, "timestamp_col is required for inference_log monitors"),
    ({"timestamp_col": "nope"}, "column 'nope' (timestamp_col) not found in the table"),
    ({"timestamp_col": "s"}, "timestamp column 's' is string, not a timestamp or date"),
    ({"granularities": ("2 days",)}, "unknown granularity '2 days'"),
    ({"granularities": ()}, "granularities are required"),
    ({"model_id_col": None}, "model_id_col is required for inference_log monitors"),
    ({"prediction_col": None}, "prediction_col is required for inference_log monitors"),
    ({"problem_type": None}, "problem_type is required for inference_log monitors"),
    ({"problem_type": "ranking"}, "unknown problem_type 'ranking'"),
    ({"label_col": "nope"}, "column 'nope' (label_col) not found in the table"),
    ({"problem_type": "regression", "prediction_proba_col": None}, ("regression needs a numeric prediction column: "
                                                                   "'pred' is string")),
    ({"problem_type": "regression", "prediction_col": "yhat", "prediction_proba_col": None},
     "regression needs a numeric label column: 'label' is string"),
    ({"problem_type": "regression", "prediction_col": "yhat", "label_col": "y"}, ("prediction_proba_col applies "
                                                                                 "to classification only")),
    ({"prediction_proba_col": "s"}, "probability column 's' is string"),
    ({"excluded_columns": ("gone",)}, "excluded column 'gone' not found"),
    ({"slicing_exprs": ("nope > 1",)}, "slicing expression 'nope > 1': Referenced column \"nope\" not found"),
    ({"slicing_exprs": ("f1 >",)}, "slicing expression 'f1 >': invalid SQL"),
    ({"slicing_exprs": ("avg(f1)",)}, "slicing expression 'avg(f1)': must be a row expression"),
    ({"slicing_exprs": ("f1 IN (SELECT 1)",)}, "must be one SQL expression"),
    ({"slicing_exprs": ("f1) UNION SELECT (1",)}, "must be one SQL expression"),
    ({"slicing_exprs": ("s + 1",)}, "slicing expression 's \\+ 1'"),
])
def test_config_problems(change, message):
    with pytest.raises(InvalidParameter, match=message.replace("(", r"\(").replace(")", r"\)")
                       if "\\" not in message else message):
        validate(replace(SPEC, **change), SCHEMA)


@pytest.mark.parametrize("bad, message", [
    (metric("avg(f1)", "histogram"), "custom metric 'm': unknown type 'histogram'"),
    (metric("avg(f1)", name="bad name"), "custom metric 'bad name': the name must be a column name"),
    (metric("avg(f1)", name="js_distance"), "the name is a built-in metric column"),
    (metric("avg(f1)", name="Accuracy_Score"), "the name is a built-in metric column"),
    (metric("avg(f1)", name="model"), "the name is a built-in metric column"),  # the model id key
    (metric("avg({{input_column}})", columns=("nope",)), "input column 'nope' not found in the table"),
    (metric("avg({{input_column}})", columns=()), "input_columns is empty"),
    (metric("avg({{input_column}})", columns=("f1", "s"), name="x"), ("custom metric 'x': avg\\(VARCHAR\\) on "
                                                                      "string column 's'")),
    (metric("stddev({{input_column}})", columns=("s",)), "on string column 's'"),
    (metric("f1 + 1"), "an aggregate metric must aggregate the rows"),
    (metric("avg(f1"), "invalid SQL"),
    (metric("avg(nope)"), "Referenced column \"nope\" not found"),
    (metric("avg({{input_column}})"), "{{input_column}} is set only for metrics on named input columns"),
    (metric("avg({{ nope }})"), "unknown template variable 'nope'"),
    (metric("avg(f1)", output="array"), "unsupported custom metric output type 'array'"),
    (metric("max(length(read_text('/etc/passwd')))"), "custom metric 'm'"),
    (metric("sqrt(nope)", "derived"), "'nope' is not a metric column"),
    (metric("avg(avg)", "derived"), "a derived metric reads metric rows one by one"),
    (metric("avg - avg", "drift"), "Ambiguous reference"),
    (metric("{{current_df}}.nope - {{base_df}}.nope", "drift"), "'nope' is not a metric column"),
])
def test_custom_metric_problems(bad, message):
    with pytest.raises(InvalidParameter, match=message.replace("{", r"\{")):
        validate(replace(SPEC, custom_metrics=(bad,)), SCHEMA)


def test_custom_metric_names_are_unique_and_derived_metrics_read_earlier_ones():
    twice = (metric("avg(f1)", name="x"), metric("avg(f2)", name="X"))
    with pytest.raises(InvalidParameter, match="custom metric 'X': defined twice"):
        validate(replace(SPEC, custom_metrics=twice), SCHEMA)
    chain = (metric("avg(f1)", name="a1"), metric("a1 * 2", "derived", name="d1"), metric("d1 + 1", "derived",
                                                                                          name="d2"),
             metric("{{current_df}}.d2 - {{base_df}}.d2", "drift", name="d2_delta"))
    validate(replace(SPEC, custom_metrics=chain), SCHEMA)
    with pytest.raises(InvalidParameter, match="custom metric 'd0': 'd1' is not a metric column"):
        validate(replace(SPEC, custom_metrics=(metric("d1 * 2", "derived", name="d0"), *chain)), SCHEMA)


def test_baseline_schema():
    baseline = pa.schema([f for f in SCHEMA if f.name not in ("ts", "model")])  # training data: no ts, no model
    validate(SPEC, SCHEMA, baseline)
    widened = pa.schema([f if f.name != "f2" else pa.field("f2", pa.int32()) for f in baseline])
    validate(SPEC, SCHEMA, widened)  # same kind of type (numeric)
    with pytest.raises(InvalidParameter, match="the baseline table lacks column\\(s\\) 'f1', 's'"):
        validate(SPEC, SCHEMA, pa.schema([f for f in baseline if f.name not in ("f1", "s")]))
    with pytest.raises(InvalidParameter, match="baseline column 'f2' is string, the table's is bigint"):
        validate(SPEC, SCHEMA, pa.schema([f if f.name != "f2" else pa.field("f2", pa.string()) for f in baseline]))
    excluded = replace(SPEC, excluded_columns=("f1",))
    validate(excluded, SCHEMA, pa.schema([f for f in baseline if f.name != "f1"]))


def test_digest_built_from_sorted_values_reads_like_the_data():
    """engine/tdigest.py cuts centroids from sorted values in one pass; datasketches reads and merges it."""
    from lakeforge.monitoring.engine import tdigest

    rng = np.random.default_rng(7)
    a, b = np.sort(rng.lognormal(size=60_000)), np.sort(rng.lognormal(0.3, 1.0, size=40_000))
    built = tdigest_double.deserialize(tdigest.from_sorted(a, 400))
    assert built.get_total_weight() == a.size
    assert (built.get_min_value(), built.get_max_value()) == (a[0], a[-1])
    ranks = np.linspace(0.001, 0.999, 500)
    got = np.array([built.get_quantile(r) for r in ranks])
    assert np.abs(np.searchsorted(a, got) / a.size - ranks).max() < 0.01
    merged = tdigest_double.deserialize(tdigest.from_sorted(a, 400))
    merged.merge(tdigest_double.deserialize(tdigest.from_sorted(b, 400)))
    both = np.sort(np.r_[a, b])
    got = np.array([merged.get_quantile(r) for r in ranks])
    assert merged.get_total_weight() == both.size
    # after a merge, as accurate as datasketches' own digests of the same values merged
    own = tdigest_double(400)
    own.update(a)
    other = tdigest_double(400)
    other.update(b)
    own.merge(other)
    own_got = np.array([own.get_quantile(r) for r in ranks])
    own_error = np.abs(np.searchsorted(both, own_got) / both.size - ranks).max()
    assert np.abs(np.searchsorted(both, got) / both.size - ranks).max() <= own_error * 1.1 + 0.001
    # drift read off built digests agrees with scipy on the raw values
    drift = stats.numeric_drift(tdigest.from_sorted(a, 400), tdigest.from_sorted(b, 400), a.size, b.size)
    assert drift["ks_test"]["statistic"] == pytest.approx(sps.ks_2samp(a, b).statistic, abs=0.01)
    assert drift["wasserstein_distance"] == pytest.approx(sps.wasserstein_distance(a, b), rel=0.02)
