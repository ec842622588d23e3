"""SCIM identity API through databricks-sdk and raw HTTP, on SQLite and PostgreSQL: Me, users,
groups (nested, with cycles refused), service principals, deactivation and admin-only changes."""

from __future__ import annotations

import uuid

import httpx
import pytest
from databricks.sdk.errors import (BadRequest, NotFound, PermissionDenied, ResourceAlreadyExists, ResourceConflict,
                                   Unauthenticated)
from databricks.sdk.service.iam import ComplexValue, Name, Patch, PatchOp, PatchSchema

SCIM = "/api/2.0/preview/scim/v2"
PATCH_SCHEMA = [PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP]


def _email(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


def _group_id(w, name: str) -> str:
    [group] = list(w.groups.list(filter=f'displayName eq "{name}"'))
    return group.id


def _user_id(w, user_name: str) -> str:
    [user] = list(w.users.list(filter=f'userName eq "{user_name}"'))
    return user.id


def test_me_and_workspace_id(any_server):
    w = any_server.workspace()
    me = w.current_user.me()
    assert me.user_name == "admin" and me.active is True and me.id
    assert {"admins", "users"} <= {g.display for g in me.groups}
    assert w.get_workspace_id() == 1
    with any_server.client() as c:
        r = c.get(f"{SCIM}/Me", params={"attributes": "userName"})
        assert r.status_code == 200 and r.headers["X-Databricks-Org-Id"] == "1"
        assert set(r.json()) == {"id", "schemas", "userName"}


def test_user_lifecycle(any_server):
    w = any_server.workspace()
    user_name = _email("life")
    u = w.users.create(user_name=user_name, display_name="Life Cycle", name=Name(given_name="Life", family_name="Cycle"),
                       emails=[ComplexValue(value=user_name, primary=True, type="work")],
                       entitlements=[ComplexValue(value="workspace-access")])
    assert u.id and u.user_name == user_name and u.display_name == "Life Cycle" and u.active is True
    assert u.name.given_name == "Life" and [e.value for e in u.entitlements] == ["workspace-access"]
    assert "users" in {g.display for g in u.groups}  # every new user joins `users`

    got = w.users.get(u.id)
    assert got.user_name == user_name and got.emails[0].value == user_name
    assert [x.id for x in w.users.list(filter=f'userName eq "{user_name}"')] == [u.id]
    assert [x.id for x in w.users.list(filter=f'id eq "{u.id}"')] == [u.id]
    assert u.id in {x.id for x in w.users.list(filter='displayName co "life cyc"')}  # co is case-insensitive
    assert [x.id for x in w.users.list(filter=f'displayName eq "Life Cycle" and userName eq "{user_name}"')] == [u.id]

    w.users.patch(u.id, schemas=PATCH_SCHEMA, operations=[
        Patch(op=PatchOp.REPLACE, path="displayName", value="Renamed"),
        Patch(op=PatchOp.REPLACE, path="name.givenName", value="Re"),
        Patch(op=PatchOp.ADD, path="entitlements", value=[{"value": "databricks-sql-access"}]),
    ])
    got = w.users.get(u.id)
    assert got.display_name == "Renamed" and got.name.given_name == "Re" and got.name.family_name == "Cycle"
    assert {e.value for e in got.entitlements} == {"workspace-access", "databricks-sql-access"}

    w.users.patch(u.id, operations=[Patch(op=PatchOp.REMOVE, path='entitlements[value eq "workspace-access"]')])
    assert [e.value for e in w.users.get(u.id).entitlements] == ["databricks-sql-access"]

    new_name = _email("renamed")
    w.users.update(u.id, user_name=new_name, display_name="Put Name")
    got = w.users.get(u.id)
    assert got.user_name == new_name and got.display_name == "Put Name"
    assert not got.entitlements  # PUT replaces: attributes it leaves out are cleared
    assert "users" in {g.display for g in got.groups}  # ...but not memberships

    w.users.delete(u.id)
    with pytest.raises(NotFound):
        w.users.get(u.id)
    assert list(w.users.list(filter=f'userName eq "{new_name}"')) == []


def test_list_paging_sorting_and_attributes(any_server):
    prefix = f"page-{uuid.uuid4().hex[:6]}"
    w = any_server.workspace()
    ids = [w.users.create(user_name=f"{prefix}-{i}@example.com").id for i in range(5)]
    with any_server.client() as c:
        flt = f'userName sw "{prefix}"'
        body = c.get(f"{SCIM}/Users", params={"filter": flt, "sortBy": "userName", "sortOrder": "descending",
                                              "startIndex": 2, "count": 2}).json()
        assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
        assert (body["totalResults"], body["startIndex"], body["itemsPerPage"]) == (5, 2, 2)
        assert [r["userName"] for r in body["Resources"]] == [f"{prefix}-3@example.com", f"{prefix}-2@example.com"]
        past = c.get(f"{SCIM}/Users", params={"filter": flt, "startIndex": 10}).json()
        assert past["totalResults"] == 5 and past["Resources"] == []

        slim = c.get(f"{SCIM}/Users", params={"filter": flt, "attributes": "userName,emails.value"}).json()
        for r in slim["Resources"]:
            assert set(r) == {"id", "schemas", "userName", "emails"} and set(r["emails"][0]) == {"value"}
        lean = c.get(f"{SCIM}/Users", params={"filter": flt, "excludedAttributes": "emails,groups,meta"}).json()
        assert all(not {"emails", "groups", "meta"} & set(r) and "userName" in r for r in lean["Resources"])

        either = c.get(f"{SCIM}/Users", params={
            "filter": f'userName eq "{prefix}-0@example.com" or (userName eq "{prefix}-4@example.com")'}).json()
        assert either["totalResults"] == 2
        negated = c.get(f"{SCIM}/Users", params={"filter": f'{flt} and not (userName ew "-0@example.com")'}).json()
        assert negated["totalResults"] == 4
    # the SDK pages through with startIndex/count until an empty page
    assert {u.id for u in w.users.list(filter=f'userName sw "{prefix}"', count=2)} == set(ids)
    for uid in ids:
        w.users.delete(uid)


def test_bad_input(any_server):
    w = any_server.workspace()
    with pytest.raises(BadRequest, match="userName"):
        w.users.create(display_name="nobody")
    name = _email("dup")
    u = w.users.create(user_name=name)
    with pytest.raises(ResourceAlreadyExists):
        w.users.create(user_name=name)
    with pytest.raises(NotFound):
        w.users.get("does-not-exist")
    with pytest.raises(NotFound):
        w.groups.get(u.id)  # a user's id is not a group's
    with pytest.raises(BadRequest, match="filter"):
        list(w.users.list(filter="userName eq"))
    with pytest.raises(BadRequest):
        list(w.users.list(filter='userName xx "a"'))
    with any_server.client() as c:
        for params in ({"filter": 'userName eq "unterminated'}, {"sortOrder": "sideways"}, {"count": "many"},
                       {"filter": "(" * 200 + "userName pr" + ")" * 200}):
            r = c.get(f"{SCIM}/Users", params=params)
            assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", params
        for patch in ({}, {"Operations": [{"op": "explode", "path": "active"}]},
                      {"Operations": [{"op": "replace", "path": "id", "value": "x"}]},
                      {"Operations": [{"op": "replace", "path": "nonsense", "value": "x"}]},
                      {"Operations": [{"op": "replace", "path": "active", "value": "perhaps"}]},
                      {"Operations": [{"op": "remove"}]}):
            r = c.patch(f"{SCIM}/Users/{u.id}", json=patch)
            assert r.status_code == 400 and set(r.json()) == {"error_code", "message", "details"}, (patch, r.text)
        r = c.post(f"{SCIM}/Users", content=b"{not json")
        assert r.status_code == 400
        r = c.post(f"{SCIM}/Users", json={"userName": 42})
        assert r.status_code == 400
    w.users.delete(u.id)


def test_provisioning_client_patch_forms(any_server):
    """What IdP provisioning clients send: capitalised ops, booleans as strings, value-filter paths."""
    with any_server.client() as c:
        name = _email("idp")
        u = c.post(f"{SCIM}/Users", json={"userName": name, "emails": [
            {"value": name, "type": "work", "primary": True}, {"value": "old@example.com", "type": "home"}]})
        assert u.status_code == 201
        uid = u.json()["id"]
        r = c.patch(f"{SCIM}/Users/{uid}", json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"},
                           {"op": "replace", "path": 'emails[type eq "home"].value', "value": "new@example.com"},
                           {"op": "Add", "value": {"name": {"familyName": "Provisioned"}}}]})
        assert r.status_code == 200, r.text
        body = c.get(f"{SCIM}/Users/{uid}").json()
        assert body["active"] is False and body["name"] == {"familyName": "Provisioned"}
        assert [e["value"] for e in body["emails"]] == [name, "new@example.com"]
        assert c.delete(f"{SCIM}/Users/{uid}").json() == {}


