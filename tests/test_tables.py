"""Tables through the real clients: databricks-sdk, unitycatalog-client and raw HTTP validated against
the spec; the Delta tables behind them read back with deltalake and DuckDB."""

from __future__ import annotations

import asyncio
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
import pytest
from databricks.sdk.errors import NotFound, PermissionDenied
from databricks.sdk.service.catalog import DataSourceFormat, TableType
from deltalake import DeltaTable, write_deltalake

from tests.harness import Server
from tests.spec import Recorder

UC = "/api/2.1/unity-catalog"

COLUMNS = [
    {"name": "id", "type_text": "bigint", "type_name": "LONG", "position": 0, "nullable": False},
    {"name": "name", "type_text": "string", "type_name": "STRING", "position": 1, "comment": "who"},
    {"name": "amount", "type_text": "decimal(12,3)", "type_name": "DECIMAL", "position": 2},
    {"name": "tags", "type_text": "array<string>", "type_name": "ARRAY", "position": 3},
    {"name": "ts", "type_text": "timestamp", "type_name": "TIMESTAMP", "position": 4},
    {"name": "day", "type_text": "date", "type_name": "DATE", "position": 5, "partition_index": 0},
]


def file_path(uri: str) -> Path:
    assert uri.startswith("file:///"), uri
    return Path(uri[len("file://"):])


def uc_client(server: Server, rec: Recorder | None = None, token: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=server.url + UC, timeout=60, event_hooks={"response": [rec]} if rec else {},
                        headers={"Authorization": f"Bearer {token or server.admin_token}"})


def error_code(r: httpx.Response) -> str:
    body = r.json()
    assert set(body) >= {"error_code", "message"} and "detail" not in body, body
    return body["error_code"]


@pytest.fixture
def namespace(any_server: Server, unique):
    """A fresh catalog with schema `s`, force-deleted afterwards."""
    cat = unique("tbl")
    with any_server.client() as c:
        c.post(f"{UC}/catalogs", json={"name": cat}).raise_for_status()
        c.post(f"{UC}/schemas", json={"name": "s", "catalog_name": cat}).raise_for_status()
    yield cat, "s"
    with any_server.client() as c:
        c.delete(f"{UC}/catalogs/{cat}", params={"force": "true"})


def write_external(path: Path) -> pa.Table:
    data = pa.table({"k": pa.array([1, 2, 3], pa.int32()), "v": ["a", "b", "c"], "p": ["x", "x", "y"]})
    write_deltalake(str(path), data, partition_by=["p"])
    return data


