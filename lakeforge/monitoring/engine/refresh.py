"""One refresh of a monitor: read what changed in the Delta table, fold it into window states, rewrite the
metric tables, commit the state.

Time series and inference logs (incremental by Delta version):
1. Diff the table's current data files against the files the state was folded from (state_store.py).
2. Windows that files removed since then had rows in (delete, update, overwrite, optimize) are dirty: their
   states are re-folded from the current files that have rows in them.
3. New files' partial states continue the fold of the windows they touch (a late row updates its old window).
4. Profile rows are recomputed for the touched windows; drift rows for those and the CONSECUTIVE rows of
   the window after each (that comparison changed; its BASELINE rows did not). Both metric tables are
   rewritten whole (old untouched rows plus the new ones), one Delta overwrite commit each, then the
   state is committed: the last step.
The first refresh, a changed configuration (monitor_version, columns, ...), a changed baseline version,
or full=True folds every current file: all of the table's history, with no 30-day look-back limit.
Windows the state knows whose rows are all gone stay, as count-0 rows.

Snapshots profile the whole table each refresh as one window at the refresh time (`now`); earlier
snapshots' rows stay in the tables, and CONSECUTIVE drift compares with the previous snapshot.

A refresh that fails or is cancelled leaves the state as it was and puts the metric tables back to the
versions they had (Delta restore) if it had written them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from lakeforge import clock
from lakeforge.errors import InvalidParameter
from lakeforge.monitoring import tables
from lakeforge.monitoring.engine import baseline as baselines
from lakeforge.monitoring.engine import custom_metrics, model_quality, partials, windows
from lakeforge.monitoring.engine.columns import profiled_columns
from lakeforge.monitoring.engine.drift import REFERENCE_MODEL, drift_rows
from lakeforge.monitoring.engine.output import MetricTable, rows_to_table
from lakeforge.monitoring.engine.profile import (
    RowContext,
    empty_rows,
    profile_rows,
    window_struct,
)
from lakeforge.monitoring.engine.scan import SourceTable, fold_order, referenced_columns
from lakeforge.monitoring.engine.state import fold
from lakeforge.monitoring.engine.state_store import (
    FORMAT,
    FileEntry,
    Manifest,
    StateStore,
)
from lakeforge.monitoring.spec import INFERENCE_LOG, SNAPSHOT, MonitorSpec

log = logging.getLogger(__name__)


class RefreshCancelled(Exception):
    """The refresh stopped because `cancelled()` said so; tables and state are as before it started."""


@dataclass
class RefreshResult:
    source_version: int        # Delta version of the monitored table that was read (logging_table_commit_version)
    full: bool                 # True when every window was recomputed
    rows_read: int             # rows of the monitored table read by this refresh
    windows_recomputed: int
    profile_rows: int          # rows now in the profile metrics table
    drift_rows: int


def refresh(source: str, spec: MonitorSpec, *, state_dir: Path, profile_path: str, drift_path: str,
            baseline: str | None = None, full: bool = False, now: datetime | None = None,
            progress: Callable[[float, str], None] | None = None,
            cancelled: Callable[[], bool] | None = None) -> RefreshResult:
    """Bring the metric tables of a monitor up to date with `source` (module docstring)."""
    return _Refresh(source, spec, Path(state_dir), profile_path, drift_path, baseline, full,
                    now or clock.now(), progress, cancelled).run()


class _Refresh:
    def __init__(self, source, spec, state_dir, profile_path, drift_path, baseline, full, now, progress, cancelled):
        self.spec, self.baseline_path, self.force_full = spec, baseline, full
        self.now_us = windows.to_us(now)
        self._progress, self._cancelled = progress, cancelled
        self.source = SourceTable(source)
        self.columns = profiled_columns(spec, self.source.schema)
        self.fingerprint = _fingerprint(spec, self.columns)
        self.store = StateStore(state_dir)
        self.inference = spec.profile_type == INFERENCE_LOG
        self.model_col = spec.model_id_col if self.inference else None
        from lakeforge.monitoring.engine import drift_schema_for, profile_schema_for
        self.profile = MetricTable(profile_path, profile_schema_for(spec))
        self.drift = MetricTable(drift_path, drift_schema_for(spec))
        self.plan = partials.Plan(
            self.columns, list(spec.granularities), list(spec.slicing_exprs), timestamp_col=spec.timestamp_col,
            model_col=self.model_col, quality=spec if self.inference and model_quality.with_labels(spec) else None)
        self.ctx = RowContext(self.columns, spec.monitor_version, self.model_col,
                              spec.problem_type if self.inference else None)
        self.rows_read = 0
        self.loaded: dict = {}
        # read with every chunk: what grouping and model quality need; profiled columns come one by one
        wanted = {spec.timestamp_col, self.model_col, *referenced_columns(spec.slicing_exprs, self.source.schema)}
        if self.plan.quality is not None:
            wanted |= {spec.label_col, spec.prediction_col, spec.prediction_proba_col}
        self.keys = [f for f in self.source.schema if f.name in wanted]
        self.profiled = [pa.field(c.name, c.arrow) for c in self.columns]
        self._check_columns()

    def _check_columns(self) -> None:
        """The columns the configuration names must still be in the table (its schema may have changed)."""
        spec, roles = self.spec, []
        if spec.profile_type != SNAPSHOT:
            roles.append(("timestamp_col", spec.timestamp_col))
        if self.inference:
            roles += [("model_id_col", spec.model_id_col), ("prediction_col", spec.prediction_col),
                      ("label_col", spec.label_col), ("prediction_proba_col", spec.prediction_proba_col)]
        for role, name in roles:
            if name and self.source.schema.get_field_index(name) < 0:
                raise InvalidParameter(f"{role} column '{name}' not found in the table")

    # ---- driver ----

    def run(self) -> RefreshResult:
        with self.store.lock():
            return self._run()

    def _run(self) -> RefreshResult:
        self.con = _LazyConnection()
        try:
            self.report(0.0, "reading the Delta log")
            old = self.store.manifest()
            if old is not None and old.source_version > self.source.version:
                old = None  # the table was replaced by a younger one
            if old is not None and not (self.profile.holds(old.tables[0]) and self.drift.holds(old.tables[1])):
                self.force_full = True  # the metric tables were written by someone else since: rebuild them
            self.old = old
            self.baseline = self._baseline(old)
            if self.spec.profile_type == SNAPSHOT:
                result, manifest, profile, drift = self._snapshot(old)
            else:
                result, manifest, profile, drift = self._windows(old)
            self.check()
            self.report(0.9, "writing the metric tables")
            if profile is not None:
                self.profile.replace(profile)
                self.drift.replace(drift)
            manifest.tables = (self.profile.version_after(), self.drift.version_after())
            self.store.commit(manifest)
            self.report(1.0, "done")
            return result
        except BaseException:
            for table in (self.profile, self.drift):
                try:
                    table.restore()
                except Exception:  # keep the original error
                    log.exception("could not restore metric table %s", table.path)
            self.store.discard()
            raise
        finally:
            self.con.close()

    def report(self, fraction: float, message: str) -> None:
        if self._progress is not None:
            self._progress(fraction, message)

    def check(self) -> None:
        if self._cancelled is not None and self._cancelled():
            raise RefreshCancelled("The refresh was cancelled")

    # ---- baseline ----

    def _baseline(self, old: Manifest | None):
        if not self.baseline_path:
            return None
        version = DeltaTable(self.baseline_path).version()
        key = baselines.cache_key(self.baseline_path, version, self.fingerprint)
        if old is not None and old.baseline is not None and old.baseline[0] == key:
            state = self.store.load(old.baseline[1])
            self.baseline_name = old.baseline[1]
            return state
        self.report(0.02, "profiling the baseline table")
        state = baselines.compute(self.baseline_path, self.plan, self.spec, self.keys, self.profiled,
                                  list(self.source.schema), self.fingerprint, self.con, self.check)
        self.baseline_name = self.store.save(state)
        return state

    def _baseline_ref(self) -> tuple[str, str] | None:
        return (self.baseline.key, self.baseline_name) if self.baseline is not None else None

    # ---- time series and inference logs ----

    def _windows(self, old: Manifest | None):
        known = {p: e.version for p, e in old.files.items()} if old is not None else {}
        since = old.source_version if old is not None else -1
        versions, new = self.source.file_versions(known, since)
        order = fold_order(versions, self.source.files)
        incremental = (old is not None and not self.force_full and old.fingerprint == self.fingerprint
                       and old.baseline == self._baseline_ref() and all(versions[p] > since for p in new))
        self.states: dict = {}
        if incremental:
            removed = (set(old.files) - set(self.source.files)) | (new & set(old.files))
            dirty = set().union(*(old.files[p].windows for p in removed))
            kept = [p for p in order if p in old.files and p not in new]
            entries = {p: old.files[p] for p in kept}
            for window in dirty:
                self.states[window] = {}
            overlapping = [p for p in kept if old.files[p].windows & dirty]
            added = [p for p in order if p in new]
            total = len(overlapping) + len(added)
            self._read(overlapping, _by_granularity(dirty), old, total, 0)
            touched_by_new = self._read(added, None, old, total, len(overlapping))
            for path in added:
                entries[path] = FileEntry(versions[path], frozenset(touched_by_new.get(path, ())))
            touched = dirty | set().union(*entries_windows(touched_by_new))
            known_windows = set(old.windows) | touched
        else:
            touched_by_file = self._read(order, None, None, len(order), 0)
            entries = {p: FileEntry(versions[p], frozenset(touched_by_file.get(p, ()))) for p in order}
            keep_empty = set(old.windows) if old is not None and old.fingerprint == self.fingerprint else set()
            for window in keep_empty - set(self.states):
                self.states[window] = {}
            touched = set(self.states)
            known_windows = set(touched)
        self.check()
        self.report(0.75, "computing metrics")

        names = dict(old.windows) if incremental else {}
        for window in touched:
            names[window] = self.store.save(self.states[window])
        drift_windows = set(touched)
        if incremental:
            for g, start in touched:
                following = (g, windows.shift(g, start, 1))
                if following in known_windows:
                    drift_windows.add(following)
        self.ctx.custom = self._custom_aggregates(touched, entries, order)

        new_profile = []
        for g, start in sorted(touched):
            groups = self.states[(g, start)]
            new_profile += (profile_rows(self.ctx, g, start, groups, log_type=tables.INPUT, version=self.source.version)
                            if groups else empty_rows(self.ctx, g, start, version=self.source.version))
        new_profile += self._baseline_rows(self.spec.granularities)
        new_drift, ref_models = [], []
        for g, start in sorted(drift_windows):
            current = self._state((g, start), names)
            previous = (g, windows.shift(g, start, -1))
            if previous in known_windows:
                self._drift(new_drift, ref_models, g, current, self._state(previous, names),
                            tables.CONSECUTIVE, window_struct(g, start), window_struct(g, previous[1]))
            # A window recomputed only for its CONSECUTIVE comparison (the one before it changed) keeps its
            # BASELINE rows: neither side changed (a new baseline version is a full refresh).
            if self.baseline is not None and (g, start) in touched:
                self._drift(new_drift, ref_models, g, current, self.baseline.groups, tables.BASELINE_DRIFT,
                            window_struct(g, start), self.baseline.span)

        if incremental and not touched:  # nothing changed: the metric tables stay as they are
            manifest = Manifest(self.fingerprint, self.source.version, entries, dict(old.windows), old.baseline)
            result = RefreshResult(self.source.version, False, self.rows_read, 0, self.profile.count(),
                                   self.drift.count())
            return result, manifest, None, None
        keep_profile = keep_drift = None
        if incremental:
            keep_profile = lambda g, s, t: t == tables.INPUT and (g, s) not in touched
            keep_drift = lambda g, s, t: (g, s) not in drift_windows or (
                t == tables.BASELINE_DRIFT and (g, s) not in touched)
        profile, drift = self._tables(new_profile, new_drift, ref_models, keep_profile, keep_drift)
        manifest = Manifest(self.fingerprint, self.source.version, entries,
                            {w: names[w] for w in known_windows}, self._baseline_ref())
        result = RefreshResult(self.source.version, not incremental, self.rows_read, len(touched),
                               profile.num_rows, drift.num_rows)
        return result, manifest, profile, drift

    def _read(self, paths: list[str], window_filter: dict | None, old: Manifest | None, total: int,
              done: int) -> dict:
        """Fold the partial states of `paths` (in fold order) into self.states; {path: windows touched}."""
        if not paths:
            return {}
        plan = self.plan
        if window_filter is not None:
            plan = partials.Plan(**{**plan.__dict__, "window_filter": window_filter})
        touched: dict = {}
        offset = 0  # FILE_COLUMN indexes `paths`
        for chunk in self.source.read(paths, self.keys, self.profiled):
            self.check()
            self.rows_read += chunk.num_rows
            names = chunk.paths
            found, windows_of = partials.compute(chunk, plan, self.con)
            for window in {p.window for p in found}:
                if window not in self.states:  # continue the fold of a window the state knows
                    self.states[window] = (self.store.load(old.windows[window])
                                           if old is not None and window in old.windows else {})
            fold(self.states, found, model_quality.merge, partial(partials.value_registers, self.con))
            for j, path in enumerate(names):
                touched[path] = windows_of.get(offset + j, set())
            offset += len(names)
            done += len(names)
            self.report(0.05 + 0.7 * done / max(total, 1), f"read {done} of {total} files")
        return touched

    def _state(self, window, names: dict) -> dict:
        if window in self.states:
            return self.states[window]
        if window not in self.loaded:
            self.loaded[window] = self.store.load(names[window]) if window in names else {}
        return self.loaded[window]

    # ---- snapshots ----

    def _snapshot(self, old: Manifest | None):
        known = {p: e.version for p, e in old.files.items()} if old is not None else {}
        versions, _ = self.source.file_versions(known, old.source_version if old is not None else -1)
        order = fold_order(versions, self.source.files)
        window = (windows.SNAPSHOT, self.now_us)
        self.plan = partials.Plan(**{**self.plan.__dict__, "fixed_window": window})
        self.states = {window: {}}
        self._read(order, None, None, len(order), 0)
        self.check()
        self.report(0.75, "computing metrics")
        groups = self.states[window]
        name = self.store.save(groups)
        self.ctx.custom = self._custom_aggregates({window}, None, order)
        g, start = window
        new_profile = (profile_rows(self.ctx, g, start, groups, log_type=tables.INPUT, version=self.source.version)
                       if groups else empty_rows(self.ctx, g, start, version=self.source.version))
        new_profile += self._baseline_rows([windows.SNAPSHOT])
        new_drift, ref_models = [], []
        same_config = old is not None and old.fingerprint == self.fingerprint
        if same_config and old.snapshot is not None and old.snapshot[0] != start:
            before = self.store.load(old.snapshot[1])
            self._drift(new_drift, ref_models, g, groups, before, tables.CONSECUTIVE, window_struct(g, start),
                        window_struct(g, old.snapshot[0]))
        if self.baseline is not None:
            self._drift(new_drift, ref_models, g, groups, self.baseline.groups, tables.BASELINE_DRIFT,
                        window_struct(g, start), self.baseline.span)
        profile, drift = self._tables(new_profile, new_drift, ref_models,
                                      lambda g_, s, t: t == tables.INPUT and s != start,
                                      lambda g_, s, t: s != start)
        entries = {p: FileEntry(versions[p], frozenset()) for p in order}
        manifest = Manifest(self.fingerprint, self.source.version, entries, {}, self._baseline_ref(), (start, name))
        result = RefreshResult(self.source.version, True, self.rows_read, 1, profile.num_rows, drift.num_rows)
        return result, manifest, profile, drift

    # ---- rows ----

    def _baseline_rows(self, granularities) -> list[dict]:
        if self.baseline is None:
            return []
        rows = []
        saved = self.ctx.custom
        for g in granularities:
            self.ctx.custom = {(g, 0, *key): values for key, values in self.baseline.custom.items()}
            rows += profile_rows(self.ctx, g, 0, self.baseline.groups, log_type=tables.BASELINE,
                                 version=self.baseline.version, span=self.baseline.span)
        self.ctx.custom = saved
        return rows

    def _drift(self, out: list, ref_models: list, g, current, reference, drift_type, window, window_cmp) -> None:
        rows = drift_rows(self.ctx, g, current, reference, drift_type=drift_type, window=window,
                          window_cmp=window_cmp, version=self.source.version,
                          fall_back_to_all_models=drift_type == tables.BASELINE_DRIFT)
        for row in rows:
            ref_models.append(row.pop(REFERENCE_MODEL, None))
        out.extend(rows)

    def _tables(self, new_profile, new_drift, ref_models, keep_profile, keep_drift) -> tuple[pa.Table, pa.Table]:
        profile_new = custom_metrics.add_derived(self.con, rows_to_table(new_profile, self.profile.schema), self.spec)
        profile = _concat(_kept(self.profile.rows(), keep_profile), profile_new)
        drift_new = custom_metrics.add_drift(self.con, rows_to_table(new_drift, self.drift.schema), profile,
                                             self.spec, self.model_col, ref_models)
        drift = _concat(_kept(self.drift.rows(), keep_drift), drift_new)
        return _sorted(profile, self.model_col), _sorted(drift, self.model_col)

    # ---- custom aggregate metrics ----

    def _custom_aggregates(self, touched: set, entries: dict | None, order: list[str]) -> dict:
        """Aggregate metrics of the touched windows, from all the rows of those windows."""
        if not custom_metrics.of_type(self.spec, "aggregate") or not touched:
            return {}
        by_granularity = _by_granularity(touched)
        paths = order if entries is None else [p for p in order if entries[p].windows & touched]
        collected = []
        granularities = sorted(by_granularity)
        for chunk in self.source.read(paths, list(self.source.schema)):
            self.check()
            self.rows_read += chunk.num_rows
            chunk = chunk.table
            if self.plan.fixed_window:
                starts = {granularities[0]: np.full(chunk.num_rows, self.plan.fixed_window[1], np.int64)}
                valid = np.ones(chunk.num_rows, bool)
            else:
                ts, valid = partials.timestamps_us(chunk.column(self.spec.timestamp_col))
                starts = {g: windows.starts(g, ts) for g in granularities}
            for i, g in enumerate(granularities):
                keep = valid & np.isin(starts[g], np.fromiter(by_granularity[g], np.int64))
                chunk = chunk.append_column(f"__lf_w{i}", pa.array(starts[g], pa.int64(), mask=~keep))
            collected.append(chunk)
        if not collected:
            return {}
        rows = pa.concat_tables(collected)
        return custom_metrics.aggregate_values(self.con, rows, self.spec,
                                               [(g, f"__lf_w{i}") for i, g in enumerate(granularities)],
                                               self.model_col)


class _LazyConnection:
    """The refresh's DuckDB connection (external access off), opened on first use: slicing expressions, custom
    metrics and the registers of categorical values past the value-count cap need it; most refreshes do not,
    and opening one costs about 15 ms of CPU and 30 MB."""

    def __init__(self):
        self._con: duckdb.DuckDBPyConnection | None = None

    def __getattr__(self, name: str):
        if self._con is None:
            self._con = duckdb.connect()
            self._con.execute("SET enable_external_access = false")
        return getattr(self._con, name)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()


def entries_windows(touched: dict) -> list[set]:
    return [set(w) for w in touched.values()] or [set()]


def _by_granularity(window_keys) -> dict:
    grouped: dict = {}
    for g, start in window_keys:
        grouped.setdefault(g, set()).add(start)
    return grouped


def _fingerprint(spec: MonitorSpec, columns) -> str:
    text = repr((FORMAT, spec, [(c.name, c.kind, c.data_type) for c in columns]))
    return hashlib.sha256(text.encode()).hexdigest()


def _kept(table: pa.Table, keep) -> pa.Table:
    if keep is None or table.num_rows == 0:
        return table.slice(0, 0) if keep is None else table
    starts = pc.struct_field(table.column("window"), [0]).cast(pa.int64()).to_pylist()
    grans = table.column("granularity").to_pylist()
    kind = next((c for c in ("log_type", "drift_type") if c in table.column_names), None)
    log_types = table.column(kind).to_pylist() if kind else [None] * table.num_rows
    mask = [bool(keep(g, s, t)) for g, s, t in zip(grans, starts, log_types)]
    return table.filter(pa.array(mask, pa.bool_()))


def _concat(old: pa.Table, new: pa.Table) -> pa.Table:
    return pa.concat_tables([old, new]) if old.num_rows else new


def _sorted(table: pa.Table, model_col: str | None) -> pa.Table:
    if table.num_rows == 0:
        return table
    keys = ["granularity", "window_start", "log_type", "drift_type", "slice_key", "slice_value", "model",
            "column_name"]
    helper = {"window_start": pc.struct_field(table.column("window"), [0])}
    if model_col:
        helper["model"] = table.column(model_col)
    present = [k for k in keys if k in table.column_names or k in helper]
    sortable = pa.table({k: helper[k] if k in helper else table.column(k) for k in present})
    order = pc.sort_indices(sortable, sort_keys=[(k, "ascending") for k in present])
    return table.take(order)
