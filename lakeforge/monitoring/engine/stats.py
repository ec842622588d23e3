"""Drift between a reference and a current distribution, computed from per-window state alone.

Numeric columns are compared through their t-digests (`datasketches.tdigest_double`, kept per column
and window because it is deterministic and mergeable); categorical columns through exact value counts.
Every metric is a pure function of the two states, so drift never reads raw data.

Definitions (F = cumulative distribution function P(X <= x), Q = its inverse, the quantile function):

- The points: both digests' quantiles at `GRID` ranks plus both minima and maxima. The ranks are
  spaced as a t-digest spaces its centroids, densely toward 0 and 1: q = (1 - cos(pi u)) / 2 for u
  evenly spaced in (0, 1).
  Each digest's CDF is read at every point just above it (F is right-continuous), and is exactly 0
  below the digest's minimum and 1 from its maximum. Only the digest's CDF (rank) is used, never its
  quantile function directly: datasketches' t-digest ranks interpolate between centroids (error about
  1e-4 in rank at k=200), while its quantiles step within a centroid (error up to about 0.04 standard
  deviations of a normal at k=200), too coarse for Wasserstein and bin edges.
- `ks_test.statistic`: the two-sample Kolmogorov-Smirnov statistic D = sup_x |F_ref(x) - F_cur(x)|,
  the maximum over the points.
- `ks_test.pvalue`: the asymptotic two-sided p-value with effective size n = round(n_ref * n_cur /
  (n_ref + n_cur)): up to `KS_EXACT_N`, P(D_n >= D) of the Kolmogorov distribution of size n
  (`scipy.stats.kstwo.sf`, what `scipy.stats.ks_2samp(method="asymp")` reports); above it, that
  distribution's limit, Kolmogorov's Q(sqrt(n) * D) (`scipy.special.kolmogorov`), because kstwo.sf
  costs tens to hundreds of milliseconds at large n. Beyond n = 10,000 the two differ by under 3% of
  the p-value where it is above 1e-10 (under 1% beyond n = 100,000), far less than the t-digest's
  error in D moves it; below 1e-10 they may differ by a small factor.
- `wasserstein_distance`: the Wasserstein-1 (earth mover's) distance, the integral over q in (0, 1) of
  |Q_ref(q) - Q_cur(q)|, which equals the integral over x of |F_ref(x) - F_cur(x)|; computed in the
  second form, the gap taken as linear between consecutive points (both CDFs are piecewise linear
  between centroids) from its value at one point to its left limit at the next (so jumps, as at a
  constant column's value, count in full).
- `population_stability_index`: PSI = sum_i (q_i - p_i) * ln(q_i / p_i) over the bins below, with p the
  reference's and q the current's probability per bin; a probability below `PSI_EPSILON` (an empty
  bin) counts as `PSI_EPSILON`, without renormalising.
- `js_distance` (numeric): the Jensen-Shannon distance with base-2 logarithms,
  sqrt(JSD(p, q)) with JSD = KL(p || m) / 2 + KL(q || m) / 2 and m = (p + q) / 2, so it lies in [0, 1].
  No epsilon: empty bins contribute 0.
- Bins for PSI and JS: the reference's ventiles. Edges are Q_ref(0.05), Q_ref(0.10), ..., Q_ref(0.95),
  Q_ref read off the reference CDF at the points by linear interpolation (duplicates merged, as for
  discrete or constant columns), bins are right-closed
  (-inf, e1], (e1, e2], ..., (e19, +inf), so each holds about 5% of the reference.

Columns of few distinct values (small integers, flags) are where a t-digest is weakest: it blurs the
atoms, and the bin edges fall between them. Integers 0-9 against 0-11 (50k each) gave KS 0.175 against
scipy's 0.168, PSI 0.23 against 1.28 on exact ventile bins and JS 0.20 against 0.30. With the count of
each distinct value at hand, `numeric_drift_exact` gives the same metrics exactly.

Categorical columns (counts per value; the caller decides whether null is a value):

- `chi_squared_test`: Pearson's chi-squared test of homogeneity on the 2 x k contingency table
  (reference and current counts of the k values seen on either side), no continuity correction:
  statistic = sum (O - E)^2 / E with E = row total * column total / grand total, p-value from the
  chi-squared distribution with k - 1 degrees of freedom (as `scipy.stats.chi2_contingency(table,
  correction=False)`). None when k = 1.
- `tv_distance`: total variation distance, sum |p_v - q_v| / 2.
- `l_infinity_distance`: max_v |p_v - q_v|.
- `js_distance`: as above, over the value probabilities.

Either side empty (n = 0): every metric is None.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from datasketches import tdigest_double
from scipy import special
from scipy.stats import chi2, kstwo

GRID = 512  # ranks at which each digest is sampled for the points where both CDFs are read
BIN_RANKS = [i / 20 for i in range(1, 20)]  # ventile edges of the reference for PSI and JS
KS_EXACT_N = 10_000  # effective sizes up to which the KS p-value uses the size-n distribution
PSI_EPSILON = 1e-4  # stands in for a bin probability of (about) zero in PSI's logarithm


def numeric_drift(ref_digest: tdigest_double, cur_digest: tdigest_double, ref_n: int, cur_n: int) -> dict:
    """KS test, Wasserstein-1, PSI and JS distance between two numeric distributions given as t-digests
    of their non-null values and the counts of those values (module docstring)."""
    if ref_n <= 0 or cur_n <= 0 or ref_digest.is_empty() or cur_digest.is_empty():
        return dict(NUMERIC_NONE)
    points = np.unique(np.concatenate([_points(ref_digest), _points(cur_digest)]))
    ref_cdf, cur_cdf = cdf(ref_digest, points), cdf(cur_digest, points)
    gap_left = cdf(ref_digest, points, left=True) - cdf(cur_digest, points, left=True)
    edges = np.unique(np.interp(BIN_RANKS, ref_cdf, points))
    p, q = bin_probabilities(ref_digest, cur_digest, edges)
    return _numeric_metrics(points, ref_cdf - cur_cdf, gap_left, p, q, ref_n, cur_n)


def numeric_drift_exact(ref_counts: Mapping[float, int], cur_counts: Mapping[float, int]) -> dict:
    """The same metrics as `numeric_drift`, exactly, from the count of each distinct value (for columns
    of few distinct values, where a t-digest blurs the atoms). Equal to scipy's `ks_2samp` and
    `wasserstein_distance` on the expanded data; the ventile edges are the reference's exact quantiles
    Q(q) = min{x : F_ref(x) >= q} (numpy's `inverted_cdf`)."""
    values = np.array(sorted(v for v in set(ref_counts) | set(cur_counts)
                             if ref_counts.get(v, 0) or cur_counts.get(v, 0)), dtype=np.float64)
    ref = np.array([ref_counts.get(v, 0) for v in values], dtype=np.float64)
    cur = np.array([cur_counts.get(v, 0) for v in values], dtype=np.float64)
    ref_n, cur_n = int(ref.sum()), int(cur.sum())
    if ref_n <= 0 or cur_n <= 0:
        return dict(NUMERIC_NONE)
    ref_cdf, cur_cdf = np.cumsum(ref) / ref_n, np.cumsum(cur) / cur_n
    gap = ref_cdf - cur_cdf
    # Edges are values; the CDF at a value is read off the cumulative sums.
    at = np.unique(np.searchsorted(ref_cdf, np.array(BIN_RANKS) - 1e-12, side="left"))
    p = np.diff(np.concatenate([[0.0], ref_cdf[at], [1.0]]))
    q = np.diff(np.concatenate([[0.0], cur_cdf[at], [1.0]]))
    return _numeric_metrics(values, gap, np.concatenate([[0.0], gap[:-1]]), p, q, ref_n, cur_n)


NUMERIC_NONE = {"ks_test": None, "wasserstein_distance": None, "population_stability_index": None,
                "js_distance": None}


def _numeric_metrics(points: np.ndarray, gap: np.ndarray, gap_left: np.ndarray, p: np.ndarray, q: np.ndarray,
                     ref_n: int, cur_n: int) -> dict:
    """The metrics from F_ref - F_cur at the points (right values and left limits) and the bin probabilities."""
    statistic = float(np.max(np.abs(gap)))
    return {
        "ks_test": {"statistic": statistic, "pvalue": ks_pvalue(statistic, ref_n, cur_n)},
        "wasserstein_distance": _area_between(gap, gap_left, points),
        "population_stability_index": psi(p, q),
        "js_distance": js_distance(p, q),
    }


def categorical_drift(ref_counts: dict[str, int], cur_counts: dict[str, int]) -> dict:
    """Chi-squared test, TV, L-infinity and JS distance between two value distributions (module docstring)."""
    values = sorted(v for v in set(ref_counts) | set(cur_counts) if ref_counts.get(v, 0) or cur_counts.get(v, 0))
    ref = np.array([ref_counts.get(v, 0) for v in values], dtype=np.float64)
    cur = np.array([cur_counts.get(v, 0) for v in values], dtype=np.float64)
    ref_n, cur_n = ref.sum(), cur.sum()
    if ref_n <= 0 or cur_n <= 0:
        return {"chi_squared_test": None, "tv_distance": None, "l_infinity_distance": None, "js_distance": None}
    p, q = ref / ref_n, cur / cur_n
    diff = np.abs(p - q)
    return {
        "chi_squared_test": chi_squared(ref, cur),
        "tv_distance": float(diff.sum() / 2),
        "l_infinity_distance": float(diff.max()),
        "js_distance": js_distance(p, q),
    }


def ks_pvalue(statistic: float, ref_n: int, cur_n: int) -> float:
    """Asymptotic two-sided p-value of a two-sample KS statistic (module docstring)."""
    n = round(ref_n * cur_n / (ref_n + cur_n))
    if n <= KS_EXACT_N:
        return float(np.clip(kstwo.sf(statistic, n), 0.0, 1.0))
    return float(np.clip(special.kolmogorov(math.sqrt(n) * statistic), 0.0, 1.0))


def chi_squared(ref: np.ndarray, cur: np.ndarray) -> dict | None:
    """Pearson's chi-squared test of homogeneity on the 2 x k table [ref, cur] (k values, none all-zero)."""
    k = len(ref)
    if k < 2:
        return None
    table = np.vstack([ref, cur])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return {"statistic": statistic, "pvalue": float(chi2.sf(statistic, k - 1))}


def cdf(digest: tdigest_double, points: np.ndarray, left: bool = False) -> np.ndarray:
    """F(x) = P(X <= x) at sorted unique `points`: the digest's rank just above each point (right
    continuity, which matters at repeated values), exactly 0 below its minimum and 1 from its maximum.
    With `left`, the left limit F(x-) = P(X < x) instead: the rank just below, 0 up to the minimum."""
    lo, hi = digest.get_min_value(), digest.get_max_value()
    if left:
        at = np.nextafter(points, -np.inf)
        inside = (points > lo) & (points <= hi)
        values = np.where(points > hi, 1.0, 0.0)
    else:
        at = np.nextafter(points, np.inf)
        inside = (points >= lo) & (points < hi)
        values = np.where(points >= hi, 1.0, 0.0)
    if inside.any():
        # nextafter keeps distinct points distinct, so the split points stay strictly increasing.
        values[inside] = digest.get_cdf(at[inside].tolist())[:-1]
    return values


def bin_probabilities(ref_digest: tdigest_double, cur_digest: tdigest_double,
                      edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of both distributions in the right-closed bins (-inf, e1], ..., (e_last, +inf) on
    sorted unique `edges` (the reference's ventiles in `numeric_drift`)."""
    p = np.diff(np.concatenate([[0.0], cdf(ref_digest, edges), [1.0]]))
    q = np.diff(np.concatenate([[0.0], cdf(cur_digest, edges), [1.0]]))
    return np.clip(p, 0.0, None), np.clip(q, 0.0, None)


def psi(p: np.ndarray, q: np.ndarray) -> float:
    """Population stability index of current `q` against reference `p`, PSI_EPSILON for empty bins."""
    p = np.maximum(np.asarray(p, dtype=np.float64), PSI_EPSILON)
    q = np.maximum(np.asarray(q, dtype=np.float64), PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2) between two probability vectors (each normalised to sum 1)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    divergence = (special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()) / 2 / math.log(2)
    return float(math.sqrt(max(divergence, 0.0)))


def _area_between(gap_right: np.ndarray, gap_left: np.ndarray, points: np.ndarray) -> float:
    """Integral of |F_ref - F_cur| over the points' span, the gap taken as linear on each interval
    [x_i, x_i+1) from its value at x_i to its left limit at x_i+1 (so a jump, as at a constant
    column's single value, counts in full, and a sign change inside an interval is integrated exactly)."""
    g0, g1, width = gap_right[:-1], gap_left[1:], np.diff(points)
    size = np.abs(g0) + np.abs(g1)
    same_sign = g0 * g1 >= 0
    area = np.where(same_sign, size / 2, (g0 ** 2 + g1 ** 2) / (2 * np.where(size > 0, size, 1.0)))
    return float(np.sum(area * width))


def _points(digest: tdigest_double) -> np.ndarray:
    """Where to read a digest's CDF: its quantiles at GRID ranks (they fall on its centroids), min and max."""
    ranks = (1 - np.cos(np.pi * (np.arange(GRID) + 0.5) / GRID)) / 2  # denser toward the tails
    return np.array([digest.get_min_value(), *(digest.get_quantile(float(r)) for r in ranks),
                     digest.get_max_value()])
