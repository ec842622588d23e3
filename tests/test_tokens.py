"""Personal access tokens and token management through databricks-sdk, on SQLite and PostgreSQL:
create, list, revoke, expiry, on-behalf-of tokens, and who may touch whose tokens."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from databricks.sdk.errors import BadRequest, NotFound, PermissionDenied, ResourceDoesNotExist, Unauthenticated


def test_own_token_lifecycle(any_server):
    _, token = any_server.new_user()
    wu = any_server.workspace(token)
    before = int(time.time() * 1000)
    created = wu.tokens.create(comment="laptop", lifetime_seconds=600)
    info = created.token_info
    assert created.token_value and info.token_id and info.comment == "laptop"
    assert before - 5000 <= info.creation_time <= before + 5000
    assert abs(info.expiry_time - info.creation_time - 600_000) < 2000

    listed = {t.token_id: t for t in wu.tokens.list()}
    assert info.token_id in listed and listed[info.token_id].comment == "laptop"
    with any_server.client(token) as c:
        assert created.token_value not in c.get("/api/2.0/token/list").text  # shown once, at creation

    w2 = any_server.workspace(created.token_value)
    assert w2.current_user.me().user_name == wu.current_user.me().user_name
    wu.tokens.delete(info.token_id)
    with pytest.raises(Unauthenticated):
        w2.current_user.me()  # revocation holds at once, despite the auth cache
    assert info.token_id not in {t.token_id for t in wu.tokens.list()}
    with pytest.raises(ResourceDoesNotExist):
        wu.tokens.delete(info.token_id)
    with pytest.raises(NotFound):
        wu.tokens.delete("no-such-token")


def test_token_without_lifetime_never_expires(any_server):
    w = any_server.workspace()
    created = w.tokens.create(comment="forever")
    assert created.token_info.expiry_time == -1
    assert [t.expiry_time for t in w.tokens.list() if t.token_id == created.token_info.token_id] == [-1]
    w.tokens.delete(created.token_info.token_id)


def test_expired_token_is_rejected(any_server):
    w = any_server.workspace()
    created = w.tokens.create(comment="short", lifetime_seconds=1)
    short = any_server.workspace(created.token_value)
    assert short.current_user.me().user_name == "admin"
    time.sleep(1.5)
    with pytest.raises(Unauthenticated):
        short.current_user.me()
    r = httpx.get(any_server.url + "/api/2.0/preview/scim/v2/Me",
                  headers={"Authorization": f"Bearer {created.token_value}"})
    assert r.status_code == 401 and r.json()["error_code"] == "UNAUTHENTICATED"
    assert created.token_info.token_id not in {t.token_id for t in w.tokens.list()}


def test_token_management(any_server):
    w = any_server.workspace()
    user_name, _ = any_server.new_user()
    [user] = list(w.users.list(filter=f'userName eq "{user_name}"'))
    sp = w.service_principals.create(display_name=f"tm-{uuid.uuid4().hex[:6]}")

    # Lakeforge extension: an admin may mint a token for a user (by id) as well as for a service principal.
    for_user = w.token_management.create_obo_token(application_id=user.id, comment="for user", lifetime_seconds=600)
    for_sp = w.token_management.create_obo_token(application_id=sp.application_id, comment="for sp")
    assert str(for_user.token_info.owner_id) == user.id and str(for_sp.token_info.owner_id) == sp.id
    assert for_sp.token_info.expiry_time == -1
    assert any_server.workspace(for_user.token_value).current_user.me().user_name == user_name

    admin_id = w.current_user.me().id
    infos = {t.token_id: t for t in w.token_management.list(created_by_username="admin")}
    assert {for_user.token_info.token_id, for_sp.token_info.token_id} <= set(infos)
    assert all(t.created_by_username == "admin" and str(t.created_by_id) == admin_id for t in infos.values())
    assert {t.token_id for t in w.token_management.list(created_by_id=int(admin_id))} == set(infos)
    assert list(w.token_management.list(created_by_username="nobody@example.com")) == []
    assert for_user.token_info.token_id in {t.token_id for t in w.token_management.list()}

    got = w.token_management.get(for_sp.token_info.token_id).token_info
    assert str(got.owner_id) == sp.id and got.comment == "for sp" and got.created_by_username == "admin"

    w.token_management.delete(for_user.token_info.token_id)
    with pytest.raises(Unauthenticated):
        any_server.workspace(for_user.token_value).current_user.me()
    with pytest.raises(NotFound):
        w.token_management.get(for_user.token_info.token_id)
    with pytest.raises(NotFound):
        w.token_management.delete(for_user.token_info.token_id)
    w.service_principals.delete(sp.id)
    with pytest.raises(NotFound):
        w.token_management.get(for_sp.token_info.token_id)  # deleting a principal deletes its tokens


def test_only_admins_manage_others_tokens(any_server):
    w = any_server.workspace()
    _, token_a = any_server.new_user()
    _, token_b = any_server.new_user()
    wa, wb = any_server.workspace(token_a), any_server.workspace(token_b)
    b_token = wb.tokens.create(comment="b's").token_info.token_id
    with pytest.raises(NotFound):
        wa.tokens.delete(b_token)  # someone else's token looks like no token at all
    assert b_token in {t.token_id for t in wb.tokens.list()}
    assert b_token not in {t.token_id for t in wa.tokens.list()}

    me_a = wa.current_user.me()
    with pytest.raises(PermissionDenied):
        wa.token_management.create_obo_token(application_id=me_a.id, comment="self-serve")
    with pytest.raises(PermissionDenied):
        list(wa.token_management.list())
    with pytest.raises(PermissionDenied):
        wa.token_management.get(b_token)
    with pytest.raises(PermissionDenied):
        wa.token_management.delete(b_token)
    w.token_management.delete(b_token)  # an admin may revoke anyone's


def test_bad_token_requests(any_server):
    w = any_server.workspace()
    for lifetime in (-5, 10**12):
        with pytest.raises(BadRequest, match="lifetime_seconds"):
            w.tokens.create(lifetime_seconds=lifetime)
    with pytest.raises(NotFound):
        w.token_management.create_obo_token(application_id="no-such-principal")
    [users] = list(w.groups.list(filter='displayName eq "users"'))
    with pytest.raises(NotFound):
        w.token_management.create_obo_token(application_id=users.id)  # groups hold no tokens
    with any_server.client() as c:
        r = c.post("/api/2.0/token/delete", json={})
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        r = c.post("/api/2.0/token/create", json={"lifetime_seconds": "soon"})
        assert r.status_code == 400 and "lifetime_seconds" in r.json()["message"]
        r = c.post("/api/2.0/token-management/on-behalf-of/tokens", json={"comment": "no id"})
        assert r.status_code == 400 and "application_id" in r.json()["message"]


def test_deactivated_principal_gets_no_new_tokens(any_server):
    w = any_server.workspace()
    sp = w.service_principals.create(display_name="inactive", active=False)
    with pytest.raises(BadRequest, match="deactivated"):
        w.token_management.create_obo_token(application_id=sp.application_id)
    w.service_principals.delete(sp.id)
