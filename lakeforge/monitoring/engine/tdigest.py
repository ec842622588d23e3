"""A t-digest built straight from sorted values, in datasketches' serialized form.

datasketches' `tdigest_double.update(array)` costs about 24 ns a value whatever k is (it buffers
and re-compresses as it goes): at 1M rows x 20 numeric columns, twice (the window and the baseline),
that is most of a first refresh. Values arrive here sorted, so the centroids can be cut in one pass:
the points whose scale-function value k1(q) = k / (2 pi) * asin(2q - 1) falls in the same unit
interval form one centroid (the merging t-digest's invariant: no centroid spans more than one unit
of k1), plus the minimum and the maximum alone in the first and last centroids: about k/2 centroids in all. Measured on 131k
lognormal values at k=400: 0.74 ms instead of 3.1 ms, and a smaller worst rank error (0.8% vs 1.2%).
The result is an ordinary datasketches digest (`tdigest_double.deserialize` reads it; merges and
queries are datasketches'), and a pure function of the values, so partial states stay deterministic.
"""

from __future__ import annotations

import struct

import numpy as np

# Below this many values datasketches' own update is as cheap and the digest is then exactly its own.
MIN_VALUES = 4096
_HEADER = struct.Struct("<BBBHBH")  # preamble longs, serial version, sketch type, k, flags, unused
_PREAMBLE_LONGS, _SERIAL_VERSION, _SKETCH_TYPE = 2, 1, 20
_CENTROID = np.dtype([("mean", "<f8"), ("weight", "<u8")])


def from_sorted(values: np.ndarray, k: int) -> bytes:
    """The serialized t-digest of `values` (sorted ascending, no NaN, at least one value)."""
    n = values.size
    q = (np.arange(n) + 0.5) / n
    scale = (k / (2 * np.pi)) * np.arcsin(2 * q - 1)
    unit = np.floor(scale - scale[0]).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, unit[1:] != unit[:-1]])
    # The minimum and the maximum alone in the first and last centroids, as datasketches keeps them
    # (its get_rank between the minimum and a first mean that is not the minimum is not normalised).
    starts = np.union1d(starts, [0, 1, n - 1] if n > 2 else np.arange(n))
    weights = np.diff(np.r_[starts, n])
    centroids = np.empty(len(starts), _CENTROID)
    centroids["mean"] = np.add.reduceat(values, starts) / weights
    centroids["weight"] = weights
    return (_HEADER.pack(_PREAMBLE_LONGS, _SERIAL_VERSION, _SKETCH_TYPE, k, 0, 0)
            + struct.pack("<II", len(starts), 0) + struct.pack("<dd", float(values[0]), float(values[-1]))
            + centroids.tobytes())
