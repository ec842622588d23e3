"""Lineage over HTTP on SQLite and PostgreSQL: recording, multi-hop graphs, visibility for
non-admins, bad input, and the Delta export into system.access.table_lineage."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from deltalake import DeltaTable
from sqlalchemy import text

from lakeforge.catalog.storage import to_path
from lakeforge.config import Settings
from lakeforge.server.context import AppContext
from lakeforge.store import Database
from tests.harness import Server

UC = "/api/2.1/unity-catalog"
LINEAGE = "/api/2.0/lineage"


def _new_user(server: Server) -> tuple[str, str]:
    with server.client() as c:
        if c.get("/api/2.0/preview/scim/v2/Users", params={"count": 1}).status_code == 404:
            pytest.skip("needs the SCIM endpoint /api/2.0/preview/scim/v2/Users (server.new_user), not built yet")
    return server.new_user()


def _assets(server: Server, tables: list[str]) -> str:
    """A fresh catalog with schema `s` holding managed tables; returns the catalog name."""
    catalog = f"lin_{uuid.uuid4().hex[:8]}"
    with server.client() as c:
        c.post(f"{UC}/catalogs", json={"name": catalog}).raise_for_status()
        c.post(f"{UC}/schemas", json={"name": "s", "catalog_name": catalog}).raise_for_status()
        for name in tables:
            r = c.post(f"{UC}/tables", json={
                "name": name, "catalog_name": catalog, "schema_name": "s", "table_type": "MANAGED",
                "data_source_format": "DELTA",
                "columns": [{"name": "id", "type_text": "bigint", "type_name": "LONG", "position": 0}]})
            if r.status_code == 404 and r.json().get("error_code") == "ENDPOINT_NOT_FOUND":
                pytest.skip("needs the Unity Catalog tables API (POST /api/2.1/unity-catalog/tables)")
            r.raise_for_status()
    return catalog


def _edge(st, sn, tt, tn) -> dict:
    return {"source": {"type": st, "name": sn}, "target": {"type": tt, "name": tn}}


def _record(client, edges: list[dict], entity_type="JOB_RUN", entity_id=None, status=200) -> dict:
    body = {"edges": edges, "entity_type": entity_type}
    if entity_id is not None:
        body["entity_id"] = entity_id
    r = client.post(f"{LINEAGE}/edges", json=body)
    assert r.status_code == status, r.text
    return r.json()


def _graph(client, type_, name, status=200, **params) -> dict:
    r = client.get(f"{LINEAGE}/graph", params={"type": type_, "name": name, **params})
    assert r.status_code == status, r.text
    return r.json()


def _nodes(graph: dict) -> dict[tuple[str, str], int]:
    return {(n["type"], n["name"]): n["depth"] for n in graph["nodes"]}


def _pairs(graph: dict) -> set[tuple[str, str]]:
    return {(e["source"]["name"], e["target"]["name"]) for e in graph["edges"]}


def test_multi_hop_graphs(any_server):
    cat = _assets(any_server, ["raw", "clean", "features"])
    raw, clean, features = (f"{cat}.s.{t}" for t in ("raw", "clean", "features"))
    endpoint, source = f"ep-{cat}", f"/landing/{cat}/events.csv"
    with any_server.client() as c:
        _record(c, [_edge("PATH", source, "TABLE", raw)], "JOB_RUN", "101")
        rec = _record(c, [_edge("table", raw, "table", clean)], "QUERY", "q-1")
        assert rec["edges"][0]["source"] == {"type": "TABLE", "name": raw}  # types are upper-cased
        assert rec["edges"][0]["created_by"] == "admin" and rec["edges"][0]["event_time"] > 1_600_000_000_000
        _record(c, [_edge("TABLE", clean, "TABLE", features)], "JOB_RUN", 7)
        _record(c, [_edge("TABLE", features, "SERVING_ENDPOINT", endpoint)], "ENDPOINT", endpoint)
        _record(c, [_edge("TABLE", clean, "TABLE", features)], "JOB_RUN", 7)  # the same run again: one edge

        down = _graph(c, "TABLE", raw, direction="downstream", depth=2)
        assert _nodes(down) == {("TABLE", raw): 0, ("TABLE", clean): 1, ("TABLE", features): 2}
        assert _pairs(down) == {(raw, clean), (clean, features)}
        assert len(down["edges"]) == 2 and down["hidden_nodes"] == 0 and "truncated" not in down
        by_pair = {(e["source"]["name"], e["target"]["name"]): e for e in down["edges"]}
        assert by_pair[(clean, features)]["entity_type"] == "JOB_RUN"
        assert by_pair[(clean, features)]["entity_id"] == "7"

        deep = _graph(c, "table", raw, direction="downstream")  # default depth 3
        assert _nodes(deep)[("SERVING_ENDPOINT", endpoint)] == 3
        assert ("PATH", source) not in _nodes(deep)

        up = _graph(c, "TABLE", features, direction="upstream", depth=10)
        assert set(_nodes(up)) == {("TABLE", features), ("TABLE", clean), ("TABLE", raw), ("PATH", source)}
        assert _nodes(up)[("PATH", source)] == 3

        both = _graph(c, "TABLE", clean, depth=1)
        assert both["direction"] == "both" and both["depth"] == 1
        assert set(_nodes(both)) == {("TABLE", clean), ("TABLE", raw), ("TABLE", features)}

        # cycles end: a -> b -> a
        a, b = f"job-a-{cat}", f"job-b-{cat}"
        _record(c, [_edge("JOB", a, "JOB", b), _edge("JOB", b, "JOB", a)], "JOB_RUN")
        cyc = _graph(c, "JOB", a, depth=10)
        assert _nodes(cyc) == {("JOB", a): 0, ("JOB", b): 1} and len(cyc["edges"]) == 2

        # a node with no edges is just the root
        lonely = _graph(c, "SERVING_ENDPOINT", f"nothing-{cat}")
        assert lonely["nodes"] == [{"type": "SERVING_ENDPOINT", "name": f"nothing-{cat}", "depth": 0}]
        assert lonely["edges"] == []


def _grant(client, kind: str, full_name: str, principal: str, *privileges: str) -> None:
    client.patch(f"{UC}/permissions/{kind}/{full_name}",
                 json={"changes": [{"principal": principal, "add": list(privileges)}]}).raise_for_status()


def test_visibility_for_a_non_admin(any_server):
    cat = _assets(any_server, ["raw", "clean", "secret_features"])
    raw, clean, hidden = (f"{cat}.s.{t}" for t in ("raw", "clean", "secret_features"))
    admins_endpoint, notebook = f"ep-{cat}", f"/Users/someone/{cat}-explore"
    user, token = _new_user(any_server)
    with any_server.client() as admin, any_server.client(token) as c:
        _record(admin, [_edge("TABLE", raw, "TABLE", clean), _edge("TABLE", clean, "TABLE", hidden),
                        _edge("TABLE", hidden, "SERVING_ENDPOINT", admins_endpoint),
                        _edge("SERVING_ENDPOINT", admins_endpoint, "TABLE", clean)], "JOB_RUN", "1")
        # nothing granted yet: the root itself is not visible
        assert _graph(c, "TABLE", raw, status=403)["error_code"] == "PERMISSION_DENIED"

        _grant(admin, "catalog", cat, user, "USE_CATALOG")
        _grant(admin, "schema", f"{cat}.s", user, "USE_SCHEMA")
        _grant(admin, "table", raw, user, "SELECT")
        _grant(admin, "table", clean, user, "SELECT", "MODIFY")
        # the user records its own edge into a non-catalog node: no check on such targets
        _record(c, [_edge("TABLE", clean, "NOTEBOOK", notebook)], "NOTEBOOK", notebook)

        r = c.get(f"{LINEAGE}/graph", params={"type": "TABLE", "name": raw, "direction": "downstream",
                                              "depth": 10})
        assert r.status_code == 200, r.text
        g = r.json()
        assert set(_nodes(g)) == {("TABLE", raw), ("TABLE", clean), ("NOTEBOOK", notebook)}
        assert _pairs(g) == {(raw, clean), (clean, notebook)}
        assert g["hidden_nodes"] == 2  # the table without grants and the admin's endpoint
        assert hidden not in r.text and admins_endpoint not in r.text  # counted, never named

        assert _graph(c, "TABLE", hidden, status=403)["error_code"] == "PERMISSION_DENIED"
        assert _graph(c, "SERVING_ENDPOINT", admins_endpoint, status=403)["error_code"] == "PERMISSION_DENIED"
        mine = _graph(c, "NOTEBOOK", notebook, direction="upstream", depth=1)
        assert _pairs(mine) == {(clean, notebook)}
        # the admin sees everything, the user's node included
        full = _graph(admin, "TABLE", raw, direction="downstream", depth=10)
        assert full["hidden_nodes"] == 0 and ("NOTEBOOK", notebook) in _nodes(full)

        # recording needs MODIFY (or ownership) on a catalog target and BROWSE on a catalog source
        assert _record(c, [_edge("TABLE", clean, "TABLE", raw)], status=403)["error_code"] == "PERMISSION_DENIED"
        assert _record(c, [_edge("TABLE", hidden, "NOTEBOOK", notebook)], status=403)
        _record(c, [_edge("PATH", "/tmp/upload.csv", "TABLE", clean)], "JOB_RUN", "2")
        _grant(admin, "table", raw, user, "MODIFY")
        _record(c, [_edge("TABLE", clean, "TABLE", raw)], "QUERY", "backfill")


def test_bad_input(server):
    cat = _assets(server, ["t"])
    t = f"{cat}.s.t"
    good = _edge("PATH", "/x", "TABLE", t)
    with server.client() as c:
        def bad(response):
            assert response.status_code == 400, response.text
            assert response.json()["error_code"] in ("INVALID_PARAMETER_VALUE", "MALFORMED_REQUEST")
            return response.json()["message"]

        post = lambda body: c.post(f"{LINEAGE}/edges", json=body)  # noqa: E731
        bad(post({"edges": [good]}))  # no entity_type
        bad(post({"edges": [good], "entity_type": "  "}))
        bad(post({"edges": [good], "entity_type": "X" * 41}))
        bad(post({"edges": [], "entity_type": "JOB_RUN"}))
        bad(post({"entity_type": "JOB_RUN"}))
        bad(post({"edges": [_edge("TA BLE", "/x", "TABLE", t)], "entity_type": "JOB_RUN"}))
        bad(post({"edges": [_edge("PATH", "", "TABLE", t)], "entity_type": "JOB_RUN"}))
        assert "catalog.schema.name" in bad(post({"edges": [_edge("PATH", "/x", "TABLE", "only.two")],
                                                  "entity_type": "JOB_RUN"}))
        assert "itself" in bad(post({"edges": [_edge("TABLE", t, "table", t)], "entity_type": "JOB_RUN"}))
        bad(post({"edges": [{"source": {"type": "PATH"}, "target": {"type": "TABLE", "name": t}}],
                  "entity_type": "JOB_RUN"}))
        bad(post({"edges": [good] * 1001, "entity_type": "JOB_RUN"}))
        bad(post({"edges": [good], "entity_type": "JOB_RUN", "entity_id": {"nested": 1}}))
        bad(c.post(f"{LINEAGE}/edges", content=b"[1, 2", headers={"content-type": "application/json"}))
        r = post({"edges": [_edge("PATH", "/x", "TABLE", f"{cat}.s.missing")], "entity_type": "JOB_RUN"})
        assert r.status_code == 404, r.text

        graph = lambda **p: c.get(f"{LINEAGE}/graph", params=p)  # noqa: E731
        assert graph(name=t).json()["root"]["type"] == "TABLE"  # no type: inferred from the catalog
        assert graph(name=f"{cat}.s.nothing_here").status_code == 404
        bad(graph(type="TABLE"))  # no name
        for depth in ("0", "11", "-1", "abc"):
            bad(graph(type="TABLE", name=t, depth=depth))
        bad(graph(type="TABLE", name=t, direction="sideways"))
        bad(graph(type="TABLE", name="no-dots"))
        bad(graph(type="bad type!", name=t))
        assert graph(type="TABLE", name=t, depth="10").status_code == 200


def _exported(path: Path, **match) -> list[dict]:
    rows = DeltaTable(str(path)).to_pyarrow_table().to_pylist()
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def _wait_exported(path: Path, count: int, **match) -> list[dict]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the flusher runs every 0.5 s in tests
        rows = _exported(path, **match)
        if len(rows) >= count:
            return rows
        time.sleep(0.25)
    raise AssertionError(f"expected {count} exported lineage rows matching {match}")


def test_edges_land_in_the_delta_table(any_server):
    cat = _assets(any_server, ["a", "b"])
    a, b = f"{cat}.s.a", f"{cat}.s.b"
    run = f"run-{cat}"
    with any_server.client() as c:
        t = c.get(f"{UC}/tables/system.access.table_lineage")
        assert t.status_code == 200 and t.json()["table_type"] == "MANAGED"  # registered in the catalog
        table = to_path(t.json()["storage_location"])
        _record(c, [_edge("TABLE", a, "TABLE", b), _edge("TABLE", b, "MODEL_SERVING", f"ep-{cat}")],
                "JOB_RUN", run)
    rows = _wait_exported(table, 2, entity_id=run)
    assert len(rows) == 2 and len({r["edge_id"] for r in rows}) == 2
    first = next(r for r in rows if r["target_name"] == b)
    assert first["source_type"] == "TABLE" and first["source_name"] == a and first["target_type"] == "TABLE"
    assert first["entity_type"] == "JOB_RUN" and first["created_by"] == "admin"
    assert first["event_time"].tzinfo is not None and abs(time.time() - first["event_time"].timestamp()) < 600


def test_start_up_reexports_edges_missing_from_the_table(tmp_path):
    """An edge committed to the database whose log append never happened (a crash in between)
    reaches the Delta table at the next start, and nothing is exported twice."""
    settings = Settings(home=tmp_path / "h", audit_flush_seconds=0.2)
    ctx = AppContext(settings)
    ctx.start()
    try:
        with ctx.db.read() as s:
            admin_id = ctx.identity.find_principal(s, "admin").id
        admin = ctx.identity.principal_by_id(admin_id)
        ctx.lineage.record(admin, [("PATH", "/a", "PATH", "/b")], "JOB_RUN", "before")
        table = ctx.lineage.export.table_path
    finally:
        ctx.stop()
    assert len(_exported(table, entity_id="before")) == 1

    db = Database(settings.resolved_database_url)
    with db.engine.begin() as conn:  # the database row alone: the crash window
        conn.execute(text("INSERT INTO lf_lineage_edges (source_type, source_name, target_type, target_name, "
                          "entity_type, entity_id, created_at, created_by) VALUES ('PATH', '/b', 'PATH', '/c', "
                          "'JOB_RUN', 'lost', CURRENT_TIMESTAMP, 'admin')"))
    db.dispose()
    again = AppContext(settings)
    again.start()
    try:
        assert len(_exported(table, entity_id="lost")) == 1
        assert len(_exported(table, entity_id="before")) == 1
        graph = again.lineage.graph(admin, "PATH", "/a", "downstream", 5)
        assert [n["name"] for n in graph["nodes"]] == ["/a", "/b", "/c"]
        # edges recorded after a restart are exported too (the log's numbering continues)
        again.lineage.record(admin, [("PATH", "/c", "PATH", "/d")], "JOB_RUN", "after")
        _wait_exported(table, 1, entity_id="after")
    finally:
        again.stop()
    again = AppContext(settings)
    again.start()  # a third start finds nothing missing
    again.stop()
    assert sorted(r["entity_id"] for r in _exported(table)) == ["after", "before", "lost"]
