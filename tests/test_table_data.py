"""Table data through the SDK, the CLI and raw HTTP: Arrow, pandas and Polars writes, reads with time
travel, history, change data feed, the schema evolution rules and the privileges they need; the Delta
tables behind them read back with deltalake and DuckDB."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from lakeforge import ApiError, Client
from lakeforge.catalog.table_data import TableUpload
from lakeforge.errors import RequestTooLarge
from tests.harness import Server

UC = "/api/2.1/unity-catalog"
DATA = "/api/2.0/lakeforge/tables/{}/data"
ARROW = "application/vnd.apache.arrow.stream"


def file_path(uri: str) -> Path:
    assert uri.startswith("file:///"), uri
    return Path(uri[len("file://"):])


def ipc(*batches: pa.RecordBatch, schema: pa.Schema | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema or batches[0].schema) as w:
        for b in batches:
            w.write_batch(b)
    return sink.getvalue().to_pybytes()


def version(lf: Client, full: str) -> int:
    return lf.tables.history(full, limit=1)[0]["version"]


def grant(c, kind: str, full_name: str, principal: str, *privileges: str) -> None:
    r = c.patch(f"{UC}/permissions/{kind}/{full_name}", json={"changes": [{"principal": principal,
                                                                           "add": list(privileges)}]})
    assert r.status_code == 200, r.text


def refused(excinfo, *words: str) -> None:
    e = excinfo.value
    assert e.status == 400 and e.error_code == "INVALID_PARAMETER_VALUE", (e.status, e.error_code, e.message)
    for w in words:
        assert w in e.message, e.message


@pytest.fixture
def namespace(any_server: Server, unique):
    cat = unique("data")
    with any_server.client() as c:
        c.post(f"{UC}/catalogs", json={"name": cat}).raise_for_status()
        c.post(f"{UC}/schemas", json={"name": "s", "catalog_name": cat}).raise_for_status()
    yield f"{cat}.s"
    with any_server.client() as c:
        c.delete(f"{UC}/catalogs/{cat}", params={"force": "true"})


@pytest.fixture
def lf(any_server: Server):
    with Client(any_server.url, token=any_server.admin_token) as client:
        yield client


# ---- create, append, overwrite, time travel --------------------------------------------------------
def test_first_write_creates_a_managed_delta_table(any_server, namespace, lf):
    full = f"{namespace}.orders"
    data = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "item": ["a", "b", "c"],
                     "day": pa.array([dt.date(2026, 1, d) for d in (1, 2, 3)], pa.date32())})
    result = lf.tables.write(data, full)
    assert result == {"full_name": full, "version": 1, "num_rows": 3, "created": True}
    info = lf.tables.get(full)
    assert info["table_type"] == "MANAGED" and info["owner"] == "admin"
    assert [(c["name"], c["type_text"]) for c in info["columns"]] == [("id", "bigint"), ("item", "string"),
                                                                      ("day", "date")]
    assert info["properties"]["delta.enableChangeDataFeed"] == "true"

    # A real Delta table: deltalake and DuckDB read it without Lakeforge.
    table = DeltaTable(str(file_path(info["storage_location"])))
    assert table.version() == 1 and table.metadata().configuration["delta.enableChangeDataFeed"] == "true"
    assert table.to_pyarrow_table().sort_by("id").equals(data)
    ds = table.to_pyarrow_dataset()  # noqa: F841 (read by DuckDB)
    assert duckdb.sql("select count(*), sum(id), max(day) from ds").fetchall() == [(3, 6, dt.date(2026, 1, 3))]

    again = lf.tables.write(data, full)
    assert again["created"] is False and again["version"] == 2
    assert lf.tables.read(full).num_rows == 6


def test_pandas_polars_and_arrow_writes(any_server, namespace, lf):
    full = f"{namespace}.people"
    first = lf.tables.write(pd.DataFrame({"id": [1, 2], "name": ["ann", "bob"], "score": [1.5, 2.5]}), full)
    assert first["created"] and first["num_rows"] == 2
    # Columns are matched by name, not position.
    lf.tables.write(pl.DataFrame({"score": [3.5], "name": ["cy"], "id": [3]}), full)
    reader = pa.table({"id": [4], "name": ["di"], "score": [4.5]}).to_reader()
    assert lf.tables.write(reader, full)["version"] == 3
    got = lf.tables.read(full).sort_by("id")
    assert got.column_names == ["id", "name", "score"]
    assert got.to_pydict() == {"id": [1, 2, 3, 4], "name": ["ann", "bob", "cy", "di"], "score": [1.5, 2.5, 3.5, 4.5]}
    with pytest.raises(TypeError):
        lf.tables.write([{"id": 1}], full)


def test_overwrite_time_travel_columns_and_limit(any_server, namespace, lf):
    full = f"{namespace}.tt"
    lf.tables.write(pa.table({"k": [1, 2], "v": ["a", "b"]}), full)
    result = lf.tables.write(pa.table({"k": [9], "v": ["z"]}), full, mode="overwrite")
    assert result["version"] == 2 and result["num_rows"] == 1
    assert lf.tables.read(full).to_pydict() == {"k": [9], "v": ["z"]}
    assert lf.tables.read(full, version=1).sort_by("k").to_pydict() == {"k": [1, 2], "v": ["a", "b"]}
    empty = lf.tables.read(full, version=0)
    assert empty.num_rows == 0 and empty.column_names == ["k", "v"]
    assert lf.tables.read(full, version=1, columns=["v"]).column_names == ["v"]
    assert lf.tables.read(full, version=1, limit=1).num_rows == 1
    with pytest.raises(ApiError) as e:
        lf.tables.read(full, version=7)
    refused(e, "no version 7", "0 to 2")
    with pytest.raises(ApiError) as e:
        lf.tables.read(full, columns=["nope"])
    refused(e, "nope")
    with any_server.client() as c:
        r = c.get(DATA.format(full), params={"version": 1})
        assert r.headers["content-type"] == ARROW and r.headers["x-lakeforge-table-version"] == "1"
        assert pa.ipc.open_stream(r.content).read_all().num_rows == 2


def test_history_names_the_principal_and_changes_feed(any_server, namespace, lf):
    full = f"{namespace}.hist"
    lf.tables.write(pa.table({"k": [1]}), full)
    user, token = any_server.new_user()
    with any_server.client() as c:
        grant(c, "catalog", namespace.split(".")[0], user, "USE_CATALOG")
        grant(c, "schema", namespace, user, "USE_SCHEMA")
        grant(c, "table", full, user, "MODIFY", "SELECT")
    with Client(any_server.url, token=token) as theirs:
        theirs.tables.write(pa.table({"k": [2, 3]}), full)
        history = theirs.tables.history(full)
    assert [h["version"] for h in history] == [2, 1, 0]
    assert [h["operation"] for h in history] == ["WRITE", "WRITE", "CREATE TABLE"]
    assert history[0]["user"] == user and history[1]["user"] == "admin"
    assert history[0]["num_rows"] == 2 and isinstance(history[0]["timestamp"], int)
    assert history[0]["operation_parameters"]["mode"] == "Append"
    assert len(lf.tables.history(full, limit=1)) == 1
    # Any Delta reader sees who wrote, in the commit info.
    location = file_path(lf.tables.get(full)["storage_location"])
    assert DeltaTable(str(location)).history(1)[0]["lakeforge.principal"] == user

    lf.tables.write(pa.table({"k": [7]}), full, mode="overwrite")
    changes = lf.tables.changes(full, starting_version=1)
    kinds = sorted(zip(changes["_commit_version"].to_pylist(), changes["_change_type"].to_pylist(),
                       changes["k"].to_pylist()))
    assert (1, "insert", 1) in kinds and (2, "insert", 3) in kinds and (3, "insert", 7) in kinds
    only = lf.tables.changes(full, starting_version=2, ending_version=2)
    assert sorted(only["k"].to_pylist()) == [2, 3]
    with pytest.raises(ApiError) as e:
        lf.tables.changes(full, starting_version=9)
    refused(e, "versions 0 to 3")


# ---- privileges ------------------------------------------------------------------------------------
def test_modify_and_select_are_checked(any_server, namespace, lf):
    full = f"{namespace}.guarded"
    lf.tables.write(pa.table({"k": [1]}), full)
    reader_name, reader_token = any_server.new_user()
    stranger_name, stranger_token = any_server.new_user()
    with any_server.client() as c:
        for who in (reader_name, stranger_name):
            grant(c, "catalog", namespace.split(".")[0], who, "USE_CATALOG")
            grant(c, "schema", namespace, who, "USE_SCHEMA")
        grant(c, "table", full, reader_name, "SELECT")
    with Client(any_server.url, token=reader_token) as reader:
        assert reader.tables.read(full).to_pydict() == {"k": [1]}
        assert reader.tables.history(full)[0]["version"] == 1
        for mode in ("append", "overwrite"):
            with pytest.raises(ApiError) as e:
                reader.tables.write(pa.table({"k": [2]}), full, mode=mode)
            assert e.value.status == 403 and "MODIFY" in e.value.message
        # A missing table needs CREATE_TABLE on the schema: refused, and nothing is left behind.
        with pytest.raises(ApiError) as e:
            reader.tables.write(pa.table({"k": [2]}), f"{namespace}.mine")
        assert e.value.status == 403 and "CREATE_TABLE" in e.value.message
    assert version(lf, full) == 1 and not lf.tables.exists(f"{namespace}.mine")
    with Client(any_server.url, token=stranger_token) as stranger:
        for call in (lambda: stranger.tables.read(full), lambda: stranger.tables.history(full),
                     lambda: stranger.tables.changes(full)):
            with pytest.raises(ApiError) as e:
                call()
            assert e.value.status == 403 and "SELECT" in e.value.message


# ---- a failed write leaves the previous version ---------------------------------------------------
def test_failure_mid_write_leaves_the_previous_version(any_server, namespace, lf):
    full = f"{namespace}.atomic"
    strict = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.string())])
    lf.tables.write(pa.table({"id": [1, 2], "v": ["a", "b"]}, schema=strict), full)
    before = lf.tables.read(full).sort_by("id")
    # The first batch is fine; the second holds a null for the NOT NULL column.
    loose = pa.schema([pa.field("id", pa.int64()), pa.field("v", pa.string())])
    good = pa.record_batch({"id": [3, 4], "v": ["c", "d"]}, schema=loose)
    bad = pa.record_batch({"id": [5, None], "v": ["e", "f"]}, schema=loose)
    with pytest.raises(ApiError) as e:
        lf.tables.write(pa.RecordBatchReader.from_batches(loose, [good, bad]), full)
    refused(e, "'id'", "NOT NULL")
    # A stream cut off after its first batch.
    body = ipc(good, pa.record_batch({"id": [6], "v": ["g"]}, schema=loose))
    with any_server.client() as c:
        r = c.post(DATA.format(full), content=body[:-40], headers={"Content-Type": ARROW})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text
    assert version(lf, full) == 1 and lf.tables.read(full).sort_by("id").equals(before)


def test_failed_first_write_leaves_no_table(any_server, namespace, lf):
    full = f"{namespace}.never"
    batch = pa.record_batch({"id": [1, 2]})
    body = ipc(batch, batch)
    with any_server.client() as c:
        r = c.post(DATA.format(full), content=body[:-30], headers={"Content-Type": ARROW})
    assert r.status_code == 400, r.text
    assert not lf.tables.exists(full)
    tables_dir = file_path(lf.catalogs.get(namespace.split(".")[0])["storage_location"]) / "tables"
    assert not tables_dir.exists() or list(tables_dir.iterdir()) == []  # its Delta files are gone too
    assert lf.tables.write(pa.table({"id": [1]}), full)["created"] is True  # the name is free again


def test_bad_requests_are_400_not_500(any_server, namespace, lf):
    full = f"{namespace}.bad"
    with any_server.client() as c:
        cases = [
            (DATA.format(full), b"not arrow at all", {"Content-Type": ARROW}, {}),
            (DATA.format(full), b"{}", {"Content-Type": "application/json"}, {}),
            (DATA.format(full), ipc(pa.record_batch({"a": [1]})), {"Content-Type": ARROW}, {"mode": "upsert"}),
            (DATA.format(full), ipc(pa.record_batch({"a": [1]})), {"Content-Type": ARROW},
             {"schema_mode": "overwrite"}),
            (DATA.format("not-a-name"), ipc(pa.record_batch({"a": [1]})), {"Content-Type": ARROW}, {}),
            (DATA.format(full), ipc(pa.record_batch({"a": [1], "A": [2]})), {"Content-Type": ARROW}, {}),
            (DATA.format(full), ipc(pa.record_batch({"a": pa.array([None, None], pa.null())})),
             {"Content-Type": ARROW}, {}),
        ]
        for path, body, headers, params in cases:
            r = c.post(path, content=body, headers=headers, params=params)
            assert r.status_code == 400, (params, r.text)
            assert set(r.json()) == {"error_code", "message", "details"}
        assert c.get(DATA.format(full)).status_code == 404
        assert c.get(DATA.format(f"{namespace}.missing")).json()["error_code"] == "NOT_FOUND"
    assert not lf.tables.exists(full)


def test_uploads_past_the_json_limit_stream_and_the_upload_limit_holds(any_server, namespace, lf):
    full = f"{namespace}.big"
    big = pa.table({"n": pa.array(range(1_600_000), pa.int64())})  # ~13 MB: past the 10 MB JSON body limit
    assert lf.tables.write(big, full)["num_rows"] == 1_600_000
    assert lf.tables.read(full, columns=["n"], limit=5).num_rows == 5
    back = lf.tables.read(full)  # a multi-MB response, streamed back in many chunks
    assert back.num_rows == 1_600_000 and pc.sum(back["n"]).as_py() == sum(range(1_600_000))
    # A declared length past the upload limit is refused before any byte is read.
    import http.client
    from urllib.parse import urlparse

    url = urlparse(any_server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.putrequest("POST", DATA.format(full))
    for k, v in {"Authorization": f"Bearer {any_server.admin_token}", "Content-Type": ARROW,
                 "Content-Length": str(3 * 1024**3)}.items():
        conn.putheader(k, v)
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 413 and json.loads(r.read())["error_code"] == "REQUEST_TOO_LARGE"
    conn.close()
    assert version(lf, full) == 1


def test_upload_limit(tmp_path):
    upload = TableUpload(tmp_path, limit=10)
    upload.write(b"12345")
    with pytest.raises(RequestTooLarge) as e:
        upload.write(b"123456")
    assert e.value.status == 413
    upload.discard()
    assert not upload.path.exists()


# ---- schema evolution ------------------------------------------------------------------------------
def test_missing_columns_nullable_filled_not_null_refused(server, unique):
    full = _schema(server, unique) + ".missing"
    with Client(server.url, token=server.admin_token) as lf:
        strict = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("note", pa.string())])
        lf.tables.write(pa.table({"id": [1], "note": ["x"]}, schema=strict), full)
        assert lf.tables.write(pa.table({"id": [2]}), full)["version"] == 2
        assert lf.tables.read(full).sort_by("id").to_pydict() == {"id": [1, 2], "note": ["x", None]}
        with pytest.raises(ApiError) as e:
            lf.tables.write(pa.table({"note": ["y"]}), full)
        refused(e, "'id'", "NOT NULL", "missing")
        assert version(lf, full) == 2


def test_safe_widening_is_cast_narrowing_refused(server, unique):
    full = _schema(server, unique) + ".types"
    with Client(server.url, token=server.admin_token) as lf:
        schema = pa.schema([("i", pa.int32()), ("f", pa.float32()), ("d", pa.date32()), ("big", pa.int64()),
                            ("amount", pa.decimal128(10, 2))])
        lf.tables.write(pa.table({"i": [1], "f": [1.5], "d": [dt.date(2026, 1, 1)], "big": [1],
                                  "amount": [pa.scalar(1, pa.decimal128(10, 2)).as_py()]}, schema=schema), full)
        # int8 -> int, float32 stays, int16 -> bigint, date64 -> date, decimal(8,2) -> decimal(10,2): all safe.
        wider = pa.table({"i": pa.array([2], pa.int8()), "f": pa.array([2.5], pa.float32()),
                          "d": pa.array([dt.date(2026, 1, 2)], pa.date64()), "big": pa.array([2], pa.int16()),
                          "amount": pa.array([pa.scalar(2, pa.decimal128(8, 2)).as_py()], pa.decimal128(8, 2))})
        assert lf.tables.write(wider, full)["version"] == 2
        got = lf.tables.read(full).sort_by("big")
        assert got.schema == schema and got["i"].to_pylist() == [1, 2] and got["d"][1].as_py() == dt.date(2026, 1, 2)
        for column, data, table_type, data_type in [
            ("i", pa.array([3], pa.int64()), "int", "bigint"),      # narrowing
            ("f", pa.array([3.0], pa.float64()), "float", "double"),
            ("big", pa.array(["3"]), "bigint", "string"),           # incompatible
            ("d", pa.array([dt.datetime(2026, 1, 3)], pa.timestamp("us")), "date", "timestamp_ntz"),
            ("amount", pa.array([1.0], pa.float64()), "decimal(10,2)", "double"),
        ]:
            with pytest.raises(ApiError) as e:
                lf.tables.write(pa.table({column: data}), full)
            refused(e, f"Column '{column}'", table_type, data_type)
        assert version(lf, full) == 2
        # A widening whose values do not fit the table's type is refused too (a float into a double is fine,
        # an int into a double is fine; a uint64 never is).
        with pytest.raises(ApiError) as e:
            lf.tables.write(pa.table({"big": pa.array([1], pa.uint64())}), full)
        refused(e, "'big'")


def test_timestamps_pandas_and_time_zones(server, unique):
    full = _schema(server, unique) + ".times"
    with Client(server.url, token=server.admin_token) as lf:
        frame = pd.DataFrame({"at": pd.to_datetime(["2026-01-01 10:00:00"]).tz_localize("UTC"),
                              "local": pd.to_datetime(["2026-01-01 10:00:00"])})
        lf.tables.write(frame, full)
        cols = {c["name"]: c["type_text"] for c in lf.tables.get(full)["columns"]}
        assert cols == {"at": "timestamp", "local": "timestamp_ntz"}
        lf.tables.write(frame, full)
        with pytest.raises(ApiError) as e:  # with and without a time zone are different types
            lf.tables.write(pd.DataFrame({"at": pd.to_datetime(["2026-01-01"])}), full)
        refused(e, "'at'", "timestamp", "timestamp_ntz")
        assert lf.tables.read(full).num_rows == 2


def test_new_columns_need_merge_and_the_catalog_follows(server, unique):
    full = _schema(server, unique) + ".merge"
    with Client(server.url, token=server.admin_token) as lf:
        lf.tables.write(pa.table({"id": [1]}), full)
        with pytest.raises(ApiError) as e:
            lf.tables.write(pa.table({"id": [2], "extra": ["x"]}), full)
        refused(e, "extra", "schema_mode=merge")
        assert version(lf, full) == 1
        result = lf.tables.write(pa.table({"extra": ["x"], "id": [2]}), full, schema_mode="merge")
        assert result["version"] == 2
        columns = lf.tables.get(full)["columns"]
        assert [(c["name"], c["type_text"], c["nullable"]) for c in columns] == [("id", "bigint", True),
                                                                                ("extra", "string", True)]
        assert lf.tables.read(full).sort_by("id").to_pydict() == {"id": [1, 2], "extra": [None, "x"]}
        # Merge with overwrite: rows replaced, schema grows.
        lf.tables.write(pa.table({"id": [3], "more": [1.0]}), full, mode="overwrite", schema_mode="merge")
        assert [c["name"] for c in lf.tables.get(full)["columns"]] == ["id", "extra", "more"]
        assert lf.tables.read(full).to_pydict() == {"id": [3], "extra": [None], "more": [1.0]}


def test_overwrite_keeps_the_schema_unless_schema_mode_overwrite(server, unique):
    full = _schema(server, unique) + ".replace"
    with Client(server.url, token=server.admin_token) as lf:
        lf.tables.write(pa.table({"id": [1], "name": ["a"]}), full)
        with pytest.raises(ApiError) as e:
            lf.tables.write(pa.table({"id": ["one"]}), full, mode="overwrite")
        refused(e, "'id'", "bigint", "string")
        with pytest.raises(ApiError) as e:
            lf.tables.write(pa.table({"label": ["x"]}), full, mode="append", schema_mode="overwrite")
        refused(e, "mode=overwrite")
        assert version(lf, full) == 1
        result = lf.tables.write(pa.table({"id": ["one"], "label": ["x"]}), full, mode="overwrite",
                                 schema_mode="overwrite")
        assert result["version"] == 2
        assert [(c["name"], c["type_text"]) for c in lf.tables.get(full)["columns"]] == [("id", "string"),
                                                                                         ("label", "string")]
        assert lf.tables.read(full).to_pydict() == {"id": ["one"], "label": ["x"]}
        assert lf.tables.read(full, version=1).to_pydict() == {"id": [1], "name": ["a"]}


def test_tables_created_through_the_catalog_api(server, unique):
    schema = _schema(server, unique)
    cat, sch = schema.split(".")
    columns = [{"name": "id", "type_text": "bigint", "nullable": False, "position": 0, "comment": "key"},
               {"name": "amount", "type_text": "decimal(12,2)", "position": 1},
               {"name": "day", "type_text": "date", "position": 2, "partition_index": 0}]
    with server.client() as c:
        r = c.post(f"{UC}/tables", json={"name": "sales", "catalog_name": cat, "schema_name": sch,
                                          "table_type": "MANAGED", "columns": columns})
        assert r.status_code == 200, r.text
    full = f"{schema}.sales"
    with Client(server.url, token=server.admin_token) as lf:
        frame = pd.DataFrame({"ID": [1, 2], "day": [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]})
        lf.tables.write(pa.Table.from_pandas(frame, preserve_index=False), full)  # names match case-insensitively
        lf.tables.write(pa.table({"id": [3], "day": [dt.date(2026, 1, 1)], "note": ["n"]}), full,
                        schema_mode="merge")
        got = lf.tables.read(full).sort_by("id")
        assert got["id"].to_pylist() == [1, 2, 3] and got["amount"].null_count == 3
        info = lf.tables.get(full)
        cols = {c["name"]: c for c in info["columns"]}
        # Comments, NOT NULL and partition marks survive the catalog update after the merge.
        assert cols["id"]["comment"] == "key" and cols["id"]["nullable"] is False
        assert cols["day"]["partition_index"] == 0 and cols["note"]["type_text"] == "string"
        location = file_path(info["storage_location"])
        assert DeltaTable(str(location)).metadata().partition_columns == ["day"]


def test_external_delta_tables_are_written_too(server, unique, tmp_path):
    from deltalake import write_deltalake

    schema = _schema(server, unique)
    location = tmp_path / "ext"
    write_deltalake(str(location), pa.table({"k": pa.array([1], pa.int32())}))
    with server.client() as c:
        cat, sch = schema.split(".")
        r = c.post(f"{UC}/tables", json={"name": "ext", "catalog_name": cat, "schema_name": sch,
                                          "table_type": "EXTERNAL", "storage_location": location.as_uri()})
        assert r.status_code == 200, r.text
    with Client(server.url, token=server.admin_token) as lf:
        assert lf.tables.write(pa.table({"k": pa.array([2], pa.int16())}), f"{schema}.ext")["version"] == 1
        assert sorted(DeltaTable(str(location)).to_pyarrow_table()["k"].to_pylist()) == [1, 2]
        shutil.rmtree(location)  # data removed behind the catalog's back: a clear 400, not a 500
        for call in (lambda: lf.tables.read(f"{schema}.ext"), lambda: lf.tables.history(f"{schema}.ext"),
                     lambda: lf.tables.write(pa.table({"k": [3]}), f"{schema}.ext")):
            with pytest.raises(ApiError) as e:
                call()
            assert e.value.status == 400 and e.value.error_code == "INVALID_STATE", e.value.message


def _schema(server: Server, unique) -> str:
    cat = unique("evo")
    with server.client() as c:
        c.post(f"{UC}/catalogs", json={"name": cat}).raise_for_status()
        c.post(f"{UC}/schemas", json={"name": "s", "catalog_name": cat}).raise_for_status()
    return f"{cat}.s"


# ---- CLI -------------------------------------------------------------------------------------------
def test_cli_write_read_history(server, unique, tmp_path):
    schema = _schema(server, unique)
    full = f"{schema}.cli"
    env = {**server.env, "LAKEFORGE_HOST": server.url, "LAKEFORGE_TOKEN": server.admin_token,
           "LAKEFORGE_PROFILES": str(tmp_path / "none.toml"), "COLUMNS": "200"}

    def cli(*args, ok=True):
        out = subprocess.run([sys.executable, "-m", "lakeforge.cli.main", "tables", *args], env=env,
                             capture_output=True, check=False, text=True, timeout=120)
        assert (out.returncode == 0) == ok, out.stderr + out.stdout
        return out

    (tmp_path / "a.csv").write_text("id,name\n1,ann\n2,bob\n")
    pq.write_table(pa.table({"id": [3], "name": ["cy"]}), tmp_path / "b.parquet")
    (tmp_path / "c.jsonl").write_text('{"id": 4, "name": "di", "age": 40}\n')
    assert "wrote 2 rows" in cli("write", str(tmp_path / "a.csv"), full).stdout
    assert "version 2" in cli("write", str(tmp_path / "b.parquet"), full).stdout
    denied = cli("write", str(tmp_path / "c.jsonl"), full, ok=False)
    assert "INVALID_PARAMETER_VALUE" in denied.stderr and "schema_mode=merge" in denied.stderr
    cli("write", str(tmp_path / "c.jsonl"), full, "--schema-mode", "merge")
    rows = json.loads(cli("read", full, "-o", "json").stdout)
    assert sorted(r["id"] for r in rows) == [1, 2, 3, 4] and {r["name"] for r in rows} == {"ann", "bob", "cy", "di"}
    old = json.loads(cli("read", full, "--version", "1", "-o", "json").stdout)
    assert sorted(r["id"] for r in old) == [1, 2] and "age" not in old[0]
    assert len(json.loads(cli("read", full, "--limit", "1", "-o", "json").stdout)) == 1
    shown = cli("read", full).stdout
    assert "ann" in shown and "age" in shown
    history = json.loads(cli("history", full, "-o", "json").stdout)
    assert [h["version"] for h in history] == [3, 2, 1, 0] and history[0]["user"] == "admin"
    assert "CREATE TABLE" in cli("history", full).stdout
    cli("write", str(tmp_path / "a.csv"), full, "--mode", "overwrite")
    assert len(json.loads(cli("read", full, "-o", "json").stdout)) == 2
    bad = cli("write", str(tmp_path / "a.txt"), full, ok=False)
    assert bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
