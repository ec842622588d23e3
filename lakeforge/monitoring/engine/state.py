"""Mergeable per-window state, and its deterministic fold.

A monitor keeps, for every (granularity, window) and every group in it (slice key and value, model id),
one `GroupState`: per profiled column

- counts: nulls, NaNs, zeros, values (integer sums);
- moments: mean and M2 (sum of squared deviations), merged with Chan's parallel formula;
- min, max; string lengths (min, max, sum);
- distinct counts: HyperLogLog registers (hll.py; merge = element-wise max, order-free). For a categorical
  column whose value counts are exact (not truncated) they are None: the distinct count is the number of
  values, and the registers, a function of the set of values, are computed from the counts (DuckDB's
  hash() of each value, as for the rows) only when a merge truncates them, so most refreshes need no
  DuckDB at all;
- quantiles and numeric drift: a t-digest (`datasketches.tdigest_double`, deterministic for a given input
  and merge order; KLL's compaction is randomised), kept serialised: every fold step deserialises, merges
  and serialises again, so a refresh boundary in the middle of a fold cannot change the result;
- categorical values: exact counts up to VALUE_CAP distinct values, beyond which the most frequent
  are kept (ties by value) and `truncated` is set (distinct counts then come from the HLL);
- numeric values of columns with few distinct values: exact counts while a group has at most
  NUMERIC_VALUE_CAP distinct values (None once it has more: that never comes back). They give exact
  distinct counts, quantiles and drift for discrete columns, where a t-digest blurs the atoms;
- model quality (inference logs with labels): the stats engineer's QualityState, serialised.

Partial states are computed per (Delta data file, window, group) and folded into a window's state in a
fixed order: the file's commit version, then its path. Floating-point sums, t-digest merges and value-count
caps depend on that order, and nothing else does, so a full refresh (fold every current file) and any
sequence of incremental refreshes (continue a window's fold with newer files; re-fold a window that lost
files) give identical states.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from datasketches import tdigest_double

from lakeforge.monitoring.engine.hll import HLL

VALUE_CAP = 1000        # exact value counts kept per categorical column and group
NUMERIC_VALUE_CAP = 256  # exact counts kept per numeric column and group up to this many distinct values
SLICE_CAP = 1000        # slice values kept per slicing expression and window (the 100 most frequent are shown)
TDIGEST_K = 400        # t-digest compression: about 1% of rank at worst (datasketches measures ~3.5 / k)


@dataclass
class ValueCounts:
    counts: dict[str, int] = field(default_factory=dict)
    truncated: bool = False   # some values were dropped past VALUE_CAP

    def merge(self, other: ValueCounts) -> ValueCounts:
        counts = dict(self.counts)
        for value, n in other.counts.items():
            counts[value] = counts.get(value, 0) + n
        return capped(counts, self.truncated or other.truncated)

    def top(self, k: int) -> list[tuple[str, int]]:
        return sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:k]

    def sorted_counts(self) -> tuple[tuple[str, ...], np.ndarray]:
        """The values with a nonzero count, sorted, and their counts (float64); computed once (a state's
        counts never change: merges make new ones), for the drift of every window compared with it."""
        cached = self.__dict__.get("_sorted")
        if cached is None:
            values = tuple(sorted(v for v, n in self.counts.items() if n))
            cached = (values, np.array([self.counts[v] for v in values], dtype=np.float64))
            self.__dict__["_sorted"] = cached
        return cached

    def __getstate__(self) -> dict:
        return {"counts": self.counts, "truncated": self.truncated}  # not the cache


def capped(counts: dict[str, int], truncated: bool = False) -> ValueCounts:
    if len(counts) <= VALUE_CAP:
        return ValueCounts(counts, truncated)
    kept = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:VALUE_CAP]
    return ValueCounts(dict(kept), True)


@dataclass
class GroupState:
    """State of one (window, slice, model) group; arrays hold one entry per profiled column."""
    rows: int
    nulls: np.ndarray     # int64
    nans: np.ndarray      # int64
    zeros: np.ndarray     # int64
    n: np.ndarray         # int64: numeric values that are neither null nor NaN
    mean: np.ndarray      # float64 over those values
    m2: np.ndarray        # float64: sum of squared deviations from the mean
    vmin: np.ndarray      # float64, +inf when no value
    vmax: np.ndarray      # float64, -inf when no value
    len_min: np.ndarray   # int64 string lengths, LEN_NONE when no string
    len_max: np.ndarray   # int64, -1 when no string
    len_sum: np.ndarray   # int64
    hll: list            # HLL per column
    digest: list         # serialised t-digest per numeric column, else None
    counts: list         # ValueCounts per categorical column, else None
    values: list         # numeric columns: {value: count} while few distinct values, else None
    quality: bytes | None = None

    @classmethod
    def empty(cls, n_columns: int) -> GroupState:
        ints = lambda: np.zeros(n_columns, np.int64)
        return cls(0, ints(), ints(), ints(), ints(), np.zeros(n_columns), np.zeros(n_columns),
                   np.full(n_columns, np.inf), np.full(n_columns, -np.inf), np.full(n_columns, LEN_NONE),
                   np.full(n_columns, -1, np.int64), ints(), [HLL() for _ in range(n_columns)],
                   [None] * n_columns, [None] * n_columns, [None] * n_columns)


LEN_NONE = np.iinfo(np.int64).max


def merge(a: GroupState, b: GroupState, quality_merge=None, registers=None) -> GroupState:
    """The fold step: `a` holds earlier files, `b` a later one. `registers(values)` gives the HLL of a list
    of categorical values (needed when exact value counts get truncated)."""
    n = a.n + b.n
    delta = b.mean - a.mean
    with np.errstate(invalid="ignore", divide="ignore"):
        safe = np.maximum(n, 1)
        mean = np.where(n > 0, a.mean + delta * (b.n / safe), 0.0)
        m2 = np.where(n > 0, a.m2 + b.m2 + delta * delta * (a.n * b.n / safe), 0.0)
    mean = np.where(a.n == 0, b.mean, np.where(b.n == 0, a.mean, mean))
    m2 = np.where(a.n == 0, b.m2, np.where(b.n == 0, a.m2, m2))
    counts = [x.merge(y) if x is not None and y is not None else (x if y is None else y)
              for x, y in zip(a.counts, b.counts)]
    return GroupState(
        rows=a.rows + b.rows, nulls=a.nulls + b.nulls, nans=a.nans + b.nans, zeros=a.zeros + b.zeros,
        n=n, mean=mean, m2=m2, vmin=np.minimum(a.vmin, b.vmin), vmax=np.maximum(a.vmax, b.vmax),
        len_min=np.minimum(a.len_min, b.len_min), len_max=np.maximum(a.len_max, b.len_max),
        len_sum=a.len_sum + b.len_sum,
        hll=[merge_hll(x, y, xc, yc, c, registers) for x, y, xc, yc, c in zip(a.hll, b.hll, a.counts, b.counts, counts)],
        digest=[merge_digests(x, y) for x, y in zip(a.digest, b.digest)],
        counts=counts,
        values=[merge_values(x, y) for x, y in zip(a.values, b.values)],
        quality=_merge_quality(a.quality, b.quality, quality_merge),
    )


def merge_hll(a: HLL | None, b: HLL | None, a_counts: ValueCounts | None, b_counts: ValueCounts | None,
              merged: ValueCounts | None, registers) -> HLL | None:
    """Registers of a merge; None (left to the counts) while the merged categorical counts are exact. A
    side that was exact until now gets its registers from all its values, before the cap drops some."""
    if a is not None and b is not None:
        return a.merge(b)
    if merged is not None and not merged.truncated:
        return None
    if registers is None:
        raise ValueError("merging value counts past the cap needs the registers of their values")
    a = a if a is not None else registers(list(a_counts.counts))
    b = b if b is not None else registers(list(b_counts.counts))
    return a.merge(b)


def merge_digests(a: bytes | None, b: bytes | None) -> bytes | None:
    if a is None or b is None:
        return a if b is None else b
    digest = tdigest_double.deserialize(a)
    digest.merge(tdigest_double.deserialize(b))
    return digest.serialize()


def merge_values(a: dict | None, b: dict | None) -> dict | None:
    """Exact numeric value counts: None (too many values) absorbs; so the result is order-free."""
    if a is None or b is None:
        return None
    merged = dict(a)
    for value, n in b.items():
        merged[value] = merged.get(value, 0) + n
    return merged if len(merged) <= NUMERIC_VALUE_CAP else None


def _merge_quality(a, b, quality_merge):
    if a is None or b is None:
        return a if b is None else b
    return quality_merge(a, b)


def stddev(state: GroupState) -> np.ndarray:
    """Sample standard deviation (ddof = 1); NaN with fewer than two values."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(state.n > 1, np.sqrt(np.maximum(state.m2, 0.0) / np.maximum(state.n - 1, 1)), np.nan)


