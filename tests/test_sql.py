"""SQL statements through the real clients: raw HTTP, databricks-sdk's statement_execution, the
Lakeforge SDK and CLI; tables written with deltalake and registered in the catalog."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import date

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from tests.harness import Server

UC = "/api/2.1/unity-catalog"
SQL = "/api/2.0/sql/statements"

ORDERS = pa.table({
    "id": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
    "customer_id": pa.array([10, 10, 20, 30, 20, 10], pa.int64()),
    "amount": pa.array([5.0, 7.5, 100.0, 1.25, None, 2.0], pa.float64()),
    "region": ["EU", "EU", "US", "APAC", "US", "EU"],
    "day": pa.array([date(2024, 1, d) for d in (1, 2, 2, 3, 4, 5)], pa.date32()),
})
CUSTOMERS = pa.table({"id": pa.array([10, 20, 30], pa.int64()), "name": ["ada", "bob", "cy"]})


def columns_of(table: pa.Table) -> list[dict]:
    types = {pa.int64(): ("bigint", "LONG"), pa.float64(): ("double", "DOUBLE"), pa.string(): ("string", "STRING"),
             pa.date32(): ("date", "DATE")}
    return [{"name": f.name, "type_text": types[f.type][0], "type_name": types[f.type][1], "position": i}
            for i, f in enumerate(table.schema)]


def create_table(server: Server, cat: str, sch: str, name: str, data: pa.Table) -> str:
    """A managed table made with the tables API, its data written with deltalake."""
    with server.client() as c:
        r = c.post(f"{UC}/tables", json={"name": name, "catalog_name": cat, "schema_name": sch,
                                         "table_type": "MANAGED", "data_source_format": "DELTA",
                                         "columns": columns_of(data)})
        assert r.status_code == 200, r.text
    write_deltalake(r.json()["storage_location"][len("file://"):], data, mode="append")
    return f"{cat}.{sch}.{name}"


def run_sql(server: Server, statement: str, token: str | None = None, **body) -> tuple[int, dict]:
    with server.client(token) as c:
        r = c.post(SQL, json={"statement": statement, "warehouse_id": "x", "wait_timeout": "30s", **body})
        return r.status_code, r.json()


def ok_rows(server: Server, statement: str, **body) -> list[list]:
    status, resp = run_sql(server, statement, **body)
    assert status == 200 and resp["status"]["state"] == "SUCCEEDED", resp
    return resp["result"]["data_array"]


def grant(server: Server, kind: str, full_name: str, principal: str, *privileges: str) -> None:
    with server.client() as c:
        r = c.patch(f"{UC}/permissions/{kind}/{full_name}",
                    json={"changes": [{"principal": principal, "add": list(privileges)}]})
        assert r.status_code == 200, r.text


@pytest.fixture
def shop(any_server: Server, unique):
    """A catalog with schema `s` holding orders and customers."""
    cat = unique("sql")
    with any_server.client() as c:
        c.post(f"{UC}/catalogs", json={"name": cat}).raise_for_status()
        c.post(f"{UC}/schemas", json={"name": "s", "catalog_name": cat}).raise_for_status()
    create_table(any_server, cat, "s", "orders", ORDERS)
    create_table(any_server, cat, "s", "customers", CUSTOMERS)
    yield any_server, cat
    with any_server.client() as c:
        c.delete(f"{UC}/catalogs/{cat}", params={"force": "true"})


# ---- queries -------------------------------------------------------------------------------------
def test_select_filters_aggregates_joins(shop):
    server, cat = shop
    status, resp = run_sql(server, f"""
        SELECT c.name, count(*) AS n, sum(o.amount) AS total, avg(o.amount) AS mean
        FROM {cat}.s.orders o JOIN {cat}.s.customers AS c ON o.customer_id = c.id
        WHERE o.day >= DATE'2024-01-02' GROUP BY c.name ORDER BY c.name""")
    assert status == 200 and resp["status"]["state"] == "SUCCEEDED", resp
    m = resp["manifest"]
    assert m["format"] == "JSON_ARRAY" and m["total_row_count"] == 3 and m["truncated"] is False
    assert m["total_chunk_count"] == 1 and m["chunks"] == [{"chunk_index": 0, "row_offset": 0, "row_count": 3}]
    cols = m["schema"]["columns"]
    assert m["schema"]["column_count"] == 4
    assert [(c["name"], c["type_name"], c["position"]) for c in cols] == [
        ("name", "STRING", 0), ("n", "LONG", 1), ("total", "DOUBLE", 2), ("mean", "DOUBLE", 3)]
    # Values are strings (or null), as Databricks sends them.
    assert resp["result"]["data_array"] == [["ada", "2", "9.5", "4.75"], ["bob", "2", "100.0", "100.0"],
                                            ["cy", "1", "1.25", "1.25"]]
    assert resp["result"]["row_count"] == 3 and "next_chunk_index" not in resp["result"]
    # A statement can be read back by its submitter.
    with server.client() as c:
        again = c.get(f"{SQL}/{resp['statement_id']}").json()
    assert again["result"]["data_array"] == resp["result"]["data_array"]


def test_types_nulls_and_values(shop):
    server, cat = shop
    rows = ok_rows(server, f"SELECT id, amount, day, region = 'EU' AS eu, CAST(amount AS DECIMAL(10,2)) AS d "
                           f"FROM {cat}.s.orders WHERE id IN (1, 5) ORDER BY id")
    assert rows == [["1", "5.0", "2024-01-01", "true", "5.00"], ["5", None, "2024-01-04", "false", None]]
    assert ok_rows(server, "VALUES (1, 'a'), (2, 'b')") == [["1", "a"], ["2", "b"]]
    assert ok_rows(server, "WITH x AS (SELECT 41 AS v) SELECT v + 1 FROM x") == [["42"]]


def test_default_catalog_and_schema(shop):
    server, cat = shop
    assert ok_rows(server, "SELECT count(*) FROM orders", catalog=cat, schema="s") == [["6"]]
    assert ok_rows(server, "SELECT count(*) FROM s.customers", catalog=cat) == [["3"]]
    # Without defaults, names resolve in main.default.
    status, resp = run_sql(server, "SELECT * FROM orders")
    assert status == 404 and "main.default.orders" in resp["message"], resp


def test_named_parameters(shop):
    server, cat = shop
    rows = ok_rows(server, f"SELECT id FROM {cat}.s.orders WHERE region = :region AND amount > :min ORDER BY id",
                   parameters=[{"name": "region", "value": "EU"}, {"name": "min", "value": "3", "type": "DOUBLE"}])
    assert rows == [["1"], ["2"]]
    # A value is a literal, never SQL text.
    rows = ok_rows(server, f"SELECT count(*) FROM {cat}.s.orders WHERE region = :r",
                   parameters=[{"name": "r", "value": "EU' OR '1'='1"}])
    assert rows == [["0"]]
    status, resp = run_sql(server, "SELECT :missing")
    assert status == 400 and ":missing" in resp["message"]


def test_row_limit_truncates(shop):
    server, cat = shop
    _status, resp = run_sql(server, f"SELECT id FROM {cat}.s.orders ORDER BY id", row_limit=2)
    assert resp["manifest"]["truncated"] is True and resp["manifest"]["total_row_count"] == 2
    assert resp["result"]["data_array"] == [["1"], ["2"]]
    _status, resp = run_sql(server, f"SELECT id FROM {cat}.s.orders ORDER BY id", byte_limit=16)
    assert resp["manifest"]["truncated"] is True and 0 < resp["manifest"]["total_row_count"] < 6


# ---- writes --------------------------------------------------------------------------------------
def lineage_sources(server: Server, target: str) -> set[str]:
    with server.client() as c:
        r = c.get("/api/2.0/lineage/graph", params={"type": "TABLE", "name": target, "direction": "upstream"})
        assert r.status_code == 200, r.text
    return {e["source"]["name"] for e in r.json().get("edges", []) if e["target"]["name"] == target}


def test_ctas_and_insert_write_delta_and_lineage(shop):
    server, cat = shop
    target = f"{cat}.s.spend"
    status, resp = run_sql(server, f"""CREATE TABLE {target} AS
        SELECT c.name, sum(o.amount) AS total FROM {cat}.s.orders o JOIN {cat}.s.customers c
        ON o.customer_id = c.id GROUP BY c.name""")
    assert status == 200 and resp["status"]["state"] == "SUCCEEDED", resp
    assert resp["result"]["data_array"] == [["3", "3"]]
    with server.client() as c:
        info = c.get(f"{UC}/tables/{target}").json()
    assert info["table_type"] == "MANAGED" and [col["name"] for col in info["columns"]] == ["name", "total"]
    path = info["storage_location"][len("file://"):]
    assert sorted(DeltaTable(path).to_pyarrow_table().to_pylist(), key=lambda r: r["name"]) == [
        {"name": "ada", "total": 14.5}, {"name": "bob", "total": 100.0}, {"name": "cy", "total": 1.25}]
    assert lineage_sources(server, target) == {f"{cat}.s.orders", f"{cat}.s.customers"}

    # INSERT: by name (columns in another order), then VALUES by position, then a column list.
    assert ok_rows(server, f"INSERT INTO {target} SELECT 9.0 AS total, 'dee' AS name") == [["1", "1"]]
    assert ok_rows(server, f"INSERT INTO {target} VALUES ('eve', 1.5), ('fay', NULL)") == [["2", "2"]]
    ok_rows(server, f"INSERT INTO {target} (name) SELECT name FROM {cat}.s.customers WHERE id = 30")
    data = {r["name"]: r["total"] for r in DeltaTable(path).to_pyarrow_table().to_pylist() if r["name"] != "cy"}
    assert data == {"ada": 14.5, "bob": 100.0, "dee": 9.0, "eve": 1.5, "fay": None}
    assert ok_rows(server, f"SELECT count(*) FROM {target} WHERE name = 'cy'") == [["2"]]
    version = DeltaTable(path).version()

    # Incompatible types: 400 naming the column; the table stays at its version.
    status, resp = run_sql(server, f"INSERT INTO {target} SELECT 'x' AS name, 'not a number' AS total")
    assert status == 400 and "'total'" in resp["message"], resp
    # CTAS over an existing table: refused; IF NOT EXISTS: nothing happens.
    status, resp = run_sql(server, f"CREATE TABLE {target} AS SELECT 1 AS x")
    assert status == 409 and target in resp["message"], resp
    assert ok_rows(server, f"CREATE TABLE IF NOT EXISTS {target} AS SELECT 1 AS x") == [["0", "0"]]
    # A runtime failure while inserting leaves the target untouched.
    status, resp = run_sql(server, f"INSERT INTO {target} SELECT 'z' AS name, 1.0 / 0 AS total WHERE error('boom')")
    assert resp["status"]["state"] == "FAILED" and "boom" in resp["status"]["error"]["message"], resp
    assert DeltaTable(path).version() == version


def test_failed_ctas_leaves_no_table(shop):
    server, cat = shop
    status, resp = run_sql(server, f"CREATE TABLE {cat}.s.bad AS SELECT error('nope') AS x FROM {cat}.s.orders")
    assert status == 200 and resp["status"]["state"] == "FAILED", resp
    with server.client() as c:
        assert c.get(f"{UC}/tables/{cat}.s.bad").status_code == 404


def test_table_whose_data_is_gone_is_400(shop):
    import shutil

    server, cat = shop
    name = create_table(server, cat, "s", "ghost", CUSTOMERS)
    with server.client() as c:
        location = c.get(f"{UC}/tables/{name}").json()["storage_location"]
    shutil.rmtree(location[len("file://"):])
    for statement in (f"SELECT * FROM {name}", f"INSERT INTO {name} VALUES (1, 'x')"):
        status, resp = run_sql(server, statement)
        assert status == 400 and resp["error_code"] == "INVALID_STATE" and name in resp["message"], resp


# ---- access --------------------------------------------------------------------------------------
def test_access_checked_on_every_table_before_running(shop):
    server, cat = shop
    user, token = server.new_user()
    grant(server, "catalog", cat, user, "USE_CATALOG")
    grant(server, "schema", f"{cat}.s", user, "USE_SCHEMA", "CREATE_TABLE")
    grant(server, "table", f"{cat}.s.customers", user, "SELECT")
    status, resp = run_sql(server, f"SELECT count(*) FROM {cat}.s.customers", token=token)
    assert status == 200 and resp["result"]["data_array"] == [["3"]], resp

    status, resp = run_sql(server, f"SELECT * FROM {cat}.s.customers c JOIN {cat}.s.orders o ON o.customer_id = c.id",
                           token=token)
    assert status == 403 and resp["error_code"] == "PERMISSION_DENIED" and f"{cat}.s.orders" in resp["message"]
    # Hidden in a CTE or a subquery makes no difference.
    status, resp = run_sql(server, f"WITH x AS (SELECT * FROM {cat}.s.orders) SELECT count(*) FROM x", token=token)
    assert status == 403 and f"{cat}.s.orders" in resp["message"]
    # A CTAS reading a table the user may not read creates nothing.
    status, resp = run_sql(server, f"CREATE TABLE {cat}.s.stolen AS SELECT * FROM {cat}.s.orders", token=token)
    assert status == 403 and f"{cat}.s.orders" in resp["message"]
    with server.client() as c:
        assert c.get(f"{UC}/tables/{cat}.s.stolen").status_code == 404
    # INSERT needs MODIFY on the target.
    status, resp = run_sql(server, f"INSERT INTO {cat}.s.customers VALUES (40, 'dan')", token=token)
    assert status == 403 and "MODIFY" in resp["message"] and f"{cat}.s.customers" in resp["message"]
    # A table that does not exist: 404 naming it.
    status, resp = run_sql(server, f"SELECT * FROM {cat}.s.nope", token=token)
    assert status == 404 and f"{cat}.s.nope" in resp["message"]
    # The user's own CTAS works and makes the user the owner.
    status, resp = run_sql(server, f"CREATE TABLE {cat}.s.mine AS SELECT * FROM {cat}.s.customers", token=token)
    assert resp["status"]["state"] == "SUCCEEDED", resp
    # Another user cannot read the statement's result.
    _other_user, other = server.new_user()
    with server.client(other) as c:
        assert c.get(f"{SQL}/{resp['statement_id']}").status_code == 404
    with server.client() as c:  # admins can
        assert c.get(f"{SQL}/{resp['statement_id']}").status_code == 200


# ---- bad input -----------------------------------------------------------------------------------
def test_malformed_sql_is_400_with_position(server):
    status, resp = run_sql(server, "SELECT id,\n  FROM WHERE")
    assert status == 400 and resp["error_code"] == "INVALID_PARAMETER_VALUE", resp
    assert "line 2" in resp["message"] and "column" in resp["message"]
    meta = resp["details"][0]["metadata"]
    assert meta["line"] == "2" and int(meta["column"]) > 0
    status, resp = run_sql(server, "SELECT 'unterminated")
    assert status == 400 and "Syntax error" in resp["message"]
    status, resp = run_sql(server, "SELECT 1; SELECT 2")
    assert status == 400 and "one statement" in resp["message"]
    status, resp = run_sql(server, "SELECT 1 FROM a.b.c.d")
    assert status == 400 and "a.b.c.d" in resp["message"]
    status, resp = run_sql(server, "SELECT ?")
    assert status == 400 and "named :name" in resp["message"]
    # A CTAS whose result Delta cannot store is refused before anything runs or is created.
    status, resp = run_sql(server, "CREATE TABLE main.default.iv AS SELECT INTERVAL 1 DAY AS i")
    assert status == 400 and "'i'" in resp["message"], resp


@pytest.mark.parametrize("statement,kind", [
    ("DROP TABLE main.default.x", "DROP"), ("DELETE FROM main.default.x", "DELETE"),
    ("UPDATE main.default.x SET a = 1", "UPDATE"), ("ATTACH 'x.db' AS y", None),
    ("COPY main.default.x TO '/tmp/out.csv'", "COPY"), ("INSTALL httpfs", "INSTALL"), ("LOAD httpfs", "LOAD"),
    ("PRAGMA database_list", "PRAGMA"), ("SET enable_external_access = true", "SET"),
    ("CREATE OR REPLACE TABLE main.default.x AS SELECT 1", None), ("CREATE TABLE main.default.x (a INT)", None),
])
def test_unsupported_statements_are_400(server, statement, kind):
    status, resp = run_sql(server, statement)
    assert status == 400 and resp["error_code"] == "INVALID_PARAMETER_VALUE", resp
    if kind:
        assert f"Statement type {kind} is not supported" in resp["message"]


def test_bad_options_are_400(server):
    for body, word in (({"disposition": "EXTERNAL_LINKS"}, "EXTERNAL_LINKS"), ({"format": "CSV"}, "CSV"),
                       ({"wait_timeout": "2s"}, "wait_timeout"), ({"on_wait_timeout": "LATER"}, "on_wait_timeout")):
        status, resp = run_sql(server, "SELECT 1", **body)
        assert status == 400 and word in resp["message"], resp
    with server.client() as c:
        r = c.post(SQL, json={"warehouse_id": "x"})
        assert r.status_code == 400 and "statement" in r.json()["message"]


def test_files_and_settings_are_out_of_reach(server, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("a,b\n1,2\n")
    for statement in (f"SELECT * FROM read_csv('{secret}')", "SELECT * FROM read_csv('/etc/passwd')",
                      f"SELECT * FROM read_text('{secret}')", f"SELECT * FROM read_parquet('{secret}')"):
        status, resp = run_sql(server, statement)
        assert status in (200, 400), resp
        if status == 200:
            assert resp["status"]["state"] == "FAILED" and "result" not in resp, resp
    status, resp = run_sql(server, "SELECT current_setting('enable_external_access'), "
                                   "current_setting('python_enable_replacements'), current_setting('TimeZone')")
    assert resp["result"]["data_array"] == [["false", "false", "UTC"]]
    # Generated view names are not a way around the catalog: a statement sees only its own views.
    status, resp = run_sql(server, "SELECT * FROM query('SELECT * FROM __lakeforge_t0')")
    assert resp["status"]["state"] == "FAILED", resp


# ---- large results, waiting, cancel --------------------------------------------------------------
@pytest.fixture(scope="module")
def big_table(server):
    cat = f"sqlbig_{int(time.time() * 1000) % 10**8}"
    with server.client() as c:
        c.post(f"{UC}/catalogs", json={"name": cat}).raise_for_status()
        c.post(f"{UC}/schemas", json={"name": "s", "catalog_name": cat}).raise_for_status()
    n = 250_000
    data = pa.table({"id": pa.array(range(n), pa.int64()), "label": [f"row-{i}" for i in range(n)]})
    yield create_table(server, cat, "s", "big", data), n
    with server.client() as c:
        c.delete(f"{UC}/catalogs/{cat}", params={"force": "true"})


def test_large_results_are_chunked(server, big_table):
    name, n = big_table
    _status, resp = run_sql(server, f"SELECT id, label FROM {name} ORDER BY id")
    m = resp["manifest"]
    assert m["total_row_count"] == n and m["total_chunk_count"] == 3 and len(m["chunks"]) == 3
    assert [c["row_offset"] for c in m["chunks"]] == [0, 100_000, 200_000]
    seen, result = 0, resp["result"]
    with server.client() as c:
        while True:
            rows = result["data_array"]
            assert result["row_offset"] == seen and len(rows) == result["row_count"]
            assert rows[0] == [str(seen), f"row-{seen}"]
            seen += len(rows)
            if "next_chunk_index" not in result:
                break
            link = result["next_chunk_internal_link"]
            assert link == f"{SQL}/{resp['statement_id']}/result/chunks/{result['next_chunk_index']}"
            result = c.get(link).json()
        assert seen == n
        assert c.get(f"{SQL}/{resp['statement_id']}/result/chunks/3").status_code == 400


def test_wait_timeout_zero_then_poll_and_cancel(server, big_table):
    name, n = big_table
    status, resp = run_sql(server, f"SELECT count(*) FROM {name}", wait_timeout="0s")
    assert status == 200 and resp["status"]["state"] in ("PENDING", "RUNNING", "SUCCEEDED")
    with server.client() as c:
        for _ in range(200):
            resp = c.get(f"{SQL}/{resp['statement_id']}").json()
            if resp["status"]["state"] == "SUCCEEDED":
                break
            time.sleep(0.05)
        assert resp["result"]["data_array"] == [[str(n)]]
        # A statement that would run for a long time, canceled.
        status, resp = run_sql(server, "SELECT count(*) FROM range(100000000000) a WHERE a.range % 7 = 3",
                               wait_timeout="0s")
        sid = resp["statement_id"]
        assert c.post(f"{SQL}/{sid}/cancel").json() == {}
        for _ in range(200):
            state = c.get(f"{SQL}/{sid}").json()["status"]["state"]
            if state == "CANCELED":
                break
            time.sleep(0.05)
        assert state == "CANCELED"
        # on_wait_timeout=CANCEL cancels a statement still running at the deadline.
        status, resp = run_sql(server, "SELECT count(*) FROM range(100000000000) a WHERE a.range % 7 = 3",
                               wait_timeout="5s", on_wait_timeout="CANCEL")
        assert resp["status"]["state"] == "CANCELED", resp


# ---- real clients --------------------------------------------------------------------------------
def test_databricks_sdk_statement_execution(server, big_table):
    from databricks.sdk.service.sql import (
        ColumnInfoTypeName,
        StatementParameterListItem,
        StatementState,
    )

    name, _n = big_table
    w = server.workspace()
    resp = w.statement_execution.execute_statement(statement=f"SELECT id, label FROM {name} WHERE id < :lim",
                                                   warehouse_id="x", wait_timeout="30s",
                                                   parameters=[StatementParameterListItem(name="lim", value="150000",
                                                                                          type="BIGINT")])
    assert resp.status.state == StatementState.SUCCEEDED
    assert resp.manifest.total_row_count == 150_000 and resp.manifest.total_chunk_count == 2
    assert [c.type_name for c in resp.manifest.schema.columns] == [ColumnInfoTypeName.LONG, ColumnInfoTypeName.STRING]
    assert resp.result.data_array[0] == ["0", "row-0"] and resp.result.next_chunk_index == 1
    got = w.statement_execution.get_statement(resp.statement_id)
    assert got.status.state == StatementState.SUCCEEDED and got.manifest.total_row_count == 150_000
    chunk = w.statement_execution.get_statement_result_chunk_n(resp.statement_id, 1)
    assert chunk.row_offset == 100_000 and chunk.row_count == 50_000 and chunk.data_array[-1] == ["149999", "row-149999"]
    failed = w.statement_execution.execute_statement(statement=f"SELECT nope FROM {name}", warehouse_id="x")
    assert failed.status.state == StatementState.FAILED and "nope" in failed.status.error.message
    w.statement_execution.cancel_execution(resp.statement_id)  # finished: a no-op


def test_lakeforge_sdk_returns_arrow(shop):
    from lakeforge import Client

    server, cat = shop
    with Client(server.url, token=server.admin_token) as lf:
        t = lf.sql(f"SELECT id, amount, region, day FROM {cat}.s.orders WHERE region = :region ORDER BY id",
                   region="EU")
    assert t.schema.types == [pa.int64(), pa.float64(), pa.string(), pa.date32()]
    assert t.column("id").to_pylist() == [1, 2, 6] and t.column("day").to_pylist()[0] == date(2024, 1, 1)
    with Client(server.url, token=server.admin_token) as lf:
        t = lf.sql("SELECT CAST('2024-01-01 10:00:00' AS TIMESTAMP_NTZ) AS ntz, "
                   "CAST('2024-01-01 10:00:00' AS TIMESTAMP) AS utc, CAST(1.5 AS DECIMAL(4,2)) AS d, :flag AS f",
                   flag=True)
    assert t.schema.types == [pa.timestamp("us"), pa.timestamp("us", tz="UTC"), pa.decimal128(4, 2), pa.bool_()]
    assert t.column("ntz")[0].as_py().isoformat() == "2024-01-01T10:00:00"
    assert t.column("utc")[0].as_py().isoformat() == "2024-01-01T10:00:00+00:00"


def test_sdk_walks_chunks(server, big_table):
    from lakeforge import Client

    name, n = big_table
    with Client(server.url, token=server.admin_token) as lf:
        t = lf.sql(f"SELECT id FROM {name} ORDER BY id")
    assert t.num_rows == n and t.column("id")[n - 1].as_py() == n - 1


def test_cli_prints_a_table(shop, tmp_path):
    server, cat = shop
    env = {**server.env, "LAKEFORGE_HOST": server.url, "LAKEFORGE_TOKEN": server.admin_token,
           "LAKEFORGE_PROFILES": str(tmp_path / "none.toml"), "COLUMNS": "200"}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "lakeforge.cli.main", "sql", *args], check=False, env=env,
                              capture_output=True, text=True, timeout=120)

    out = cli(f"SELECT region, count(*) AS n FROM {cat}.s.orders GROUP BY region ORDER BY region")
    assert out.returncode == 0, out.stderr
    assert "region" in out.stdout and "APAC" in out.stdout and "3 row(s)" in out.stdout
    out = cli(f"SELECT id FROM {cat}.s.orders ORDER BY id", "--limit", "2", "-o", "json")
    assert out.returncode == 0 and json.loads(out.stdout) == [{"id": 1}, {"id": 2}]
    out = cli("SELECT 1700000000000 AS big, NULL AS nothing")
    assert out.returncode == 0 and "1700000000000" in out.stdout, out.stdout
    out = cli(f"SELECT id FROM {cat}.s.orders WHERE id < 0")
    assert out.returncode == 0 and "no rows" in out.stdout and "id" in out.stdout
    out = cli("DROP TABLE x")
    assert out.returncode == 1 and "DROP is not supported" in out.stderr


# ---- the result store ----------------------------------------------------------------------------
def test_statement_store_expires_and_bounds_bytes(monkeypatch):
    from lakeforge.identity.principal import Principal
    from lakeforge.sql import statements
    from lakeforge.sql.statements import Statement, StatementStore

    owner = Principal(id="u1", kind="user", name="u1")
    store = StatementStore(ttl_seconds=60, max_bytes=3000)
    held = []
    for i in range(3):
        st = store.add(Statement(statement_id=f"s{i}", owner_id="u1"))
        st.result = pa.table({"x": pa.array(range(125), pa.int64())})  # 1000 bytes
        st.finish("SUCCEEDED")
        store.settled(st)
        held.append(st)
    store.get(owner, "s0")  # read: now the most recently used
    st = store.add(Statement(statement_id="s3", owner_id="u1"))
    st.result = pa.table({"x": pa.array(range(125), pa.int64())})
    st.finish("SUCCEEDED")
    store.settled(st)
    with pytest.raises(Exception, match="does not exist"):
        store.get(owner, "s1")  # the least recently used went first
    assert store.get(owner, "s0") and store.get(owner, "s3")
    with pytest.raises(Exception, match="does not exist"):  # nobody else sees a statement
        store.get(Principal(id="u2", kind="user", name="u2"), "s0")
    # After the TTL every finished statement is gone.
    now = statements.time.monotonic()
    monkeypatch.setattr(statements.time, "monotonic", lambda: now + 61)
    with pytest.raises(Exception, match="does not exist"):
        store.get(owner, "s0")
