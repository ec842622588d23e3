"""The dashboard page's stylesheet and script (plain CSS and vanilla JavaScript over plotly.js).

The script reads the metric rows from the page's `lf-data` JSON block and redraws every chart when a
filter changes. Rows hold indices into `dims` (granularities, window starts, slices, model ids,
columns); a filter's <select> holds the same indices. Names reach the page through plotly (which
escapes text) or `textContent`, never as HTML.
"""

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: #f4f5f7; color: #1d2433; }
main { max-width: 1360px; margin: 0 auto; padding: 1rem 1.5rem 2rem; }
header h1 { font-size: 1.4rem; margin: .5rem 0; }
.lf-facts { display: flex; flex-wrap: wrap; gap: .4rem 1.6rem; margin: .3rem 0; }
.lf-facts div { display: flex; gap: .4rem; } .lf-facts dt { color: #667085; }
.lf-facts dd { margin: 0; font-weight: 600; }
.lf-links { font-size: .85rem; } a { color: #1f5fbf; }
section, .lf-filters { background: #fff; border-radius: 8px; box-shadow: 0 1px 3px #0002; padding: .8rem 1rem;
  margin: .9rem 0; }
.lf-filters { display: flex; flex-wrap: wrap; gap: .6rem 1.4rem; position: sticky; top: 0; z-index: 10; }
label { font-size: .85rem; color: #475467; } select { margin-left: .3rem; font-size: .85rem; max-width: 22rem; }
section h2 { font-size: 1.05rem; margin: .1rem 0 .5rem; }
.lf-row { display: flex; gap: 1.4rem; align-items: center; flex-wrap: wrap; }
.lf-hint, .lf-note { font-size: .8rem; color: #667085; }
.lf-chart { width: 100%; height: 360px; } .lf-tall { height: auto; min-height: 320px; } .lf-short { height: 280px; }
.lf-pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
.lf-message { display: flex; align-items: center; justify-content: center; color: #667085; height: 120px; }
table { border-collapse: collapse; width: 100%; font-size: .82rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #e4e7ec; } th { background: #f9fafb; }
.lf-empty p, .lf-none { color: #475467; } footer { font-size: .75rem; color: #98a2b3; margin-top: 1rem; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("lf-data").textContent);
  var dims = D.dims, P = D.profile, B = D.baseline, R = D.drift;
  var TABLE = dims.column.indexOf(D.table_column);
  var WHOLE = -1;
  dims.slice.forEach(function (s, i) { if (s[0] === null && s[1] === null) WHOLE = i; });
  var CONFIG = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"]};
  var HOT = [[0, "#fff7ec"], [0.35, "#fdbb84"], [0.7, "#e34a33"], [1, "#7f0000"]];
  var COLD = [[0, "#08306b"], [0.5, "#6baed6"], [1, "#f7fbff"]];  // p-values: small (dark) is the alarm
  var NULLS = [[0, "#fcfbfd"], [1, "#54278f"]];
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf"];
  var NAMES = {count: "count", num_nulls: "null count", percent_null: "percent null", num_nan: "NaN count",
    percent_nan: "percent NaN", num_zeros: "zero count", percent_zeros: "percent zeros",
    distinct_count: "distinct count", percent_distinct: "percent distinct", avg: "average", stddev: "std dev",
    min: "min", max: "max", median: "median", min_length: "min length", max_length: "max length",
    avg_length: "average length", js_distance: "Jensen-Shannon distance", "ks_test.statistic": "KS statistic",
    "ks_test.pvalue": "KS p-value", population_stability_index: "PSI", wasserstein_distance: "Wasserstein distance",
    "chi_squared_test.statistic": "chi-squared statistic", "chi_squared_test.pvalue": "chi-squared p-value",
    tv_distance: "total variation distance", l_infinity_distance: "L-infinity distance"};
  var PROFILE_ORDER = ["avg", "count", "percent_null", "distinct_count", "percent_distinct", "stddev", "min", "max",
    "median", "percent_zeros", "num_nulls", "num_zeros", "avg_length", "min_length", "max_length"];
  var DRIFT_ORDER = ["js_distance", "ks_test.statistic", "population_stability_index", "wasserstein_distance",
    "chi_squared_test.statistic", "tv_distance", "l_infinity_distance", "ks_test.pvalue", "chi_squared_test.pvalue",
    "count_delta", "avg_delta", "percent_null_delta", "percent_zeros_delta", "percent_distinct_delta"];

  function el(id) { return document.getElementById(id); }
  function num(id) { var e = el(id); return e && e.value !== "" ? +e.value : null; }
  function label(m) { return NAMES[m] || m; }
  function filters() {
    return {g: num("lf-f-granularity"), s: num("lf-f-slice"), m: num("lf-f-model"), c: num("lf-f-column")};
  }
  // Indices of T's rows matching f; a null key is not filtered on.
  function pick(T, f) {
    var out = [];
    for (var i = 0; i < T.n; i++) {
      if (f.g != null && T.g[i] !== f.g) continue;
      if (f.s != null && T.s[i] !== f.s) continue;
      if (f.m != null && T.m[i] !== f.m) continue;
      if (f.c != null && T.c[i] !== f.c) continue;
      if (f.dt != null && T.dt[i] !== f.dt) continue;
      out.push(i);
    }
    return out;
  }
  function series(T, rows, metric) {
    var values = T.metrics[metric] || [], pts = [];
    rows.forEach(function (i) { var x = dims.time[T.t[i]]; if (x !== null) pts.push([x, values[i]]); });
    pts.sort(function (a, b) { return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0; });
    return {x: pts.map(function (p) { return p[0]; }), y: pts.map(function (p) { return p[1]; })};
  }
  function present(T, rows, metric) {
    var values = T.metrics[metric];
    return !!values && rows.some(function (i) { return values[i] !== null; });
  }
  function ordered(T, rows, order, skip) {
    var names = Object.keys(T.metrics).filter(function (m) { return !skip(m) && present(T, rows, m); });
    return names.sort(function (a, b) {
      var ia = order.indexOf(a), ib = order.indexOf(b);
      return (ia < 0 ? 999 : ia) - (ib < 0 ? 999 : ib) || (a < b ? -1 : a > b ? 1 : 0);
    });
  }
  function fillSelect(id, names) {
    var s = el(id), keep = s.value;
    while (s.firstChild) s.removeChild(s.firstChild);
    names.forEach(function (m) { var o = document.createElement("option"); o.value = m; o.textContent = label(m);
                                 s.appendChild(o); });
    if (names.indexOf(keep) >= 0) s.value = keep;
  }
  function message(div, text) {
    Plotly.purge(div); div.textContent = ""; div.classList.add("lf-message");
    var p = document.createElement("p"); p.textContent = text; div.appendChild(p);
  }
  function plot(div, traces, layout) {
    Plotly.purge(div); div.textContent = ""; div.classList.remove("lf-message");
    var base = {margin: {l: 60, r: 20, t: 30, b: 50}, hovermode: "closest",
                xaxis: {title: {text: "window start (UTC)"}},
                legend: {orientation: "h", y: -0.2}};
    Plotly.newPlot(div, traces, Object.assign(base, layout || {}), CONFIG);
  }
  function sliceName(s) { var v = dims.slice[s]; return v[0] === null ? "whole table" : v[0] + " = " + v[1]; }
  function modelName(m) { var v = dims.model[m]; return v === null ? "all models" : String(v); }

  function drawMetric(f) {
    var rows = pick(P, f), div = el("lf-metric-chart");
    fillSelect("lf-f-metric", ordered(P, rows, PROFILE_ORDER, function () { return false; }));
    var metric = el("lf-f-metric").value;
    if (!metric) return message(div, "No metric for this column, slice and granularity.");
    var main = series(P, rows, metric), traces = [];
    traces.push({x: main.x, y: main.y, name: sliceName(f.s), mode: "lines+markers", line: {color: COLORS[0]}});
    if (f.s !== WHOLE && WHOLE >= 0) {
      var whole = series(P, pick(P, {g: f.g, s: WHOLE, m: f.m, c: f.c}), metric);
      traces.push({x: whole.x, y: whole.y, name: "whole table", mode: "lines", line: {dash: "dot", color: "#98a2b3"}});
    }
    var base = pick(B, {g: f.g, s: f.s, m: f.m, c: f.c});
    if (!base.length) base = pick(B, {s: f.s, m: f.m, c: f.c});
    var bv = (B.metrics[metric] || [])[base[0]];
    if (base.length && bv !== null && bv !== undefined && main.x.length) {
      traces.push({x: [main.x[0], main.x[main.x.length - 1]], y: [bv, bv], name: "baseline", mode: "lines",
                   line: {dash: "dash", color: "#d62728"}});
    }
    plot(div, traces, {yaxis: {title: {text: label(metric) + " of " + dims.column[f.c]}}});
  }

  function grid(T, rows, metric, skipTable) {
    var values = T.metrics[metric] || [], xs = {}, ys = {}, cells = {};
    rows.forEach(function (i) {
      if (values[i] === null || (skipTable && T.c[i] === TABLE)) return;
      var x = dims.time[T.t[i]], y = String(dims.column[T.c[i]]);
      xs[x] = 1; ys[y] = 1; cells[y + "\u0000" + x] = values[i];
    });
    var x = Object.keys(xs).sort(), y = Object.keys(ys).sort().reverse();
    var z = y.map(function (c) { return x.map(function (t) { var v = cells[c + "\u0000" + t];
                                                              return v === undefined ? null : v; }); });
    return {x: x, y: y, z: z};
  }

  function drawDrift(f) {
    var div = el("lf-drift-heatmap"), type = el("lf-f-drift-type").value;
    var rows = pick(R, {g: f.g, s: f.s, m: f.m, dt: type});
    fillSelect("lf-f-drift-metric", ordered(R, rows, DRIFT_ORDER, function () { return false; }));
    var metric = el("lf-f-drift-metric").value;
    if (!rows.length || !metric) {
      return message(div, type === "BASELINE" ? "No baseline drift: the monitor has no baseline table, or no refresh "
        + "has compared with it yet." : "No consecutive drift yet: it needs two windows of this granularity.");
    }
    var g = grid(R, rows, metric, true);
    if (!g.x.length) return message(div, "No " + label(metric) + " for this slice and granularity.");
    var pvalue = /pvalue$/.test(metric);
    div.style.height = Math.max(320, 24 * g.y.length + 140) + "px";
    var delta = /_delta$/.test(metric);  // deltas go both ways; distances, statistics and p-values start at 0
    plot(div, [{type: "heatmap", x: g.x, y: g.y, z: g.z, colorscale: pvalue ? COLD : HOT,
                zmin: delta ? undefined : 0, colorbar: {title: {text: label(metric)}},
                hovertemplate: "%{y}<br>%{x}<br>" + label(metric) + ": %{z:.4g}<extra></extra>"}],
         {yaxis: {automargin: true, type: "category"}, margin: {l: 120, r: 20, t: 20, b: 60}});
  }

  function drawIntegrity(f) {
    var count = el("lf-integrity-count"), nulls = el("lf-integrity-nulls");
    var rows = pick(P, {g: f.g, s: f.s, m: f.m, c: TABLE});
    var c = series(P, rows, "count");
    if (!c.x.length) message(count, "No row counts.");
    else plot(count, [{type: "bar", x: c.x, y: c.y, name: "rows", marker: {color: "#1f77b4"}}],
              {title: {text: "rows per window", font: {size: 13}}, yaxis: {title: {text: "rows"}}});
    var g = grid(P, pick(P, {g: f.g, s: f.s, m: f.m}), "percent_null", true);
    if (!g.x.length) return message(nulls, "No null counts.");
    nulls.style.height = Math.max(280, 20 * g.y.length + 120) + "px";
    plot(nulls, [{type: "heatmap", x: g.x, y: g.y, z: g.z, colorscale: NULLS, zmin: 0,
                  hovertemplate: "%{y}<br>%{x}<br>percent null: %{z:.4g}<extra></extra>"}],
         {title: {text: "percent null per column", font: {size: 13}}, yaxis: {automargin: true, type: "category"},
          margin: {l: 120, r: 20, t: 40, b: 60}});
  }

  function drawQuality(f) {
    var div = el("lf-quality-chart");
    if (!div || !D.quality.length) return;
    var rows = pick(P, {g: f.g, s: f.s, c: TABLE}), traces = [], any = false, layout = {annotations: [],
      grid: {rows: 1, columns: D.quality.length, pattern: "independent"}, margin: {l: 50, r: 20, t: 60, b: 60}};
    var models = [];
    rows.forEach(function (i) { if (models.indexOf(P.m[i]) < 0) models.push(P.m[i]); });
    models.sort(function (a, b) {  // all models together first, then the model ids in order
      var x = dims.model[a], y = dims.model[b];
      return x === null ? -1 : y === null ? 1 : (x < y ? -1 : x > y ? 1 : 0);
    });
    D.quality.forEach(function (q, k) {
      var axis = k === 0 ? "" : String(k + 1);
      models.forEach(function (m, j) {
        var s = series(P, rows.filter(function (i) { return P.m[i] === m; }), q[0]);
        if (s.y.some(function (v) { return v !== null; })) any = true;
        traces.push({x: s.x, y: s.y, name: modelName(m), legendgroup: String(m), showlegend: k === 0,
                     mode: "lines+markers", line: {color: COLORS[j % COLORS.length]}, xaxis: "x" + axis,
                     yaxis: "y" + axis});
      });
      layout.annotations.push({text: q[1], showarrow: false, xref: "x" + axis + " domain", yref: "y" + axis + " domain",
                               x: 0.5, y: 1.12, font: {size: 13}});
    });
    if (!any) return message(div, "No model-quality figures: no labeled rows in these windows yet.");
    layout.xaxis = {title: {text: ""}};  // the legend sits under the first plot
    plot(div, traces, layout);
  }

  function draw() {
    var f = filters();
    drawMetric(f);
    drawDrift(f);
    drawIntegrity(f);
    drawQuality(f);
  }
  ["lf-f-granularity", "lf-f-slice", "lf-f-model", "lf-f-column", "lf-f-drift-type"].forEach(function (id) {
    if (el(id)) el(id).addEventListener("change", draw);
  });
  el("lf-f-metric").addEventListener("change", function () { drawMetric(filters()); });
  el("lf-f-drift-metric").addEventListener("change", function () { drawDrift(filters()); });
  draw();
})();
"""