# ---- managed tables ------------------------------------------------------------------------------
def test_managed_table_lifecycle(any_server, namespace):
    cat, sch = namespace
    full = f"{cat}.{sch}.orders"
    rec = Recorder()
    with uc_client(any_server, rec) as c:
        r = c.post("/tables", json={"name": "orders", "catalog_name": cat, "schema_name": sch,
                                    "table_type": "MANAGED", "data_source_format": "DELTA", "columns": COLUMNS,
                                    "comment": "all orders", "properties": {"team": "sales"}})
        assert r.status_code == 200, r.text
        t = r.json()
        c.get(f"/tables/{full}")
        c.get("/tables", params={"catalog_name": cat, "schema_name": sch})
    assert not rec.failures, "\n".join(rec.failures)
    assert t["full_name"] == full and t["table_type"] == "MANAGED" and t["data_source_format"] == "DELTA"
    assert t["owner"] == "admin" and t["comment"] == "all orders" and isinstance(t["created_at"], int)
    assert t["properties"]["team"] == "sales" and t["properties"]["delta.enableChangeDataFeed"] == "true"
    cols = {col["name"]: col for col in t["columns"]}
    assert [col["name"] for col in t["columns"]] == [c["name"] for c in COLUMNS]
    assert cols["amount"]["type_name"] == "DECIMAL" and cols["amount"]["type_precision"] == 12
    assert cols["amount"]["type_scale"] == 3 and cols["tags"]["type_text"] == "array<string>"
    assert cols["id"]["nullable"] is False and cols["name"]["comment"] == "who"
    assert cols["day"]["partition_index"] == 0 and "partition_index" not in cols["id"]
    assert all(isinstance(col["position"], int) and col["type_json"] for col in t["columns"])

    # A real, empty Delta table with those columns and change data feed on.
    path = file_path(t["storage_location"])
    dt = DeltaTable(str(path))
    schema = pa.schema(dt.schema().to_arrow())
    assert schema.names == [c["name"] for c in COLUMNS]
    assert pa.types.is_decimal(schema.field("amount").type) and schema.field("amount").type.scale == 3
    assert dt.metadata().partition_columns == ["day"]
    assert dt.metadata().configuration.get("delta.enableChangeDataFeed") == "true"
    assert dt.to_pyarrow_table().num_rows == 0
    ds = dt.to_pyarrow_dataset()  # noqa: F841 (read by DuckDB below)
    described = duckdb.sql("select * from ds").columns
    assert set(described) == {c["name"] for c in COLUMNS}
    assert duckdb.sql("select count(*) from ds").fetchall() == [(0,)]

    # databricks-sdk: get, exists, list, update, delete.
    w = any_server.workspace()
    got = w.tables.get(full)
    assert got.table_id == t["table_id"] and got.table_type.value == "MANAGED"
    assert [col.type_name.value for col in got.columns] == ["LONG", "STRING", "DECIMAL", "ARRAY", "TIMESTAMP", "DATE"]
    assert w.tables.exists(full).table_exists is True
    assert w.tables.exists(f"{cat}.{sch}.nope").table_exists is False
    listed = list(w.tables.list(catalog_name=cat, schema_name=sch))
    assert [x.name for x in listed] == ["orders"] and listed[0].columns
    bare = list(w.tables.list(catalog_name=cat, schema_name=sch, omit_columns=True, omit_properties=True))
    assert not bare[0].columns and not bare[0].properties
    with any_server.client() as c:
        raw = c.get(f"{UC}/tables", params={"catalog_name": cat, "schema_name": sch, "omit_columns": "true",
                                            "omit_properties": "true"}).json()["tables"][0]
        assert "columns" not in raw and "properties" not in raw and raw["table_id"] == t["table_id"]
    w.tables.update(full, owner="admins")
    assert w.tables.get(full).owner == "admins"
    with any_server.client() as c:
        r = c.patch(f"{UC}/tables/{full}", json={"comment": "changed", "owner": "admin"})
        assert r.status_code == 200 and r.json()["comment"] == "changed" and r.json()["owner"] == "admin"
    w.tables.delete(full)
    assert not path.exists()  # managed data goes with the table
    assert w.tables.exists(full).table_exists is False
    with pytest.raises(NotFound):
        w.tables.get(full)
    with pytest.raises(NotFound):
        w.tables.delete(full)


def test_list_pages_and_hides_nothing_from_the_owner(any_server, namespace):
    cat, sch = namespace
    with uc_client(any_server) as c:
        for i in range(5):
            r = c.post("/tables", json={"name": f"t{i}", "catalog_name": cat, "schema_name": sch,
                                        "table_type": "MANAGED", "columns": [{"name": "x", "type_text": "int"}]})
            assert r.status_code == 200, r.text
        seen, token = [], None
        while True:
            params = {"catalog_name": cat, "schema_name": sch, "max_results": 2}
            if token:
                params["page_token"] = token
            body = c.get("/tables", params=params).json()
            assert len(body["tables"]) <= 2
            seen += [t["name"] for t in body["tables"]]
            token = body.get("next_page_token")
            if not token:
                break
        assert seen == [f"t{i}" for i in range(5)]
    w = any_server.workspace()
    assert len(list(w.tables.list(catalog_name=cat, schema_name=sch))) == 5