def test_groups_nesting_cycles_and_admin_through_nesting(any_server):
    w = any_server.workspace()
    user_name, token = any_server.new_user()
    uid = _user_id(w, user_name)
    inner = w.groups.create(display_name=f"inner-{uuid.uuid4().hex[:6]}", members=[ComplexValue(value=uid)])
    outer = w.groups.create(display_name=f"outer-{uuid.uuid4().hex[:6]}")
    assert [m.value for m in inner.members] == [uid]
    with pytest.raises(ResourceConflict):
        w.groups.create(display_name=inner.display_name)  # display names are unique

    w.groups.patch(outer.id, schemas=PATCH_SCHEMA,
                   operations=[Patch(op=PatchOp.ADD, path="members", value=[{"value": inner.id}])])
    got = w.groups.get(outer.id)
    assert [(m.value, m.display) for m in got.members] == [(inner.id, inner.display_name)]
    groups = {g.display: g.type for g in w.users.get(uid).groups}
    assert groups[inner.display_name] == "direct" and groups[outer.display_name] == "indirect"
    assert [g.id for g in w.groups.list(filter=f'members.value eq "{inner.id}"')] == [outer.id]

    with pytest.raises(BadRequest, match="cycle"):
        w.groups.patch(inner.id, operations=[Patch(op=PatchOp.ADD, path="members", value=[{"value": outer.id}])])
    with pytest.raises(BadRequest):
        w.groups.patch(inner.id, operations=[Patch(op=PatchOp.ADD, path="members", value=[{"value": inner.id}])])

    # A member of a group nested in `admins` is an admin: it may then create a catalog.
    wu = any_server.workspace(token)
    catalog = f"nested_admin_{uuid.uuid4().hex[:6]}"
    with pytest.raises(PermissionDenied):
        wu.catalogs.create(name=catalog)
    admins = _group_id(w, "admins")
    w.groups.patch(admins, operations=[Patch(op=PatchOp.ADD, value={"members": [{"value": outer.id}]})])
    try:
        assert wu.catalogs.create(name=catalog).name == catalog
        assert "admins" in {g.display for g in wu.current_user.me().groups}
    finally:
        w.groups.patch(admins, operations=[Patch(op=PatchOp.REMOVE, path=f'members[value eq "{outer.id}"]')])
    with pytest.raises(PermissionDenied):
        wu.catalogs.create(name=catalog + "_2")  # membership changes take effect at once
    w.catalogs.delete(catalog, force=True)

    # Databricks' form of remove: path "members" with the values to drop.
    w.groups.patch(inner.id, operations=[Patch(op=PatchOp.REMOVE, path="members", value=[{"value": uid}])])
    assert not w.groups.get(inner.id).members
    w.groups.update(outer.id, display_name=outer.display_name + "-renamed")
    got = w.groups.get(outer.id)
    assert got.display_name == outer.display_name + "-renamed" and [m.value for m in got.members] == [inner.id]
    w.groups.delete(inner.id)
    assert not w.groups.get(outer.id).members  # deleting a group drops its memberships
    w.groups.delete(outer.id)
    with pytest.raises(NotFound):
        w.groups.get(outer.id)


