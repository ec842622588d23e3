"""A monitor's dashboard: one self-contained HTML page built from its two metric tables.

The page carries the metric rows as JSON and draws every chart in the browser with plotly.js, so
its filters (granularity, slice, model id, column, metric, drift type) redraw the charts from all of
the data, slices included (Databricks' generated dashboard shows only the whole table,
databricks-sdk-py#984). Offline pages inline plotly.js and open from a file on any machine; served
pages load it from the server once, cached (`PLOTLY_PATH`).

Every user string reaches the page escaped: text through `html.escape`, data as JSON in a
`<script type="application/json">` block with `<`, `>` and `&` written as \\u escapes, and the script
puts names on the page with `textContent` only.
"""

from __future__ import annotations

import html
import json
import math
import urllib.parse
from datetime import UTC, datetime
from typing import Any

import plotly
import pyarrow as pa

from lakeforge.monitoring.dashboard_script import SCRIPT, STYLE
from lakeforge.monitoring.spec import GRANULARITIES
from lakeforge.monitoring.tables import BASELINE, TABLE_COLUMN

# The served page loads plotly.js from here (dashboard_api serves it); the version busts caches.
PLOTLY_PATH = f"/monitors/-/plotly-{plotly.__version__}.min.js"
# The most recent windows per granularity drawn on the page: 5-minute windows over months would
# otherwise make a page of hundreds of MB. The metric tables keep them all.
MAX_WINDOWS = 200
MAX_BREACHES = 20
QUALITY = {
    "classification": [("accuracy_score", "accuracy"), ("f1_score.macro", "F1 (macro)"), ("roc_auc_score", "ROC AUC")],
    "regression": [("root_mean_squared_error", "RMSE"), ("mean_absolute_error", "MAE"), ("r2_score", "R²")],
}
# Columns of the metric tables that are keys or lineage, never charted.
_NOT_METRICS = {"window", "window_cmp", "granularity", "slice_key", "slice_value", "column_name", "data_type",
                "monitor_version", "log_type", "drift_type", "logging_table_commit_version"}
_API = "/api/2.1/unity-catalog/tables/"
_GRAN_ORDER = {g: i for i, g in enumerate(GRANULARITIES)}


def render(monitor_info: dict, profile: pa.Table, drift: pa.Table, breaches: list[dict], *, offline: bool,
           base_url: str = "") -> str:
    """The dashboard page of the monitor `monitor_info` (the monitor API's MonitorInfo; an extra
    `latest_refresh` key, a refresh as the refreshes API answers it, fills "last refresh").
    `offline` inlines plotly.js; `base_url` makes the page's links absolute, for a page saved to a file."""
    info = _Info(monitor_info)
    dims = _Dims()
    profile_rows = _encode(profile, info.model_id_col, dims, lambda r: r.get("log_type") != BASELINE)
    baseline_rows = _encode(profile, info.model_id_col, dims, lambda r: r.get("log_type") == BASELINE,
                            limit_windows=False)
    drift_rows = _encode(drift, info.model_id_col, dims, lambda r: True)
    body = [_header(info, profile, base_url)]
    if profile_rows["n"] == 0:
        body.append('<section class="lf-empty" id="lf-empty"><h2>No refresh yet</h2><p>The metric tables of this '
                    'monitor are empty. Run a refresh (<code>lakeforge monitor refresh '
                    f'{html.escape(info.table)}</code>) and reload this page.</p></section>')
        body.append(_breaches(breaches))
        return _page(info, "\n".join(body), None, offline)
    data = {"dims": dims.as_json(), "profile": profile_rows, "baseline": baseline_rows, "drift": drift_rows,
            "quality": [[m, label] for m, label in QUALITY.get(info.problem_type or "", [])],
            "model_id_col": info.model_id_col, "table_column": TABLE_COLUMN}
    body.append(_filters(info, dims, profile_rows["truncated"] or drift_rows["truncated"]))
    body.append(_SECTIONS if "BASELINE" not in drift_rows["dt"] else  # open on baseline drift when there is one
                _SECTIONS.replace('<option value="BASELINE">', '<option value="BASELINE" selected>'))
    if info.problem_type:
        body.append(_QUALITY_SECTION)
    body.append(_breaches(breaches))
    return _page(info, "\n".join(body), data, offline)