def distinct(state: GroupState, i: int) -> int:
    counts = state.counts[i]
    if counts is not None and not counts.truncated:
        return len(counts.counts)
    if state.values[i] is not None:
        return len(state.values[i])
    return round(state.hll[i].estimate())


def exact_quantiles(values: dict, qs) -> list[float]:
    """Quantiles of the counted values, interpolated linearly as numpy's default method (bit for bit)."""
    keys = sorted(values)
    x = np.array(keys, dtype=np.float64)
    ends = np.cumsum([values[k] for k in keys])  # sorted position of each value's last copy, plus one
    result = []
    for q in qs:
        h = (ends[-1] - 1) * q
        lo, hi = int(np.floor(h)), int(np.ceil(h))
        x_lo = x[np.searchsorted(ends, lo, side="right")]
        x_hi = x[np.searchsorted(ends, hi, side="right")]
        t = h - lo
        # numpy's lerp: from the nearer end
        result.append(float(x_hi - (1 - t) * (x_hi - x_lo) if t >= 0.5 else x_lo + t * (x_hi - x_lo)))
    return result


Windows = dict  # window key -> {group key: GroupState}


def fold(windows: Windows, partials: list, quality_merge=None, registers=None) -> set:
    """Fold partial states into `windows` in their files' fold order (partials of one file are adjacent
    and files come in order); returns the window keys changed. After each file, slicing expressions with
    more than SLICE_CAP values in a window keep the SLICE_CAP most frequent (ties by value), so even that
    cut depends only on the fold order."""
    changed: set = set()
    partials = sorted(partials, key=lambda p: p.file)  # stable: groups of one file stay in their order
    i = 0
    while i < len(partials):
        j = i
        touched = set()
        while j < len(partials) and partials[j].file == partials[i].file:
            p = partials[j]
            groups = windows.setdefault(p.window, {})
            current = groups.get(p.group)
            groups[p.group] = p.state if current is None else merge(current, p.state, quality_merge, registers)
            touched.add(p.window)
            j += 1
        for window in touched:
            if len(windows[window]) > SLICE_CAP:
                prune_slices(windows[window])
        changed |= touched
        i = j
    return changed


def prune_slices(groups: dict) -> None:
    by_key: dict = {}
    for slice_key, value, model in groups:
        if slice_key is not None and model is None:
            by_key.setdefault(slice_key, []).append(value)
    for slice_key, values in by_key.items():
        if len(values) <= SLICE_CAP:
            continue
        ranked = sorted(values, key=lambda v: (-groups[(slice_key, v, None)].rows, v))
        dropped = set(ranked[SLICE_CAP:])
        for key in [k for k in groups if k[0] == slice_key and k[1] in dropped]:
            del groups[key]