def test_builtin_principals_are_protected(any_server):
    w = any_server.workspace()
    admins, users = _group_id(w, "admins"), _group_id(w, "users")
    admin = w.current_user.me().id
    for gid in (admins, users):
        with pytest.raises(BadRequest, match="cannot be deleted"):
            w.groups.delete(gid)
        with pytest.raises(BadRequest, match="cannot be renamed"):
            w.groups.update(gid, display_name="renamed")
    with pytest.raises(BadRequest, match="cannot be deleted"):
        w.users.delete(admin)
    with pytest.raises(BadRequest, match="deactivated"):
        w.users.patch(admin, operations=[Patch(op=PatchOp.REPLACE, path="active", value=False)])
    with pytest.raises(BadRequest, match="stays in"):
        w.groups.patch(admins, operations=[Patch(op=PatchOp.REMOVE, path=f'members[value eq "{admin}"]')])
    sp = w.service_principals.create(display_name="not-in-users-by-hand")
    with pytest.raises(BadRequest, match="manages the membership"):
        w.groups.patch(users, operations=[Patch(op=PatchOp.REMOVE, path=f'members[value eq "{sp.id}"]')])
    w.service_principals.delete(sp.id)
    assert w.current_user.me().active is True


def test_service_principals_and_obo_tokens(any_server):
    w = any_server.workspace()
    sp = w.service_principals.create(display_name=f"ci-{uuid.uuid4().hex[:6]}")
    assert sp.id and sp.display_name.startswith("ci-") and sp.active is True
    assert str(uuid.UUID(sp.application_id)) == sp.application_id  # a generated UUID
    given = str(uuid.uuid4())
    sp2 = w.service_principals.create(application_id=given, display_name="fixed-app-id")
    assert sp2.application_id == given
    with pytest.raises(ResourceAlreadyExists):
        w.service_principals.create(application_id=given)

    assert [x.id for x in w.service_principals.list(filter=f'applicationId eq "{sp.application_id}"')] == [sp.id]
    assert {sp.id, sp2.id} <= {x.id for x in w.service_principals.list()}
    assert w.service_principals.get(sp.id).application_id == sp.application_id

    obo = w.token_management.create_obo_token(application_id=sp.application_id, comment="ci", lifetime_seconds=600)
    assert obo.token_value and str(obo.token_info.owner_id) == sp.id and obo.token_info.created_by_username == "admin"
    w2 = any_server.workspace(obo.token_value)
    me = w2.current_user.me()
    assert me.id == sp.id and me.user_name == sp.application_id and me.display_name == sp.display_name
    # A service principal manages its own tokens too.
    own = w2.tokens.create(comment="self", lifetime_seconds=600)
    assert any_server.workspace(own.token_value).current_user.me().id == sp.id

    w.service_principals.update(sp.id, display_name="ci-renamed", active=True)
    assert w.service_principals.get(sp.id).display_name == "ci-renamed"
    w.service_principals.delete(sp.id)
    with pytest.raises(Unauthenticated):
        w2.current_user.me()  # its tokens went with it
    with pytest.raises(NotFound):
        w.service_principals.get(sp.id)
    w.service_principals.delete(sp2.id)