# ---- external tables -----------------------------------------------------------------------------
def test_external_table_registers_an_existing_delta_table(any_server, namespace, tmp_path):
    cat, sch = namespace
    ext = tmp_path / "events"
    data = write_external(ext)
    with uc_client(any_server, rec := Recorder()) as c:
        r = c.post("/tables", json={"name": "events", "catalog_name": cat, "schema_name": sch,
                                    "table_type": "EXTERNAL", "data_source_format": "DELTA",
                                    "storage_location": str(ext)})
        assert r.status_code == 200, r.text
        t = r.json()
        assert t["table_type"] == "EXTERNAL" and t["storage_location"] == ext.resolve().as_uri()
        assert [(col["name"], col["type_text"]) for col in t["columns"]] == [("k", "int"), ("v", "string"),
                                                                           ("p", "string")]
        assert [col.get("partition_index") for col in t["columns"]] == [None, None, 0]

        # Columns given explicitly must be the table's columns.
        ok_cols = [{"name": "k", "type_text": "int"}, {"name": "v", "type_text": "string"},
                   {"name": "p", "type_text": "string", "comment": "partition"}]
        r = c.post("/tables", json={"name": "events2", "catalog_name": cat, "schema_name": sch,
                                    "table_type": "EXTERNAL", "storage_location": ext.as_uri(), "columns": ok_cols})
        assert r.status_code == 400 and "overlaps" in r.json()["message"]  # already registered as `events`
        bad_cols = [{"name": "k", "type_text": "bigint"}, {"name": "v", "type_text": "string"},
                    {"name": "p", "type_text": "string"}]
        other = tmp_path / "other"
        write_external(other)
        r = c.post("/tables", json={"name": "other", "catalog_name": cat, "schema_name": sch,
                                    "table_type": "EXTERNAL", "storage_location": other.as_uri(), "columns": bad_cols})
        assert r.status_code == 400 and "Column 'k'" in r.json()["message"]
        r = c.post("/tables", json={"name": "other", "catalog_name": cat, "schema_name": sch,
                                    "table_type": "EXTERNAL", "storage_location": other.as_uri(),
                                    "columns": ok_cols[:2]})
        assert r.status_code == 400 and error_code(r) == "INVALID_PARAMETER_VALUE"
        r = c.post("/tables", json={"name": "other", "catalog_name": cat, "schema_name": sch,
                                    "table_type": "EXTERNAL", "storage_location": other.as_uri(), "columns": ok_cols})
        assert r.status_code == 200 and r.json()["columns"][2]["comment"] == "partition"

        # Not Delta, missing, inside managed storage, or no location at all: refused.
        plain = tmp_path / "plain"
        plain.mkdir()
        (plain / "x.csv").write_text("a\n1\n")
        for location in (plain.as_uri(), (tmp_path / "missing").as_uri()):
            r = c.post("/tables", json={"name": "bad", "catalog_name": cat, "schema_name": sch,
                                        "table_type": "EXTERNAL", "storage_location": location})
            assert r.status_code == 400 and "not a Delta table" in r.json()["message"]
        corrupt = tmp_path / "corrupt"
        (corrupt / "_delta_log").mkdir(parents=True)
        (corrupt / "_delta_log" / "00000000000000000000.json").write_text("garbage{")
        r = c.post("/tables", json={"name": "bad", "catalog_name": cat, "schema_name": sch,
                                    "table_type": "EXTERNAL", "storage_location": corrupt.as_uri()})
        assert r.status_code == 400 and "Could not read the Delta table" in r.json()["message"]
        assert "\n" not in r.json()["message"]
        managed = c.get(f"/catalogs/{cat}").json()["storage_location"]
        for location in (managed, any_server.home.as_uri(), "s3://bucket/x", None):
            r = c.post("/tables", json={"name": "bad", "catalog_name": cat, "schema_name": sch,
                                        "table_type": "EXTERNAL", "storage_location": location})
            assert r.status_code == 400, (location, r.text)
    assert not rec.failures, "\n".join(rec.failures)

    # Readable through its catalog entry; dropping it leaves the data.
    w = any_server.workspace()
    sdk_ext = tmp_path / "sdk"
    write_external(sdk_ext)
    made = w.tables.create(name="sdk_ext", catalog_name=cat, schema_name=sch, table_type=TableType.EXTERNAL,
                           data_source_format=DataSourceFormat.DELTA, storage_location=sdk_ext.as_uri())
    assert made.table_type == TableType.EXTERNAL and [col.name for col in made.columns] == ["k", "v", "p"]
    got = w.tables.get(f"{cat}.{sch}.events")
    assert DeltaTable(str(file_path(got.storage_location))).to_pyarrow_table().sort_by("k").column("v") == \
        data.column("v")
    w.tables.delete(f"{cat}.{sch}.events")
    assert DeltaTable(str(ext)).to_pyarrow_table().num_rows == 3


