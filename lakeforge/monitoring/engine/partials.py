"""Partial states of one chunk of rows: one GroupState per (data file, window, slice, model id).

Groups: for every granularity, the whole table (slice key and value null) and, for each slicing
expression independently, one group per value of the expression (SQL, evaluated by DuckDB, cast to
text: a boolean expression gives "true"/"false"; rows where it is null are in no slice of it); for
inference logs each of those once per model id and once across all models (model id null). Rows whose
timestamp is null fall in no window.

Everything is vectorised with numpy over the chunk: for each grouping, the rows are stably sorted by group
(file, window, slice value, model), so a group's rows keep their order in the file; counts, sums and
sums of squared deviations are `np.bincount`s over those sorted rows, which add each group's values one
after the other in that order. Large files are cut into pieces of PIECE_ROWS rows at fixed offsets, and
a file's pieces are folded in order. So a file's partial state does not depend on which other files were
read with it, and sums are bit-for-bit reproducible; we do not use DuckDB's SUM here, because with several
threads its double sums are not deterministic. Min/max use `np.minimum.at`, t-digests take each group's
contiguous slice of values in one `update(array)` call, HLL registers come from hll.per_group (for
categorical columns only in groups whose value counts overflow VALUE_CAP: see state.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import pairwise

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasketches import tdigest_double

from lakeforge.errors import InvalidParameter
from lakeforge.monitoring.engine import hll, tdigest, windows
from lakeforge.monitoring.engine.columns import CATEGORICAL, NUMERIC, Column
from lakeforge.monitoring.engine.model_quality import QualityUpdater
from lakeforge.monitoring.engine.scan import FILE_COLUMN, Chunk
from lakeforge.monitoring.engine.state import (
    LEN_NONE,
    NUMERIC_VALUE_CAP,
    TDIGEST_K,
    VALUE_CAP,
    GroupState,
    ValueCounts,
)
from lakeforge.monitoring.spec import MonitorSpec

# Rows of a file are processed in pieces of this many, so that the per-column work arrays stay small; a
# file's partial states are those of its pieces folded in order.
PIECE_ROWS = 1 << 17


@dataclass
class Plan:
    """What to group a chunk's rows by, and what to compute for each group."""
    columns: list[Column]
    granularities: list[str]                 # time windows; ignored when fixed_window is set
    slicing_exprs: list[str]
    timestamp_col: str | None = None
    model_col: str | None = None
    fixed_window: tuple[str, int] | None = None  # snapshot / baseline: every row in this one window
    window_filter: dict[str, set[int]] | None = None  # only these windows (a re-fold of dirty windows)
    quality: MonitorSpec | None = None       # inference logs with labels: model quality per group


@dataclass
class Partial:
    file: int                                 # position of the file in the fold order
    window: tuple[str, int]
    group: tuple[str | None, str | None, str | None]
    state: GroupState


@dataclass
class _Grouping:
    granularity: str
    ordinals: np.ndarray        # window ordinal per row (windows.ordinals)
    slice_index: int | None     # which slicing expression, None for the whole table
    per_model: bool
    rows: np.ndarray            # row indices sorted by group (stable)
    gid: np.ndarray             # group id of each sorted row
    n_groups: int
    piece: tuple[int, int]      # the rows' piece of the chunk (see _pieces)


