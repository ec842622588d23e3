"""Every Unity Catalog response Lakeforge sends validates against the spec (unitycatalog/all.yaml)."""

from __future__ import annotations

import httpx

from tests.spec import Recorder


def test_catalog_and_schema_responses_match_spec(any_server, unique):
    rec = Recorder()
    cat = unique("spec")
    with httpx.Client(base_url=any_server.url + "/api/2.1/unity-catalog",
                      headers={"Authorization": f"Bearer {any_server.admin_token}"},
                      event_hooks={"response": [rec]}) as c:
        c.post("/catalogs", json={"name": cat, "comment": "c", "properties": {"k": "v"}})
        c.get("/catalogs")
        c.get(f"/catalogs/{cat}")
        c.patch(f"/catalogs/{cat}", json={"comment": "d"})
        c.post("/schemas", json={"name": "s", "catalog_name": cat})
        c.get("/schemas", params={"catalog_name": cat, "max_results": 0})
        c.get(f"/schemas/{cat}.s")
        c.patch(f"/schemas/{cat}.s", json={"comment": "x"})
        c.patch(f"/permissions/catalog/{cat}", json={"changes": [{"principal": "users", "add": ["USE CATALOG"]}]})
        c.get(f"/permissions/catalog/{cat}")
        c.get(f"/permissions/schema/{cat}.s")
        c.get("/metastore_summary")
        c.delete(f"/schemas/{cat}.s")
        c.delete(f"/catalogs/{cat}")
    assert not rec.failures, "\n".join(rec.failures)
    assert len(rec.validated) == 14


def test_validator_rejects_a_nonconforming_response():
    """Guards the conformance tests: a string timestamp must not pass."""
    import pytest

    from tests.spec import validate

    request = httpx.Request("GET", "http://x/api/2.1/unity-catalog/catalogs/c")
    bad = httpx.Response(200, json={"name": "c", "created_at": "yesterday"}, request=request)
    with pytest.raises(Exception):
        validate(bad)
    good = httpx.Response(200, json={"name": "c", "created_at": 1}, request=request)
    validate(good)