def test_deactivation_stops_tokens_at_once(any_server):
    w = any_server.workspace()
    user_name, token = any_server.new_user()
    uid = _user_id(w, user_name)
    wu = any_server.workspace(token)
    assert wu.current_user.me().user_name == user_name
    w.users.patch(uid, operations=[Patch(op=PatchOp.REPLACE, path="active", value=False)])
    assert w.users.get(uid).active is False
    with pytest.raises(Unauthenticated):
        wu.current_user.me()
    w.users.patch(uid, operations=[Patch(op=PatchOp.REPLACE, value={"active": True})])
    assert wu.current_user.me().user_name == user_name
    w.users.delete(uid)


def test_non_admins_cannot_administer_identities(any_server):
    user_name, token = any_server.new_user()
    wu = any_server.workspace(token)
    me = wu.current_user.me()
    assert me.user_name == user_name and "admins" not in {g.display for g in me.groups}
    with pytest.raises(PermissionDenied) as e:
        wu.users.create(user_name=_email("nope"))
    assert e.value.error_code == "PERMISSION_DENIED"
    with pytest.raises(PermissionDenied):
        wu.groups.create(display_name="nope")
    with pytest.raises(PermissionDenied):
        wu.service_principals.create(display_name="nope")
    with pytest.raises(PermissionDenied):
        wu.users.patch(me.id, operations=[Patch(op=PatchOp.REPLACE, path="displayName", value="self-promoted")])
    with pytest.raises(PermissionDenied):
        wu.groups.patch(_group_id(wu, "admins"),
                        operations=[Patch(op=PatchOp.ADD, path="members", value=[{"value": me.id}])])
    # Reading the directory is open to everyone signed in.
    assert user_name in {u.user_name for u in wu.users.list(filter=f'userName eq "{user_name}"')}


def test_missing_or_wrong_token_is_401_in_the_error_shape(any_server):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}):
        r = httpx.get(any_server.url + f"{SCIM}/Me", headers=headers)
        assert r.status_code == 401
        body = r.json()
        assert body["error_code"] == "UNAUTHENTICATED" and body["message"] and "detail" not in body
    with pytest.raises(Unauthenticated):
        any_server.workspace("wrong-token").current_user.me()