class _Info:
    """The few monitor fields the page shows, read defensively: a page must render for any monitor."""

    def __init__(self, m: dict):
        self.table = str(m.get("table_name") or "")
        inference = m.get("inference_log") or {}
        series = m.get("time_series") or {}
        self.profile_type = "inference log" if inference else "time series" if series else "snapshot"
        self.granularities = list(inference.get("granularities") or series.get("granularities") or [])
        self.model_id_col = inference.get("model_id_col") or None
        problem = str(inference.get("problem_type") or "").lower()
        self.problem_type = "regression" if "regression" in problem else "classification" if problem else None
        self.version = m.get("monitor_version")
        self.status = str(m.get("status") or "").replace("MONITOR_STATUS_", "")
        self.profile_table = m.get("profile_metrics_table_name")
        self.drift_table = m.get("drift_metrics_table_name")
        self.baseline = m.get("baseline_table_name")
        self.slicing = list(m.get("slicing_exprs") or [])
        self.latest_refresh = m.get("latest_refresh") or None


class _Dims:
    """Dictionaries shared by every encoded table: rows refer to granularities, windows, slices,
    model ids and columns by index, and the page's filters by the same indices."""

    def __init__(self):
        self.values: dict[str, dict[Any, int]] = {k: {} for k in ("granularity", "time", "slice", "model", "column")}

    def index(self, kind: str, value: Any) -> int:
        table = self.values[kind]
        if value not in table:
            table[value] = len(table)
        return table[value]

    def as_json(self) -> dict:
        out = {k: list(v) for k, v in self.values.items()}
        out["slice"] = [list(s) for s in out["slice"]]
        return out


def _encode(table: pa.Table, model_id_col: str | None, dims: _Dims, keep, limit_windows: bool = True) -> dict:
    """Rows of a metric table as columns of dimension indices and metric values; NaN becomes null."""
    out: dict[str, Any] = {"n": 0, "truncated": False, "g": [], "t": [], "s": [], "m": [], "c": [], "dt": [],
                           "metrics": {}}
    if table is None or table.num_rows == 0:
        return out
    names = set(table.column_names)
    starts = [w["start"] if w else None for w in table.column("window").to_pylist()] if "window" in names \
        else [None] * table.num_rows
    plain = {k: table.column(k).to_pylist() if k in names else [None] * table.num_rows
             for k in ("granularity", "slice_key", "slice_value", "column_name", "log_type", "drift_type")}
    models = table.column(model_id_col).to_pylist() if model_id_col and model_id_col in names \
        else [None] * table.num_rows
    rows = [i for i in range(table.num_rows) if keep({"log_type": plain["log_type"][i]})]
    if limit_windows:
        rows, out["truncated"] = _latest_windows(rows, plain["granularity"], starts)
    metrics = _metric_columns(table, model_id_col)
    for name, values in metrics.items():
        out["metrics"][name] = [_number(values[i]) for i in rows]
    for i in rows:
        out["g"].append(dims.index("granularity", plain["granularity"][i]))
        out["t"].append(dims.index("time", _when(starts[i])))
        out["s"].append(dims.index("slice", (plain["slice_key"][i], _text(plain["slice_value"][i]))))
        out["m"].append(dims.index("model", _text(models[i])))
        out["c"].append(dims.index("column", plain["column_name"][i]))
        out["dt"].append(plain["drift_type"][i])
    out["n"] = len(rows)
    return out


def _latest_windows(rows: list[int], granularity: list, starts: list) -> tuple[list[int], bool]:
    by_gran: dict[Any, set] = {}
    for i in rows:
        by_gran.setdefault(granularity[i], set()).add(starts[i])
    kept = {g: set(sorted(s, key=lambda x: (x is None, x))[-MAX_WINDOWS:]) for g, s in by_gran.items()}
    chosen = [i for i in rows if starts[i] in kept[granularity[i]]]
    return chosen, len(chosen) < len(rows)


def _metric_columns(table: pa.Table, model_id_col: str | None) -> dict[str, list]:
    """Every numeric column, and the numeric fields of struct columns as `name.field` (F1's macro
    average, the KS test's statistic, ...); lists, maps and strings are left out."""
    out: dict[str, list] = {}
    for field in table.schema:
        if field.name in _NOT_METRICS or field.name == model_id_col:
            continue
        if _numeric(field.type):
            out[field.name] = table.column(field.name).to_pylist()
        elif pa.types.is_struct(field.type):
            children = [f for f in field.type if _numeric(f.type)]
            if children:
                rows = table.column(field.name).to_pylist()
                for child in children:
                    out[f"{field.name}.{child.name}"] = [r.get(child.name) if r else None for r in rows]
    return out


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _number(v: Any) -> float | int | None:
    if v is None:
        return None
    v = float(v) if not isinstance(v, int) else v
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        return float(f"{v:.6g}")
    return v


