"""Exact sums of float64 values, so that merged metric state does not depend on how rows were split.

A float sum depends on the order of its terms; state that is merged from parts (an incremental refresh
adds a new part to a window's stored state, a full refresh sums the window at once) would then differ
from a one-pass computation in the last bits. Here a sum is kept exactly, as a Python integer count of
2**-SCALE_BITS (every finite double is an integer multiple of that), and only the final value is
rounded, once, to the nearest double: any split of the same rows gives the same bits.

Cost: one `frexp`, one sort by exponent and a few integer reductions per array (about 0.1 s for 1M
values), and an integer of a few hundred bytes per sum.
"""

from __future__ import annotations

import numpy as np

SCALE_BITS = 1126  # frexp mantissas are 53-bit integers times 2**(e - 53), and e - 53 >= -1126
_HALF = 26  # mantissas are summed in two halves so that int64 sums cannot overflow
_SPLIT = 134217729.0  # 2**27 + 1, Veltkamp's splitting constant for doubles


def exact_sum(values: np.ndarray) -> int:
    """The exact sum of finite float64 `values`, in units of 2**-SCALE_BITS."""
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[x != 0]
    if x.size == 0:
        return 0
    if not np.isfinite(x).all():
        raise ValueError("exact_sum of a non-finite value")
    mantissa, exponent = np.frexp(x)
    ints = (mantissa * 2.0 ** 53).astype(np.int64)  # exact: a double has 53 significant bits
    order = np.argsort(exponent, kind="stable")
    exponent = exponent[order]
    starts = np.flatnonzero(np.concatenate([[True], exponent[1:] != exponent[:-1]]))
    ints = ints[order]
    high = np.add.reduceat(ints >> _HALF, starts).tolist()
    low = np.add.reduceat(ints & ((1 << _HALF) - 1), starts).tolist()
    total = 0
    for e, h, lo in zip(exponent[starts].tolist(), high, low):
        total += ((h << _HALF) + lo) << (e - 53 + SCALE_BITS)
    return total


def exact_square_sum(values: np.ndarray) -> int:
    """The exact sum of the squares of float64 `values` (|x| below about 1e150 and, for full exactness,
    above about 1e-150), in units of 2**-SCALE_BITS. Each square is split exactly into its rounded
    value and the rounding error (Dekker's product), and both are summed exactly."""
    x = np.asarray(values, dtype=np.float64).ravel()
    square = x * x
    c = _SPLIT * x
    high = c - (c - x)
    low = x - high
    error = ((high * high - square) + 2 * high * low) + low * low
    return exact_sum(square) + exact_sum(error)


def to_float(total: int, count: int = 1) -> float:
    """total * 2**-SCALE_BITS / count, rounded once to the nearest double (Python's int division is
    correctly rounded)."""
    return total / (count << SCALE_BITS)
