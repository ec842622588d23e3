"""The monitor dashboard page: built from synthetic metric tables in the real schemas (the page's
structure, filters, escaping, empty state, window cap) and, where Chromium is installed, drawn by a
real headless browser (the charts exist and the slice filter redraws them from the slice's rows)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from lakeforge.monitoring import dashboard
from lakeforge.monitoring.tables import TABLE_COLUMN, drift_schema, profile_schema
from tests.monitoring_metrics import MODEL_COL, metric_tables, monitor_info

CHARTS = ["lf-metric-chart", "lf-drift-heatmap", "lf-integrity-count", "lf-integrity-nulls", "lf-quality-chart"]
BREACH = {"alert_name": "age drift", "metric": "js_distance", "op": ">", "threshold": 0.2, "value": 0.35,
          "column_name": "age", "slice_key": "region", "slice_value": "EU",
          "window": {"start": 1772755200000, "end": 1772841600000}, "fired_at_ms": 1772841700000}


def _data(page: str) -> dict:
    block = re.search(r'<script type="application/json" id="lf-data">(.*?)</script>', page, re.DOTALL)
    assert block, "the page carries its metric rows"
    return json.loads(block.group(1))


def _options(page: str, select_id: str) -> list[str]:
    block = re.search(rf'<select id="{select_id}">(.*?)</select>', page, re.DOTALL)
    assert block, select_id
    return re.findall(r"<option[^>]*>(.*?)</option>", block.group(1))


def test_page_has_charts_filters_slices_models_and_breaches():
    profile, drift = metric_tables()
    page = dashboard.render(monitor_info(), profile, drift, [BREACH], offline=False)
    for div in CHARTS + ["lf-breaches", "lf-filters"]:
        assert f'id="{div}"' in page
    assert "main.ml.churn_inference" in page and "inference log" in page and "#3 SUCCESS" in page
    # every slice of the metric tables is a filter value, the whole table first
    assert _options(page, "lf-f-slice") == ["whole table", "region = EU", "region = US"]
    assert _options(page, "lf-f-model") == ["(all models)", "1", "2"]
    assert f"{MODEL_COL} <select" in page  # the filter is named after the monitor's model id column
    assert _options(page, "lf-f-granularity") == ["1 day"]
    assert _options(page, "lf-f-column")[0] == ":table (table-level)"
    assert re.search(r'<option value="\d+" selected>age</option>', page)  # opens on a real column
    data = _data(page)
    assert sorted(map(tuple, data["dims"]["slice"]), key=str) == sorted(
        [(None, None), ("region", "EU"), ("region", "US")], key=str)
    # every input row is on the page (the baseline's rows separately), with the model quality metrics
    assert data["profile"]["n"] + data["baseline"]["n"] == profile.num_rows
    assert data["drift"]["n"] == drift.num_rows
    assert {"accuracy_score", "f1_score.macro", "roc_auc_score", "avg", "percent_null"} <= set(
        data["profile"]["metrics"])
    assert {"js_distance", "ks_test.statistic", "chi_squared_test.pvalue"} <= set(data["drift"]["metrics"])
    assert [q[0] for q in data["quality"]] == ["accuracy_score", "f1_score.macro", "roc_auc_score"]
    assert set(data["drift"]["dt"]) == {"CONSECUTIVE", "BASELINE"}
    # the breach, with its window in UTC
    assert "age drift" in page and "2026-03-06 00:00:00 UTC" in page
    # the served page loads plotly.js from the server, once
    assert f'<script src="{dashboard.PLOTLY_PATH}"></script>' in page and len(page) < 500_000


def test_offline_page_inlines_plotly_and_uses_absolute_links():
    profile, drift = metric_tables(days=3)
    page = dashboard.render(monitor_info(), profile, drift, [], offline=True, base_url="http://lf.example:8080")
    assert dashboard.PLOTLY_PATH not in page and "<script src=" not in page
    assert len(page) > 3_000_000  # plotly.js itself
    assert 'href="http://lf.example:8080/api/2.1/unity-catalog/tables/main.ml.churn_inference/monitor"' in page
    assert "No alert has fired." in page


def test_regression_monitor_shows_rmse_mae_r2():
    info = monitor_info()
    info["inference_log"]["problem_type"] = "PROBLEM_TYPE_REGRESSION"
    profile, drift = metric_tables(days=2)
    page = dashboard.render(info, profile, drift, [], offline=False)
    assert [q[1] for q in _data(page)["quality"]] == ["RMSE", "MAE", "R²"]


def test_time_series_monitor_has_no_model_filter_or_quality_section():
    info = {"table_name": "main.raw.events", "monitor_version": 2, "time_series": {
        "timestamp_col": "ts", "granularities": ["1 hour", "1 day"]}}
    profile, drift = metric_tables(days=3, models=(), model_col="unused")
    profile, drift = profile.drop_columns(["unused"]), drift.drop_columns(["unused"])
    page = dashboard.render(info, profile, drift, [], offline=False)
    assert 'id="lf-quality-chart"' not in page and "time series" in page
    assert re.search(r"<label hidden>model id <select", page)
    assert _data(page)["dims"]["model"] == [None]


def test_user_strings_are_escaped():
    evil = '</script><img src=x onerror="alert(1)">'
    profile, drift = metric_tables(days=2, slice_values=(evil, "US"), columns=("age", "<b>col</b>"))
    info = monitor_info(table="main.ml.t<i>x</i>")
    breach = {**BREACH, "alert_name": evil, "column_name": "<b>col</b>"}
    page = dashboard.render(info, profile, drift, [breach], offline=False)
    assert evil not in page and "<b>col</b>" not in page and "<i>x</i>" not in page
    assert "region = &lt;/script&gt;&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in _options(page, "lf-f-slice")
    assert "&lt;b&gt;col&lt;/b&gt;" in _options(page, "lf-f-column")
    assert "main.ml.t&lt;i&gt;x&lt;/i&gt;" in page
    # the JSON block cannot be closed early, and still reads back to the original values
    assert page.count("</script>") == page.count("<script")
    data = _data(page)
    assert ["region", evil] in data["dims"]["slice"] and "<b>col</b>" in data["dims"]["column"]


def test_empty_tables_say_no_refresh_yet():
    schema_p, schema_d = profile_schema(MODEL_COL, "classification"), drift_schema(MODEL_COL)
    page = dashboard.render(monitor_info(), schema_p.empty_table(), schema_d.empty_table(), [], offline=True)
    assert "No refresh yet" in page and 'id="lf-empty"' in page
    assert "lf-data" not in page and "plotly" not in page.lower().replace("lakeforge", "")
    # no tables at all (the refresh never created them) reads the same
    assert "No refresh yet" in dashboard.render({"table_name": "a.b.c"}, None, None, [], offline=False)


def test_only_the_latest_windows_are_drawn():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    n = dashboard.MAX_WINDOWS + 25
    rows = [{"window": {"start": start + timedelta(minutes=5 * i), "end": start + timedelta(minutes=5 * i + 5)},
             "granularity": "5 minutes", "column_name": TABLE_COLUMN, "count": i, "log_type": "INPUT"}
            for i in range(n)]
    profile = pa.Table.from_pylist(rows, schema=profile_schema())
    page = dashboard.render({"table_name": "a.b.c", "time_series": {"granularities": ["5 minutes"]}}, profile,
                            drift_schema().empty_table(), [], offline=False)
    data = _data(page)
    assert data["profile"]["n"] == dashboard.MAX_WINDOWS
    assert min(data["profile"]["metrics"]["count"]) == 25  # the oldest 25 windows left out
    assert f"Showing the latest {dashboard.MAX_WINDOWS} windows" in page


# ---- drawn by a real browser -----------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
# Appended to the page: choose the slice region = EU, then write what the charts drew where the
# dumped DOM shows it.
PROBE = """<script>
window.addEventListener("load", function () {
  var out = {before: {}, after: {}};
  function snap(into) {
    %s.forEach(function (id) { var d = document.getElementById(id);
      into[id] = d.data ? d.data.map(function (t) { return {name: t.name, y: t.y, z: t.z}; }) : null; });
  }
  snap(out.before);
  var s = document.getElementById("lf-f-slice");
  for (var i = 0; i < s.options.length; i++) {
    if (s.options[i].textContent === "region = EU") s.value = s.options[i].value;
  }
  s.dispatchEvent(new Event("change"));
  snap(out.after);
  var pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium) to run the page's script")
def test_browser_draws_every_chart_and_the_slice_filter_redraws_them(tmp_path):
    profile, drift = metric_tables(days=6)
    page = dashboard.render(monitor_info(), profile, drift, [BREACH], offline=True)
    path = tmp_path / "report.html"
    path.write_text(page.replace("</body>", PROBE % json.dumps(CHARTS) + "</body>"))
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
                          "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.DOTALL)
    assert found, dom.stderr[-2000:]
    probe = json.loads(html.unescape(found.group(1)))
    for chart in CHARTS:
        assert probe["before"][chart], f"{chart} was not drawn"
    before, after = probe["before"]["lf-metric-chart"], probe["after"]["lf-metric-chart"]
    assert [t["name"] for t in before] == ["whole table", "baseline"]
    # the baseline table was profiled as a whole only, so a slice has no baseline line
    assert [t["name"] for t in after] == ["region = EU", "whole table"]
    # the EU line is the EU rows' average of `age` (all models), window by window
    eu = [r for r in profile.to_pylist() if r["slice_value"] == "EU" and r["column_name"] == "age"
          and r[MODEL_COL] is None and r["log_type"] == "INPUT"]
    expected = [float(f"{r['avg']:.6g}") for r in sorted(eu, key=lambda r: r["window"]["start"])]
    assert after[0]["y"] == pytest.approx(expected)
    assert after[1]["y"] == before[0]["y"]
    # the drift heat map changed with the slice too (columns x windows of js_distance)
    assert probe["after"]["lf-drift-heatmap"][0]["z"] != probe["before"]["lf-drift-heatmap"][0]["z"]
    # model quality: one line per model id
    assert {t["name"] for t in probe["after"]["lf-quality-chart"]} == {"all models", "1", "2"}


# ---- served by a real server -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def monitored(server):
    """An inference-log monitor with one refresh, and a second monitored table never refreshed."""
    import uuid

    from lakeforge import Client
    from tests.monitoring_metrics import inference_log

    catalog = f"dash_{uuid.uuid4().hex[:8]}"
    with Client(server.url, server.admin_token) as lf:
        lf.catalogs.create(catalog)
        lf.schemas.create(f"{catalog}.ml")
        lf.schemas.create(f"{catalog}.mon")
        table, fresh = f"{catalog}.ml.preds", f"{catalog}.ml.fresh"
        lf.tables.write(inference_log(days=5), table)
        lf.tables.write(inference_log(days=2), fresh)
        for name in (table, fresh):
            lf.monitors.create(name, output_schema=f"{catalog}.mon", profile="inference_log", timestamp_col="ts",
                               model_id_col=MODEL_COL, prediction_col="prediction", label_col="label",
                               prediction_proba_col="proba", problem_type="classification", slicing_exprs=["region"])
        refresh = lf.monitors.refresh(table, timeout=300)
        yield {"catalog": catalog, "table": table, "fresh": fresh, "refresh_id": refresh["refresh_id"]}
        lf.catalogs.delete(catalog, force=True)


def test_served_page_needs_sign_in(server, monitored):
    import httpx

    path = f"/monitors/{monitored['table']}"
    browser = httpx.get(server.url + path, headers={"accept": "text/html"}, follow_redirects=False)
    assert browser.status_code == 303 and browser.headers["location"] == "/login"
    bad = httpx.get(server.url + path, headers={"authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["error_code"] == "UNAUTHENTICATED"
    # the web UI's sign-in cookie is enough
    page = httpx.get(server.url + path, cookies={"lakeforge_token": server.admin_token})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="lf-metric-chart"' in page.text and "No refresh yet" not in page.text
    data = _data(page.text)
    assert ["region", "EU"] in data["dims"]["slice"] and {"1", "2"} <= set(data["dims"]["model"])
    # the latest refresh (ids are numbered across the server's monitors)
    assert f"#{monitored['refresh_id']} SUCCESS" in page.text
    js = httpx.get(server.url + dashboard.PLOTLY_PATH, cookies={"lakeforge_token": server.admin_token})
    assert js.status_code == 200 and "immutable" in js.headers["cache-control"] and len(js.content) > 3_000_000
    # offline: plotly.js inside, links to this server
    offline = httpx.get(server.url + path, params={"offline": "1"}, cookies={"lakeforge_token": server.admin_token})
    assert "<script src=" not in offline.text and f'href="{server.url}/api/2.1/unity-catalog/tables/' in offline.text


def test_served_page_needs_select_on_the_table(server, monitored):
    import httpx

    from lakeforge import Client

    user, token = server.new_user()
    path = server.url + f"/monitors/{monitored['table']}"
    denied = httpx.get(path, headers={"authorization": f"Bearer {token}"})
    assert denied.status_code == 403 and denied.json()["error_code"] == "PERMISSION_DENIED"
    as_html = httpx.get(path, cookies={"lakeforge_token": token}, headers={"accept": "text/html"})
    assert as_html.status_code == 403 and "PERMISSION_DENIED" in as_html.text and "<h1>" in as_html.text
    with Client(server.url, server.admin_token) as lf:
        lf.grants.grant("catalog", monitored["catalog"], user, "USE_CATALOG")
        lf.grants.grant("schema", f"{monitored['catalog']}.ml", user, "USE_SCHEMA")
        lf.grants.grant("table", monitored["table"], user, "SELECT")
    # SELECT on the monitored table is enough: the metric tables need no grant of their own
    allowed = httpx.get(path, headers={"authorization": f"Bearer {token}"})
    assert allowed.status_code == 200 and _data(allowed.text)["profile"]["n"] > 0
    with Client(server.url, token) as other, pytest.raises(Exception) as e:
        other.sql(f"SELECT count(*) FROM {monitored['catalog']}.mon.preds_profile_metrics")
    assert getattr(e.value, "status", None) == 403


def test_served_page_before_a_refresh_and_without_a_monitor(server, monitored):
    import httpx

    cookie = {"lakeforge_token": server.admin_token}
    fresh = httpx.get(server.url + f"/monitors/{monitored['fresh']}", cookies=cookie)
    assert fresh.status_code == 200 and "No refresh yet" in fresh.text and "lf-data" not in fresh.text
    none = httpx.get(server.url + f"/monitors/{monitored['catalog']}.ml.nothing", cookies=cookie)
    assert none.status_code == 404 and none.json()["error_code"] in ("NOT_FOUND", "TABLE_DOES_NOT_EXIST")