def _text(v: Any) -> str | None:
    return None if v is None else str(v)


def _when(v: Any) -> str | None:
    """A window start as plotly reads dates (UTC, no zone suffix)."""
    if v is None:
        return None
    if isinstance(v, datetime):
        v = v.astimezone(UTC) if v.tzinfo else v
        return v.strftime("%Y-%m-%d %H:%M:%S")
    return str(v)


def _ms(v: Any) -> str:
    if isinstance(v, (int, float)) and v > 0:
        return datetime.fromtimestamp(v / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return ""


# ---- page parts ----------------------------------------------------------------------------------
def _header(info: _Info, profile: pa.Table, base_url: str) -> str:
    e = html.escape
    refresh = info.latest_refresh
    if refresh:
        when = _ms(refresh.get("end_time_ms")) or _ms(refresh.get("start_time_ms"))
        last = f"#{e(str(refresh.get('refresh_id', '')))} {e(str(refresh.get('state', '')))} {e(when)}"
    else:
        last = "none yet"
    version = None
    if profile is not None and profile.num_rows and "logging_table_commit_version" in profile.column_names:
        versions = [v for v in profile.column("logging_table_commit_version").to_pylist() if v is not None]
        version = max(versions) if versions else None
    facts = [("profile type", e(info.profile_type)), ("monitor version", e(str(info.version or ""))),
             ("status", e(info.status)), ("last refresh", last)]
    if info.granularities:
        facts.append(("granularities", e(", ".join(map(str, info.granularities)))))
    if info.slicing:
        facts.append(("slices", e(", ".join(map(str, info.slicing)))))
    if info.baseline:
        facts.append(("baseline", e(str(info.baseline))))
    if version is not None:
        facts.append(("table version read", e(str(version))))
    links = [("monitor (JSON)", _API + _quote(info.table) + "/monitor"),
             ("refreshes (JSON)", _API + _quote(info.table) + "/monitor/refreshes"),
             ("breaches (JSON)", _API + _quote(info.table) + "/monitor/breaches")]
    for label, name in (("profile metrics table", info.profile_table), ("drift metrics table", info.drift_table)):
        if name:
            links.append((f"{label}: {name}", _API + _quote(str(name))))
    facts_html = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    links_html = " · ".join(f'<a href="{e(base_url.rstrip("/") + href)}">{e(label)}</a>' for label, href in links)
    return (f'<header id="lf-header"><h1>Monitor: <span id="lf-table">{e(info.table)}</span></h1>'
            f'<dl class="lf-facts">{facts_html}</dl><p class="lf-links">{links_html}</p></header>')


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _filters(info: _Info, dims: _Dims, truncated: bool) -> str:
    e = html.escape
    grans = sorted(dims.values["granularity"].items(), key=lambda x: (_GRAN_ORDER.get(x[0], 99), str(x[0])))
    gran_opts = "".join(f'<option value="{i}">{e(str(g))}</option>' for g, i in grans)
    slices = dims.values["slice"]
    slice_opts = [f'<option value="{slices[(None, None)]}">whole table</option>'] \
        if (None, None) in slices else []
    by_key: dict[str, list[tuple[str, int]]] = {}
    for (key, value), i in slices.items():
        if key is not None:
            by_key.setdefault(key, []).append((value, i))
    for key in sorted(by_key):
        opts = "".join(f'<option value="{i}">{e(key)} = {e(str(v))}</option>'
                       for v, i in sorted(by_key[key], key=lambda x: str(x[0])))
        slice_opts.append(f'<optgroup label="{e(key)}">{opts}</optgroup>')
    models = dims.values["model"]
    model_opts = "".join(f'<option value="{i}">{e(m) if m is not None else "(all models)"}</option>'
                         for m, i in sorted(models.items(), key=lambda x: (x[0] is not None, str(x[0]))))
    cols = dims.values["column"]
    ordered = sorted(cols.items(), key=lambda x: (x[0] != TABLE_COLUMN, str(x[0])))
    first = next((c for c, _ in ordered if c != TABLE_COLUMN), TABLE_COLUMN)  # open on a real column
    col_opts = "".join(f'<option value="{i}"{" selected" if c == first else ""}>{e(str(c))}'
                       f'{" (table-level)" if c == TABLE_COLUMN else ""}</option>' for c, i in ordered)
    model_label = e(info.model_id_col or "model id")
    hidden = "" if info.model_id_col else " hidden"
    note = (f'<p class="lf-note">Showing the latest {MAX_WINDOWS} windows of each granularity; the metric tables '
            'hold them all.</p>') if truncated else ""
    return (f'<nav id="lf-filters" class="lf-filters">'
            f'<label>granularity <select id="lf-f-granularity">{gran_opts}</select></label>'
            f'<label>slice <select id="lf-f-slice">{"".join(slice_opts)}</select></label>'
            f'<label{hidden}>{model_label} <select id="lf-f-model">{model_opts}</select></label>'
            f'<label>column <select id="lf-f-column">{col_opts}</select></label>'
            f'</nav>{note}')


_SECTIONS = """
<section id="lf-section-metrics"><h2>Metrics over time</h2>
<div class="lf-row"><label>metric <select id="lf-f-metric"></select></label>
<span class="lf-hint">the chosen slice (solid), the whole table (dotted), the baseline (dashed)</span></div>
<div id="lf-metric-chart" class="lf-chart"></div></section>
<section id="lf-section-drift"><h2>Drift</h2>
<div class="lf-row"><label>compared with <select id="lf-f-drift-type">
<option value="CONSECUTIVE">the previous window (consecutive)</option>
<option value="BASELINE">the baseline table</option></select></label>
<label>metric <select id="lf-f-drift-metric"></select></label></div>
<div id="lf-drift-heatmap" class="lf-chart lf-tall"></div></section>
<section id="lf-section-integrity"><h2>Data integrity</h2>
<div class="lf-pair"><div id="lf-integrity-count" class="lf-chart lf-short"></div>
<div id="lf-integrity-nulls" class="lf-chart lf-short"></div></div></section>
"""

_QUALITY_SECTION = """
<section id="lf-section-quality"><h2>Model quality</h2>
<span class="lf-hint">one line per model id, over the rows whose label is present</span>
<div id="lf-quality-chart" class="lf-chart"></div></section>
"""

# The breach fields shown, in order, with their headings (ids and delivery attempts are left out).
_BREACH_COLUMNS = {"fired_at_ms": "fired at", "alert_name": "alert", "metric": "metric", "op": "op",
                   "threshold": "threshold", "value": "value", "column_name": "column", "window": "window",
                   "granularity": "granularity", "slice_key": "slice key", "slice_value": "slice value",
                   "model_id": "model id", "drift_type": "drift type", "webhook_status": "webhook"}


def _breaches(breaches: list[dict]) -> str:
    e = html.escape
    items = [b for b in breaches or [] if isinstance(b, dict)]
    if not items:
        return ('<section id="lf-section-breaches"><h2>Latest alert breaches</h2>'
                '<p class="lf-none">No alert has fired.</p></section>')
    items.sort(key=lambda b: b.get("fired_at_ms") or 0, reverse=True)
    more = len(items) > MAX_BREACHES
    items = items[:MAX_BREACHES]
    cols = [k for k in _BREACH_COLUMNS if any(b.get(k) not in (None, "") for b in items)]
    head = "".join(f"<th>{e(_BREACH_COLUMNS[c])}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{e(_cell(c, b.get(c)))}</td>" for c in cols) + "</tr>" for b in items)
    note = f'<p class="lf-hint">The {MAX_BREACHES} most recent; the breaches API lists them all.</p>' if more else ""
    return (f'<section id="lf-section-breaches"><h2>Latest alert breaches</h2>{note}'
            f'<table id="lf-breaches"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>')