# ---- bad input -----------------------------------------------------------------------------------
def test_bad_table_requests_get_4xx_in_the_error_shape(server, unique):
    cat = unique("bad")
    with server.client() as c:
        c.post(f"{UC}/catalogs", json={"name": cat}).raise_for_status()
        c.post(f"{UC}/schemas", json={"name": "s", "catalog_name": cat}).raise_for_status()
        base = {"name": "t", "catalog_name": cat, "schema_name": "s", "table_type": "MANAGED"}
        cases = [
            ({**base}, 400, "at least one column"),
            ({**base, "columns": []}, 400, "at least one column"),
            ({**base, "columns": [{"name": "a", "type_text": "integr"}]}, 400, "Column 'a'"),
            ({**base, "columns": [{"name": "a", "type_text": "decimal(99,2)"}]}, 400, "precision"),
            ({**base, "columns": [{"name": "a"}]}, 400, "type_text"),
            ({**base, "columns": [{"name": "a", "type_text": "int"}, {"name": "A", "type_text": "int"}]}, 400,
             "Duplicate"),
            ({**base, "table_type": "VIEW", "columns": [{"name": "a", "type_text": "int"}]}, 400, "table_type"),
            ({**base, "table_type": None, "columns": [{"name": "a", "type_text": "int"}]}, 400, "table_type"),
            ({**base, "data_source_format": "CSV", "columns": [{"name": "a", "type_text": "int"}]}, 400,
             "data_source_format"),
            ({**base, "name": "bad.name", "columns": [{"name": "a", "type_text": "int"}]}, 400, "Invalid"),
            ({**base, "schema_name": "nope", "columns": [{"name": "a", "type_text": "int"}]}, 404, "does not exist"),
            ({**base, "storage_location": "/tmp/anywhere", "columns": [{"name": "a", "type_text": "int"}]}, 400,
             "staging"),
            ({"catalog_name": cat, "schema_name": "s"}, 400, "name"),
            ({**base, "columns": [{"name": "a", "type_text": "int", "position": "first"}]}, 400, "position"),
            ({**base, "columns": [{"name": "a", "type_text": "int", "comment": 5}]}, 400, "comment"),
            ({**base, "columns": [{"name": "a", "type_text": "int", "partition_index": -1}]}, 400, "partition_index"),
            ({**base, "columns": [{"name": "a", "type_text": "int"}, {"name": "b", "type_text": "int", "position": 1}],
              "properties": {"nested": {"x": 1}}}, 400, "Property 'nested'"),
            ({**base, "columns": "a int"}, 400, "columns"),
        ]
        for payload, status, words in cases:
            r = c.post(f"{UC}/tables", json=payload)
            assert r.status_code == status, (payload, r.text)
            assert words in r.json()["message"], (payload, r.text)
            error_code(r)
        ok = c.post(f"{UC}/tables", json={**base, "columns": [{"name": "a", "type_text": "int"}]})
        assert ok.status_code == 200
        dup = c.post(f"{UC}/tables", json={**base, "columns": [{"name": "a", "type_text": "int"}]})
        assert dup.status_code == 409 and "already exists" in dup.json()["message"]
        # Nothing half-written: the failed creates left no Delta directories behind.
        tables_dir = file_path(ok.json()["storage_location"]).parent
        assert [p.name for p in tables_dir.iterdir()] == [ok.json()["table_id"]]

        for path, status in ((f"/tables/{cat}.s.missing", 404), (f"/tables/{cat}.missing.t", 404),
                             ("/tables/only.two", 400), (f"/tables/{cat}.s.missing/exists", 200)):
            r = c.get(UC + path)
            assert r.status_code == status, (path, r.text)
        r = c.get(f"{UC}/tables", params={"catalog_name": cat})
        assert r.status_code == 400 and "schema_name" in r.json()["message"]
        r = c.get(f"{UC}/tables", params={"catalog_name": cat, "schema_name": "s", "max_results": -1})
        assert r.status_code == 400
        r = c.post(f"{UC}/tables", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and error_code(r) == "MALFORMED_REQUEST"
        r = c.patch(f"{UC}/tables/{cat}.s.t", json={"owner": "nobody-such"})
        assert r.status_code == 404
        # GET and DELETE tolerate JSON bodies; unknown fields are ignored.
        r = c.request("GET", f"{UC}/tables/{cat}.s.t", json={"full_name": f"{cat}.s.t"})
        assert r.status_code == 200
        r = c.post(f"{UC}/tables", json={**base, "name": "t2", "columns": [{"name": "a", "type_text": "int"}],
                                          "unknown_field": {"x": 1}})
        assert r.status_code == 200
        r = c.request("DELETE", f"{UC}/tables/{cat}.s.t2", json={"full_name": f"{cat}.s.t2"})
        assert r.status_code == 200 and r.json() == {}
        c.delete(f"{UC}/catalogs/{cat}", params={"force": "true"}).raise_for_status()
        # Force-deleting the catalog removed the managed table's data too.
        assert not file_path(ok.json()["storage_location"]).exists()


# ---- unitycatalog-client: tables, staging tables, credentials -----------------------------------
def test_unitycatalog_client_tables_staging_and_credentials(any_server, namespace):
    from unitycatalog.client import ApiClient, Configuration, TablesApi, TemporaryCredentialsApi
    from unitycatalog.client.exceptions import ApiException, BadRequestException, NotFoundException
    from unitycatalog.client.models import (
        ColumnInfo,
        ColumnTypeName,
        CreateStagingTable,
        CreateTable,
        DataSourceFormat,
        GenerateTemporaryPathCredential,
        GenerateTemporaryTableCredential,
        TableType,
    )

    cat, sch = namespace

    async def run():
        api = ApiClient(Configuration(host=any_server.url + UC))
        api.set_default_header("Authorization", f"Bearer {any_server.admin_token}")
        try:
            tables, creds = TablesApi(api), TemporaryCredentialsApi(api)
            t = await tables.create_table(CreateTable(
                name="m", catalog_name=cat, schema_name=sch, table_type=TableType.MANAGED,
                data_source_format=DataSourceFormat.DELTA,
                columns=[ColumnInfo(name="a", type_text="int", type_name=ColumnTypeName.INT, position=0),
                         ColumnInfo(name="b", type_text="string", type_name=ColumnTypeName.STRING, position=1)]))
            assert t.table_id and t.storage_location.startswith("file:///")
            got = await tables.get_table(f"{cat}.{sch}.m")
            assert [c.type_name for c in got.columns] == [ColumnTypeName.INT, ColumnTypeName.STRING]
            listed = await tables.list_tables(catalog_name=cat, schema_name=sch, max_results=50)
            assert [x.name for x in listed.tables] == ["m"] and listed.next_page_token is None

            for op in ("READ", "READ_WRITE"):
                cred = await creds.generate_temporary_table_credentials(
                    GenerateTemporaryTableCredential(table_id=t.table_id, operation=op))
                assert cred.url == t.storage_location and cred.expiration_time > 0
                assert cred.aws_temp_credentials is None and cred.azure_user_delegation_sas is None
            with pytest.raises(NotFoundException):
                await creds.generate_temporary_table_credentials(
                    GenerateTemporaryTableCredential(table_id="0" * 32, operation="READ"))
            path = await creds.generate_temporary_path_credentials(GenerateTemporaryPathCredential(
                url=t.storage_location, operation="PATH_READ"))
            assert path.url == t.storage_location

            # Staging: allocate storage, write Delta there, then create the MANAGED table on it.
            staged = await tables.create_staging_table(CreateStagingTable(name="st", catalog_name=cat,
                                                                          schema_name=sch))
            assert staged.id and staged.staging_location.startswith("file:///")
            write_deltalake(str(file_path(staged.staging_location)), pa.table({"z": pa.array([7], pa.int64())}))
            promoted = await tables.create_table(CreateTable(
                name="st", catalog_name=cat, schema_name=sch, table_type=TableType.MANAGED,
                data_source_format=DataSourceFormat.DELTA, columns=[ColumnInfo(name="z", type_text="bigint")],
                storage_location=staged.staging_location))
            assert promoted.table_id == staged.id and promoted.storage_location == staged.staging_location
            assert DeltaTable(str(file_path(promoted.storage_location))).to_pyarrow_table().num_rows == 1
            wrong = await tables.create_staging_table(CreateStagingTable(name="x1", catalog_name=cat,
                                                                         schema_name=sch))
            with pytest.raises(BadRequestException):  # staged for x1, not x2
                await tables.create_table(CreateTable(
                    name="x2", catalog_name=cat, schema_name=sch, table_type=TableType.MANAGED,
                    columns=[ColumnInfo(name="a", type_text="int")], storage_location=wrong.staging_location))
            with pytest.raises(ApiException) as e:
                await tables.create_staging_table(CreateStagingTable(name="m", catalog_name=cat, schema_name=sch))
            assert e.value.status == 409

            await tables.delete_table(f"{cat}.{sch}.m")
            with pytest.raises(NotFoundException):
                await tables.get_table(f"{cat}.{sch}.m")
            assert not file_path(t.storage_location).exists()
        finally:
            await api.close()

    asyncio.run(run())


# ---- the reusable function other services call ---------------------------------------------------
def test_create_from_arrow_registers_a_managed_table(tmp_path):
    from lakeforge.config import Settings
    from lakeforge.errors import AlreadyExists
    from lakeforge.server.context import AppContext

    ctx = AppContext(Settings(home=tmp_path / "home", admin_token="tok-arrow", audit_fsync=False))
    ctx.start()
    try:
        admin = ctx.identity.authenticate("tok-arrow")
        schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("at", pa.timestamp("us")),
                            pa.field("m", pa.map_(pa.string(), pa.float64()))])
        info = ctx.tables.create_from_arrow(admin, "main.default.from_arrow", schema, comment="c",
                                            partition_by=["id"])
        assert [c["type_text"] for c in info["columns"]] == ["bigint", "timestamp_ntz", "map<string,double>"]
        assert info["columns"][0]["partition_index"] == 0 and info["comment"] == "c"
        dt = DeltaTable(str(file_path(info["storage_location"])))
        assert pa.schema(dt.schema().to_arrow()).names == ["id", "at", "m"]
        with pytest.raises(AlreadyExists):
            ctx.tables.create_from_arrow(admin, "main.default.from_arrow", schema)
        tables_dir = file_path(info["storage_location"]).parent
        assert len(list(tables_dir.iterdir())) == 1  # the failed create left nothing behind
    finally:
        ctx.stop()


