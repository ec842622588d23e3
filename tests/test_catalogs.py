"""Catalogs and schemas through databricks-sdk and raw HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from databricks.sdk.errors import NotFound, ResourceAlreadyExists


def test_first_start_has_main_default_and_system_access(any_server):
    w = any_server.workspace()
    names = {c.name for c in w.catalogs.list()}
    assert {"main", "system"} <= names
    assert w.schemas.get("main.default").name == "default"
    assert w.schemas.get("system.access").catalog_name == "system"


def test_catalog_and_schema_lifecycle(any_server, unique):
    w = any_server.workspace()
    name = unique("cat")
    c = w.catalogs.create(name=name, comment="hello", properties={"team": "ml"})
    assert c.name == name and c.comment == "hello" and c.properties == {"team": "ml"}
    assert isinstance(c.created_at, int) and c.created_at > 1_600_000_000_000
    with pytest.raises(ResourceAlreadyExists):
        w.catalogs.create(name=name)
    s = w.schemas.create(name="s1", catalog_name=name, comment="first")
    assert s.full_name == f"{name}.s1"
    assert [x.name for x in w.schemas.list(catalog_name=name)] == ["s1"]
    w.schemas.update(full_name=f"{name}.s1", comment="changed")
    assert w.schemas.get(f"{name}.s1").comment == "changed"
    w.catalogs.update(name=name, comment="bye")
    assert w.catalogs.get(name).comment == "bye"
    w.catalogs.delete(name, force=True)
    with pytest.raises(NotFound):
        w.catalogs.get(name)
    with pytest.raises(NotFound):
        w.schemas.get(f"{name}.s1")


def test_paging_clamps_and_pages(any_server, unique):
    prefix = unique("pg")
    with any_server.client() as c:
        c.post("/api/2.1/unity-catalog/catalogs", json={"name": prefix}).raise_for_status()
        for i in range(7):
            c.post("/api/2.1/unity-catalog/schemas", json={"name": f"s{i}", "catalog_name": prefix}).raise_for_status()
        seen, token = [], None
        while True:
            params = {"catalog_name": prefix, "max_results": 3}
            if token:
                params["page_token"] = token
            body = c.get("/api/2.1/unity-catalog/schemas", params=params).json()
            seen += [s["name"] for s in body["schemas"]]
            token = body.get("next_page_token")
            if not token:
                break
        assert seen == [f"s{i}" for i in range(7)]
        big = c.get("/api/2.1/unity-catalog/schemas", params={"catalog_name": prefix, "max_results": 100000})
        assert big.status_code == 200 and len(big.json()["schemas"]) == 7
        neg = c.get("/api/2.1/unity-catalog/schemas", params={"catalog_name": prefix, "max_results": -1})
        assert neg.status_code == 400 and neg.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        c.delete(f"/api/2.1/unity-catalog/catalogs/{prefix}", params={"force": "true"}).raise_for_status()