def timestamps_us(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Epoch microseconds (UTC; timestamps without a time zone are taken as UTC) and a validity mask."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    t = arr.type
    if pa.types.is_date(t):
        arr = pc.cast(arr, pa.timestamp("us"))
    elif pa.types.is_timestamp(t) and t.unit != "us":
        arr = pc.cast(arr, pa.timestamp("us", tz=t.tz))
    elif not pa.types.is_timestamp(t):
        raise InvalidParameter(f"Timestamp column has type {t}, not a timestamp or date")
    valid = np.asarray(arr.is_valid())
    values = np.asarray(pc.fill_null(arr.view(pa.int64()), 0))
    return values, valid


def compute(chunk: Chunk, plan: Plan, con: duckdb.DuckDBPyConnection) -> tuple[list[Partial], dict]:
    """Partial states of a chunk, and the windows each of its files has rows in ({file: {window key}};
    complete only without a window filter). The profiled columns are read one at a time."""
    n = chunk.num_rows
    files = np.asarray(chunk.column(FILE_COLUMN).combine_chunks())
    slices = _evaluate_slices(chunk.table, plan.slicing_exprs, con)
    models = _codes(chunk.column(plan.model_col)) if plan.model_col else None

    if plan.fixed_window:
        granularities = [plan.fixed_window[0]]
        ordinals = {plan.fixed_window[0]: np.zeros(n, np.int64)}
        in_window = np.ones(n, bool)
    else:
        granularities = list(plan.granularities)
        ts, in_window = timestamps_us(chunk.column(plan.timestamp_col))
        ordinals = {g: windows.ordinals(g, ts) for g in granularities}

    groupings = []
    file_codes = _dense(files, np.ones(n, bool))
    pieces = _pieces(files)
    for g in granularities:
        mask = in_window
        if plan.window_filter is not None:
            allowed = windows.ordinals(g, np.fromiter(plan.window_filter.get(g, ()), np.int64))
            mask = mask & np.isin(ordinals[g], allowed)
        window_codes = _dense(ordinals[g], mask)
        for s in [None, *range(len(slices))]:
            for per_model in ([False, True] if models is not None else [False]):
                m = mask
                parts = [file_codes, window_codes]
                if s is not None:
                    m = m & (slices[s][0] >= 0)
                    parts.append((slices[s][0], len(slices[s][1])))
                if per_model:
                    m = m & (models[0] >= 0)
                    parts.append((models[0], len(models[1])))
                for a, b in pieces:
                    rows = np.flatnonzero(m[a:b]) + a
                    groupings.append(_group(g, ordinals[g], s, per_model, rows, parts, (a, b)))

    categorical = [c.kind == CATEGORICAL for c in plan.columns]
    tables = [_GroupTable(gr, len(plan.columns), categorical) for gr in groupings]
    by_piece: dict[tuple[int, int], list[_GroupTable]] = {}
    for table in tables:
        by_piece.setdefault(table.g.piece, []).append(table)
    for ci, column in enumerate(plan.columns):
        whole = chunk.column(pa.field(column.name, column.arrow)).combine_chunks()
        # Categories: one dictionary per chunk (hashed by DuckDB only if a group's counts overflow), codes
        # sliced per piece. Numbers and times: the work arrays of one piece at a time, so they stay small
        # however large the file.
        shared = _ColumnValues.of(whole, column, con) if column.kind == CATEGORICAL else None
        for (a, b), piece_tables in by_piece.items():
            values = shared.piece(a, b) if shared is not None else _ColumnValues.of(whole.slice(a, b - a), column, con)
            for table in piece_tables:
                table.add_column(ci, values)
    if plan.quality is not None:
        updater = QualityUpdater(chunk, plan.quality)
        for table in tables:
            table.add_quality(updater)

    partials, touched = [], {}
    for table in tables:
        found = table.partials(files, slices, models, plan.slicing_exprs, plan.fixed_window)
        partials.extend(found)
        if table.g.slice_index is None and not table.g.per_model:  # the whole table: every (file, window)
            for p in found:
                touched.setdefault(p.file, set()).add(p.window)
    return partials, touched


def _pieces(files: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges of about PIECE_ROWS rows: small files together, a larger file alone, cut at fixed offsets
    from its first row. Either way a file's rows are cut the same way whichever files it is read with,
    and its partial states (grouped by file) do not depend on the files beside it."""
    bounds = np.flatnonzero(np.concatenate([[True], files[1:] != files[:-1], [True]])).tolist()
    pieces: list[tuple[int, int]] = []
    for start, end in pairwise(bounds):
        if end - start > PIECE_ROWS:
            pieces += [(a, min(a + PIECE_ROWS, end)) for a in range(start, end, PIECE_ROWS)]
        elif pieces and pieces[-1][1] == start and end - pieces[-1][0] <= PIECE_ROWS \
                and pieces[-1][1] - pieces[-1][0] < PIECE_ROWS:
            pieces[-1] = (pieces[-1][0], end)
        else:
            pieces.append((start, end))
    return pieces


def _dense(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Codes 0..k-1 (an offset from the smallest value under `mask`) and k, for small-range integers."""
    if not mask.any():
        return np.zeros(len(values), np.int64), 1
    lo, hi = int(values[mask].min()), int(values[mask].max())
    return values.astype(np.int64) - lo, hi - lo + 1


def _group(granularity, ordinals, slice_index, per_model, rows, parts, piece) -> _Grouping:
    """Sort `rows` by group (stably) and number the groups; `parts` are (codes, cardinality) pairs."""
    key = np.zeros(len(rows), np.int64)
    span = 1
    for codes, cardinality in parts:
        if span * cardinality >= 1 << 62:  # renumber densely before the key could overflow
            uniques, key = np.unique(key, return_inverse=True)
            key, span = key.reshape(-1).astype(np.int64), len(uniques)
        key = key * cardinality + codes[rows]
        span *= cardinality
    # small keys sort by radix (numpy's stable sort of 16-bit integers)
    order = np.argsort(key.astype(np.uint16) if span <= 1 << 16 else key, kind="stable")
    sorted_key = key[order]
    new = np.ones(len(order), bool)
    new[1:] = sorted_key[1:] != sorted_key[:-1]
    gid = np.cumsum(new) - 1
    return _Grouping(granularity, ordinals, slice_index, per_model, rows[order], gid,
                     int(gid[-1]) + 1 if len(gid) else 0, piece)


def _codes(column) -> tuple[np.ndarray, list]:
    """Dictionary codes (-1 for null) and the distinct values as text."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    encoded = pc.dictionary_encode(arr)
    codes = np.asarray(pc.fill_null(encoded.indices, -1)).astype(np.int64)
    return codes, encoded.dictionary.to_pylist()


def _evaluate_slices(chunk: pa.Table, exprs: list[str], con) -> list[tuple[np.ndarray, list]]:
    if not exprs:
        return []
    con.register("__lf_rows", chunk)
    try:
        select = ", ".join(f"CAST(({e}) AS VARCHAR) AS s{i}" for i, e in enumerate(exprs))
        try:
            result = con.sql(f"SELECT {select} FROM __lf_rows").to_arrow_table()
        except duckdb.Error as exc:
            raise InvalidParameter(f"Slicing expression could not be evaluated: {exc}") from None
    finally:
        con.unregister("__lf_rows")
    return [_codes(result.column(i)) for i in range(len(exprs))]


@dataclass
class _ColumnValues:
    """One column's values prepared once per chunk: numbers, or dictionary codes with per-value data."""
    column: Column
    null: np.ndarray
    x: np.ndarray | None = None           # numeric: float64 values
    nan: np.ndarray | None = None
    codes: np.ndarray | None = None       # categorical: codes into `values`, -1 for null
    values: list | None = None
    lengths: np.ndarray | None = None     # string length per code
    idx: np.ndarray | None = None         # HLL register per row (numeric, temporal) or per code (categorical)
    rank: np.ndarray | None = None
    con: object = None                    # strings: their registers are hashed on demand (see `positions`)

    @classmethod
    def of(cls, column: pa.Array | pa.ChunkedArray, col: Column, con) -> _ColumnValues:
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        null = ~np.asarray(arr.is_valid())
        if col.kind == NUMERIC:
            if pa.types.is_floating(arr.type):
                x = np.asarray(pc.fill_null(pc.cast(arr, pa.float64()), 0.0))
                nan = np.isnan(x) & ~null
                bits = np.where(x == 0, 0.0, x)  # -0.0 and 0.0 are one value
            else:
                ints = pa.types.is_integer(arr.type)
                x = np.asarray(pc.fill_null(pc.cast(arr, pa.float64()), 0.0))
                nan = np.zeros(len(x), bool)
                bits = np.asarray(pc.fill_null(pc.cast(arr, pa.int64()), 0)) if ints else np.where(x == 0, 0.0, x)
            idx, rank = hll.positions(hll.mix(np.ascontiguousarray(bits)))
            return cls(col, null, x=x, nan=nan, idx=idx, rank=rank)
        if col.kind == CATEGORICAL:
            if pa.types.is_boolean(arr.type):
                codes = np.where(null, -1, np.asarray(pc.fill_null(arr, False)).astype(np.int64))
                values = ["false", "true"]
                idx, rank = hll.positions(hll.mix(np.array([0, 1], np.int64)))
                return cls(col, null, codes=codes, values=values, idx=idx, rank=rank)
            codes, values = _codes(arr)
            lengths = np.asarray(pc.utf8_length(pa.array(values, pa.string())).fill_null(0)).astype(np.int64)
            return cls(col, null, codes=codes, values=values, lengths=lengths, con=con)
        micros, _ = timestamps_us(arr)  # temporal: only counts and distinct values
        idx, rank = hll.positions(hll.mix(micros))
        return cls(col, null, idx=idx, rank=rank)

    def piece(self, a: int, b: int) -> _ColumnValues:
        """Rows a..b of categorical values (the per-value arrays are shared)."""
        return replace(self, null=self.null[a:b], codes=self.codes[a:b])

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """HLL register and rank of each value (categorical: per code, hashed when first asked)."""
        if self.idx is None:
            self.idx, self.rank = hll.positions(value_hashes(self.con, self.values))
        return self.idx, self.rank


def value_hashes(con, values: list[str]) -> np.ndarray:
    """DuckDB's hash() of each string (the hash the HLL registers of categorical values are made of)."""
    dictionary = pa.table({"v": pa.array(values, pa.string())})
    return np.asarray(con.from_arrow(dictionary).select("hash(v) AS h").to_arrow_table().column(0).combine_chunks())


def value_registers(con, values: list[str]) -> hll.HLL:
    """The HLL registers of a set of string values, as the rows' give them (state.merge, when exact counts get
    truncated; boolean columns, with two values, never are)."""
    if not values:
        return hll.EMPTY
    idx, rank = hll.positions(value_hashes(con, values))
    return hll.per_group(np.zeros(len(idx), np.int64), idx, rank, 1)[0]


class _GroupTable:
    """Per-group arrays (groups x columns) for one grouping, filled column by column."""

    def __init__(self, grouping: _Grouping, n_columns: int, categorical: list[bool]):
        self.g = grouping
        self.categorical = categorical
        G = grouping.n_groups
        self.rows = np.bincount(grouping.gid, minlength=G).astype(np.int64)
        zeros = lambda dtype=np.int64: np.zeros((G, n_columns), dtype)
        self.nulls, self.nans, self.zeros_, self.n = zeros(), zeros(), zeros(), zeros()
        self.mean, self.m2 = zeros(np.float64), zeros(np.float64)
        self.vmin = np.full((G, n_columns), np.inf)
        self.vmax = np.full((G, n_columns), -np.inf)
        self.len_min = np.full((G, n_columns), LEN_NONE, np.int64)
        self.len_max = np.full((G, n_columns), -1, np.int64)
        self.len_sum = zeros()
        self.hll = [[None] * n_columns for _ in range(G)]
        self.digest = [[None] * n_columns for _ in range(G)]
        self.counts = [[None] * n_columns for _ in range(G)]
        self.values = [[None] * n_columns for _ in range(G)]
        self.quality: list[bytes | None] = [None] * G
        local = grouping.rows - grouping.piece[0]  # row positions within the piece
        # All of the piece's rows, already in group order (a file of one window, no slices, a baseline):
        # a view instead of gathering every column through the index; the same values either way.
        size = grouping.piece[1] - grouping.piece[0]
        identity = local.size == size and (size == 0 or (local[0] == 0 and local[-1] == size - 1
                                                          and bool(np.all(local[1:] > local[:-1]))))
        self._local = slice(None) if identity else local

    def add_column(self, ci: int, v: _ColumnValues) -> None:
        """Column `ci`'s per-group figures from `v`, the column's values in this grouping's piece."""
        g, G = self.g.gid, self.g.n_groups
        if G == 0:
            return
        rows = self._local
        null = v.null[rows]
        self.nulls[:, ci] = np.bincount(g[null], minlength=G)
        if v.x is not None:
            x, nan = v.x[rows], v.nan[rows]
            valid = ~null & ~nan
            gv, xv = g[valid], x[valid]
            self.nans[:, ci] = np.bincount(g[nan], minlength=G)
            self.zeros_[:, ci] = np.bincount(gv[xv == 0], minlength=G)
            n = np.bincount(gv, minlength=G)
            mean = np.bincount(gv, weights=xv, minlength=G) / np.maximum(n, 1)
            self.n[:, ci], self.mean[:, ci] = n, mean
            self.m2[:, ci] = np.bincount(gv, weights=(xv - mean[gv]) ** 2, minlength=G)
            lo, hi = np.full(G, np.inf), np.full(G, -np.inf)
            np.minimum.at(lo, gv, xv)
            np.maximum.at(hi, gv, xv)
            self.vmin[:, ci], self.vmax[:, ci] = lo, hi
            bounds = np.searchsorted(gv, np.arange(G + 1))
            for k in range(G):
                a, b = bounds[k], bounds[k + 1]
                self.values[k][ci] = {}
                if b > a:  # sorted first: the same digest for the same values, and twice as fast
                    ordered = np.sort(xv[a:b])
                    if ordered.size >= tdigest.MIN_VALUES:
                        self.digest[k][ci] = tdigest.from_sorted(ordered, TDIGEST_K)
                    else:
                        digest = tdigest_double(TDIGEST_K)
                        digest.update(ordered)
                        self.digest[k][ci] = digest.serialize()
                    self.values[k][ci] = _exact_values(ordered)
            self._hll(ci, gv, v.idx[rows][valid], v.rank[rows][valid])
        elif v.codes is not None:
            codes = v.codes[rows]
            present = codes >= 0
            gv, cv = g[present], codes[present]
            if v.lengths is not None:
                lengths = v.lengths[cv]
                lo, hi = np.full(G, LEN_NONE, np.int64), np.full(G, -1, np.int64)
                np.minimum.at(lo, gv, lengths)
                np.maximum.at(hi, gv, lengths)
                self.len_min[:, ci], self.len_max[:, ci] = lo, hi
                self.len_sum[:, ci] = np.bincount(gv, weights=lengths, minlength=G).round().astype(np.int64)
            self._value_counts(ci, gv, cv, v.values)
            # Registers only where the counts were truncated (past VALUE_CAP values): elsewhere they follow
            # from the exact counts, and are left None (state.merge computes them if a merge truncates).
            truncated = [k for k in range(G) if self.counts[k][ci].truncated]
            if truncated:
                idx, rank = v.positions()
                keep = np.isin(gv, truncated)
                registers = hll.per_group(gv[keep], idx[cv[keep]], rank[cv[keep]], G)
                for k in truncated:
                    self.hll[k][ci] = registers[k]
        else:
            valid = ~null
            self._hll(ci, g[valid], v.idx[rows][valid], v.rank[rows][valid])

    def _hll(self, ci, gv, idx, rank) -> None:
        for k, registers in enumerate(hll.per_group(gv, idx, rank, self.g.n_groups)):
            self.hll[k][ci] = registers

    def _value_counts(self, ci, gv, cv, values) -> None:
        G, V = self.g.n_groups, max(len(values), 1)
        if G * V <= 1 << 22:
            counts = np.bincount(gv * V + cv, minlength=G * V).reshape(G, V)
            for k in range(G):
                nz = np.flatnonzero(counts[k])
                self.counts[k][ci] = _capped(nz, counts[k][nz], values)
            return
        pairs, counts = np.unique(gv.astype(np.int64) * V + cv, return_counts=True)
        bounds = np.searchsorted(pairs // V, np.arange(G + 1))
        for k in range(G):
            a, b = bounds[k], bounds[k + 1]
            self.counts[k][ci] = _capped(pairs[a:b] % V, counts[a:b], values)

    def add_quality(self, updater: QualityUpdater) -> None:
        bounds = np.searchsorted(self.g.gid, np.arange(self.g.n_groups + 1))
        for k in range(self.g.n_groups):
            self.quality[k] = updater.partial(self.g.rows[bounds[k]:bounds[k + 1]])

    def partials(self, files, slices, models, exprs, fixed_window) -> list[Partial]:
        gr = self.g
        if gr.n_groups == 0:
            return []
        first = gr.rows[np.searchsorted(gr.gid, np.arange(gr.n_groups))]
        if fixed_window:
            window_keys = [fixed_window] * gr.n_groups
        else:
            starts = windows.starts_of(gr.granularity, gr.ordinals[first]).tolist()
            window_keys = [(gr.granularity, start) for start in starts]
        result = []
        for k, row in enumerate(first.tolist()):
            slice_key = exprs[gr.slice_index] if gr.slice_index is not None else None
            slice_value = None
            if gr.slice_index is not None:
                codes, values = slices[gr.slice_index]
                slice_value = values[codes[row]]
            model = models[1][models[0][row]] if gr.per_model else None
            state = GroupState(
                rows=int(self.rows[k]), nulls=self.nulls[k].copy(), nans=self.nans[k].copy(),
                zeros=self.zeros_[k].copy(), n=self.n[k].copy(), mean=self.mean[k].copy(), m2=self.m2[k].copy(),
                vmin=self.vmin[k].copy(), vmax=self.vmax[k].copy(), len_min=self.len_min[k].copy(),
                len_max=self.len_max[k].copy(), len_sum=self.len_sum[k].copy(),
                hll=[h if h is not None or cat else hll.EMPTY for h, cat in zip(self.hll[k], self.categorical)],
                digest=self.digest[k], counts=self.counts[k], values=self.values[k], quality=self.quality[k])
            result.append(Partial(int(files[row]), window_keys[k], (slice_key, slice_value, model), state))
        return result


def _exact_values(ordered: np.ndarray) -> dict | None:
    """{value: count} of sorted values, or None past NUMERIC_VALUE_CAP distinct values."""
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    if len(starts) > NUMERIC_VALUE_CAP:
        return None
    counts = np.diff(np.append(starts, len(ordered)))
    return dict(zip((ordered[starts] + 0.0).tolist(), counts.tolist()))  # + 0.0: -0.0 is 0.0


def _capped(codes: np.ndarray, counts: np.ndarray, values: list) -> ValueCounts:
    truncated = len(codes) > VALUE_CAP
    if truncated:  # the most frequent values, ties by value text
        order = sorted(range(len(codes)), key=lambda i: (-int(counts[i]), values[codes[i]]))[:VALUE_CAP]
        codes, counts = codes[order], counts[order]
    return ValueCounts({values[c]: int(n) for c, n in zip(codes.tolist(), counts.tolist())}, truncated)