# ---- privileges ----------------------------------------------------------------------------------
def _scim_available(server: Server) -> bool:
    with server.client() as c:
        return c.get("/api/2.0/preview/scim/v2/Users", params={"count": 1}).status_code == 200


def grant(c: httpx.Client, kind: str, full_name: str, principal: str, *privileges: str) -> None:
    r = c.patch(f"{UC}/permissions/{kind}/{full_name}",
                json={"changes": [{"principal": principal, "add": list(privileges)}]})
    assert r.status_code == 200, r.text


def test_table_privileges(server, unique, tmp_path):
    if not _scim_available(server):
        pytest.skip("SCIM users API not available yet")
    cat = unique("priv")
    user, token = server.new_user()
    with server.client() as admin:
        admin.post(f"{UC}/catalogs", json={"name": cat}).raise_for_status()
        admin.post(f"{UC}/schemas", json={"name": "s", "catalog_name": cat}).raise_for_status()
        t = admin.post(f"{UC}/tables", json={"name": "secret", "catalog_name": cat, "schema_name": "s",
                                             "table_type": "MANAGED", "columns": [{"name": "a", "type_text": "int"}]})
        t.raise_for_status()
        table_id = t.json()["table_id"]
    new_table = {"name": "mine", "catalog_name": cat, "schema_name": "s", "table_type": "MANAGED",
                 "columns": [{"name": "a", "type_text": "int"}]}
    with uc_client(server, token=token) as c:
        assert c.post("/tables", json=new_table).status_code == 403
        assert c.get(f"/tables/{cat}.s.secret").status_code == 403
        with server.client() as admin:
            grant(admin, "catalog", cat, user, "USE_CATALOG")
            grant(admin, "schema", f"{cat}.s", user, "USE_SCHEMA", "CREATE_TABLE")
        r = c.post("/tables", json=new_table)
        assert r.status_code == 200 and r.json()["owner"] == user
        assert "mine" in [x["name"] for x in c.get("/tables", params={"catalog_name": cat,
                                                                        "schema_name": "s"}).json()["tables"]]
        r = c.post("/temporary-table-credentials", json={"table_id": table_id, "operation": "READ"})
        assert r.status_code == 403 and error_code(r) == "PERMISSION_DENIED"
        with server.client() as admin:
            grant(admin, "table", f"{cat}.s.secret", user, "SELECT")
        # SELECT reveals the table's metadata and vends read credentials.
        names = [x["name"] for x in c.get("/tables", params={"catalog_name": cat, "schema_name": "s"}).json()["tables"]]
        assert names == ["mine", "secret"]
        assert c.get(f"/tables/{cat}.s.secret").status_code == 200
        assert c.get(f"/tables/{cat}.s.secret/exists").json() == {"table_exists": True}
        r = c.post("/temporary-table-credentials", json={"table_id": table_id, "operation": "READ"})
        assert r.status_code == 200
        r = c.post("/temporary-table-credentials", json={"table_id": table_id, "operation": "READ_WRITE"})
        assert r.status_code == 403 and "MODIFY" in r.json()["message"]
        r = c.post("/temporary-table-credentials", json={"table_id": table_id, "operation": "WRITE"})
        assert r.status_code == 400
        # Changing or dropping takes MANAGE, which the owner holds.
        assert c.patch(f"/tables/{cat}.s.secret", json={"comment": "x"}).status_code == 403
        assert c.delete(f"/tables/{cat}.s.secret").status_code == 403
        assert c.patch(f"/tables/{cat}.s.mine", json={"comment": "x"}).status_code == 200
        # Raw storage paths and external tables are for admins until external locations exist.
        r = c.post("/temporary-path-credentials", json={"url": tmp_path.as_uri(), "operation": "PATH_READ"})
        assert r.status_code == 403
        ext = tmp_path / "ext"
        write_external(ext)
        r = c.post("/tables", json={"name": "ext", "catalog_name": cat, "schema_name": "s", "table_type": "EXTERNAL",
                                    "storage_location": ext.as_uri()})
        assert r.status_code == 403
        assert c.delete(f"/tables/{cat}.s.mine").status_code == 200
    w = server.workspace(token)
    with pytest.raises(PermissionDenied):
        w.tables.delete(f"{cat}.s.secret")
    with server.client() as admin:
        admin.delete(f"{UC}/catalogs/{cat}", params={"force": "true"}).raise_for_status()


def test_staging_and_credential_responses_match_spec(any_server, namespace):
    cat, sch = namespace
    rec = Recorder()
    with uc_client(any_server, rec) as c:
        staged = c.post("/staging-tables", json={"name": "st", "catalog_name": cat, "schema_name": sch}).json()
        t = c.post("/tables", json={"name": "st", "catalog_name": cat, "schema_name": sch, "table_type": "MANAGED",
                                    "data_source_format": "DELTA", "storage_location": staged["staging_location"],
                                    "columns": [{"name": "a", "type_text": "int"}]}).json()
        assert t["table_id"] == staged["id"]
        assert not (file_path(t["storage_location"]) / "_lakeforge_staging.json").exists()
        c.post("/temporary-table-credentials", json={"table_id": t["table_id"], "operation": "READ_WRITE"})
        c.post("/temporary-path-credentials", json={"url": t["storage_location"], "operation": "PATH_READ_WRITE"})
        c.get("/tables", params={"catalog_name": cat, "schema_name": sch, "max_results": 0})
        c.delete(f"/tables/{cat}.{sch}.st")
    assert not rec.failures, "\n".join(rec.failures)
    assert len(rec.validated) == 6