def _cell(key: str, v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, dict) and {"start", "end"} <= set(v):  # a window
        return f"{_cell(key + '_ms', v['start'])} – {_cell(key + '_ms', v['end'])}"
    if isinstance(v, (int, float)) and not isinstance(v, bool) and (key.endswith(("_ms", "_at"))) \
            and v > 10**11:
        return _ms(v)
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    return str(v)


def _json_for_script(data: Any) -> str:
    """JSON that cannot end its <script> block or open a comment: <, > and & are \\u escapes."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, default=str)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _page(info: _Info, body: str, data: dict | None, offline: bool) -> str:
    title = html.escape(f"Monitor {info.table} - Lakeforge")
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    scripts = ""
    if data is not None:
        plotly_js = f"<script>{plotly.offline.get_plotlyjs()}</script>" if offline \
            else f'<script src="{PLOTLY_PATH}"></script>'
        scripts = (f'{plotly_js}\n<script type="application/json" id="lf-data">{_json_for_script(data)}</script>\n'
                   f"<script>{SCRIPT}</script>")
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>\n'
            f'<body><main>{body}<footer>Generated {generated} by Lakeforge.</footer></main>\n{scripts}</body></html>\n')


__all__ = ["MAX_WINDOWS", "PLOTLY_PATH", "render"]
