"""SCIM 2.0 resources as Databricks speaks them: rendering principals, reading request bodies,
projecting attributes and applying PATCH operations (RFC 7644 §3.5.2).

Everything here is pure: dicts in, dicts out. The directory service decides what is allowed and
writes it; PATCH is "render, apply the operations to the rendered resource, write what changed".
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

from lakeforge.errors import InvalidParameter
from lakeforge.identity import scim_filter
from lakeforge.identity.store import GROUP, SERVICE_PRINCIPAL, USER, PrincipalRow

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
WORKSPACE_USER_SCHEMA = "urn:ietf:params:scim:schemas:extension:workspace:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
SERVICE_PRINCIPAL_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

SCHEMAS = {USER: [USER_SCHEMA, WORKSPACE_USER_SCHEMA], GROUP: [GROUP_SCHEMA],
           SERVICE_PRINCIPAL: [SERVICE_PRINCIPAL_SCHEMA]}
RESOURCE_TYPES = {USER: "User", GROUP: "Group", SERVICE_PRINCIPAL: "ServicePrincipal"}
ENDPOINTS = {USER: "Users", GROUP: "Groups", SERVICE_PRINCIPAL: "ServicePrincipals"}

# Writable attributes per kind. The one that names the principal is stored in PrincipalRow.name.
NAME_ATTRIBUTE = {USER: "userName", GROUP: "displayName", SERVICE_PRINCIPAL: "applicationId"}
SINGLE = {USER: ("userName", "displayName", "active", "externalId"),
          GROUP: ("displayName", "externalId"),
          SERVICE_PRINCIPAL: ("applicationId", "displayName", "active", "externalId")}
MULTI = {USER: ("emails", "entitlements", "roles", "groups"),
         GROUP: ("members", "groups", "entitlements", "roles"),
         SERVICE_PRINCIPAL: ("entitlements", "roles", "groups")}
COMPLEX = {USER: ("name",), GROUP: (), SERVICE_PRINCIPAL: ()}
# SCIM attributes kept verbatim in PrincipalRow.attributes (JSON); they carry no meaning for access.
EXTRAS = ("emails", "name", "entitlements", "roles")
# Relations stored as group membership rows.
MEMBERSHIP = ("members", "groups")
READ_ONLY = ("id", "meta", "schemas")
ALWAYS_RETURNED = ("id", "schemas")


def writable(kind: str) -> tuple[str, ...]:
    return SINGLE[kind] + MULTI[kind] + COMPLEX[kind]


def canonical(kind: str, name: str) -> str:
    """The attribute's proper spelling (SCIM names are case-insensitive); 400 if it is unknown."""
    bare = scim_filter.strip_urn(name)
    for attr in writable(kind) + READ_ONLY:
        if attr.lower() == bare.lower():
            return attr
    raise InvalidParameter(f"Unknown attribute '{name}' for a {RESOURCE_TYPES[kind]}")


# ---- reading request bodies ------------------------------------------------------------------------

def parse_resource(kind: str, data: dict[str, Any], *, replace: bool) -> dict[str, Any]:
    """A request body as {attribute: clean value}. Unknown fields are ignored and null means absent.
    With `replace` (create and PUT) a missing SCIM extra is cleared; membership attributes that are
    left out stay as they are, so an update of a name never drops members by accident."""
    out: dict[str, Any] = {}
    for attr in writable(kind):
        value = scim_filter.get_ci(data, attr)
        if value is None:
            if replace and attr in EXTRAS:
                out[attr] = None
            continue
        out[attr] = clean(attr, value)
    return out


def clean(attr: str, value: Any) -> Any:
    """Validate one attribute's value; None means "remove it"."""
    if value is None:
        return None
    if attr == "active":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"  # some provisioning clients send "False"
        raise InvalidParameter(f"'active' must be a boolean, got {json.dumps(value)}")
    if attr == "name":
        if not isinstance(value, dict) or not all(isinstance(v, (str, type(None))) for v in value.values()):
            raise InvalidParameter("'name' must be an object of strings such as {\"givenName\": ...}")
        return {k: v for k, v in value.items() if v is not None} or None
    if attr in ("emails", "entitlements", "roles", "members", "groups"):
        items = value if isinstance(value, list) else [value]
        return [_complex_value(attr, item) for item in items]
    if not isinstance(value, str):
        raise InvalidParameter(f"'{attr}' must be a string, got {json.dumps(value)}")
    return value


def _complex_value(attr: str, item: Any) -> dict[str, Any]:
    if isinstance(item, (str, int)) and not isinstance(item, bool):
        item = {"value": item}
    if not isinstance(item, dict) or item.get("value") in (None, "") or isinstance(item["value"], (dict, list, bool)):
        raise InvalidParameter(f"Each of '{attr}' needs a string 'value', got {json.dumps(item)}")
    out = {k: v for k, v in item.items() if isinstance(v, (str, int, bool))}  # flat values only
    out["value"] = str(item["value"])
    return out


@dataclass(frozen=True)
class PatchOperation:
    op: str  # add | remove | replace
    path: str | None
    value: Any


def parse_patch(data: dict[str, Any]) -> list[PatchOperation]:
    ops = scim_filter.get_ci(data, "Operations")
    if not isinstance(ops, list) or not ops:
        raise InvalidParameter("A PATCH body needs a non-empty 'Operations' list")
    out = []
    for raw in ops:
        if not isinstance(raw, dict):
            raise InvalidParameter("Each operation must be an object with 'op', 'path' and 'value'")
        op = str(scim_filter.get_ci(raw, "op") or "").lower()
        if op not in ("add", "remove", "replace"):
            raise InvalidParameter(f"Unknown PATCH op {json.dumps(scim_filter.get_ci(raw, 'op'))}; "
                                   "use add, remove or replace")
        path = scim_filter.get_ci(raw, "path")
        if path is not None and not isinstance(path, str):
            raise InvalidParameter("A PATCH 'path' must be a string")
        out.append(PatchOperation(op, path or None, scim_filter.get_ci(raw, "value")))
    return out


# ---- rendering -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ref:
    """Another principal as a member or group of the one being rendered."""

    id: str
    kind: str
    display: str
    direct: bool = True


def extras_of(row: PrincipalRow) -> dict[str, Any]:
    try:
        data = json.loads(row.attributes) if row.attributes else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def render(row: PrincipalRow, *, groups: list[Ref], members: list[Ref] | None = None) -> dict[str, Any]:
    """The SCIM resource of a principal; empty attributes are left out."""
    extras = extras_of(row)
    res: dict[str, Any] = {"schemas": SCHEMAS[row.kind], "id": row.id}
    if row.kind == USER:
        res["userName"] = row.name
        res["displayName"] = row.display_name
        res["active"] = row.active
        emails = extras.get("emails")
        if not emails and "@" in row.name:
            emails = [{"value": row.name, "type": "work", "primary": True}]
        res["emails"] = emails
        res["name"] = extras.get("name")
    elif row.kind == SERVICE_PRINCIPAL:
        res["applicationId"] = row.name
        res["displayName"] = row.display_name
        res["active"] = row.active
    else:
        res["displayName"] = row.name
        res["members"] = [_ref(m) for m in members or []]
    res["externalId"] = row.external_id
    res["groups"] = [{**_ref(g), "type": "direct" if g.direct else "indirect"} for g in groups]
    res["entitlements"] = extras.get("entitlements")
    res["roles"] = extras.get("roles")
    res["meta"] = {"resourceType": RESOURCE_TYPES[row.kind], "created": _iso(row.created_at),
                   "lastModified": _iso(row.updated_at)}
    return {k: v for k, v in res.items() if v not in (None, [], {})}


def _ref(r: Ref) -> dict[str, str]:
    return {"value": r.id, "display": r.display, "$ref": f"{ENDPOINTS[r.kind]}/{r.id}"}


def _iso(dt) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def list_response(resources: list[dict], total: int, start_index: int) -> dict[str, Any]:
    return {"schemas": [LIST_SCHEMA], "totalResults": total, "startIndex": start_index,
            "itemsPerPage": len(resources), "Resources": resources}


def project(resource: dict[str, Any], attributes: str | None, excluded: str | None) -> dict[str, Any]:
    """Apply `attributes` / `excludedAttributes` (comma-separated, dotted sub-attributes allowed)."""
    if attributes:
        wanted = _attribute_set(attributes)
        out = {}
        for key, value in resource.items():
            subs = wanted.get(key.lower())
            if key in ALWAYS_RETURNED or subs == "*":
                out[key] = value
            elif subs:
                picked = _pick(value, subs, keep=True)
                if picked not in (None, [], {}):
                    out[key] = picked
        return out
    if excluded:
        unwanted = _attribute_set(excluded)
        out = {}
        for key, value in resource.items():
            subs = unwanted.get(key.lower())
            if key in ALWAYS_RETURNED or subs is None:
                out[key] = value
            elif subs != "*":
                out[key] = _pick(value, subs, keep=False)
        return out
    return resource


def _attribute_set(text: str) -> dict[str, Any]:
    """"a,b.c" -> {"a": "*", "b": {"c"}} with lower-cased names."""
    out: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        top, _, sub = scim_filter.strip_urn(part).lower().partition(".")
        if not sub or out.get(top) == "*":
            out[top] = "*"
        else:
            out.setdefault(top, set()).add(sub)
    return out


def _pick(value: Any, subs: set[str], keep: bool) -> Any:
    def one(d):
        if not isinstance(d, dict):
            return d
        return {k: v for k, v in d.items() if (k.lower() in subs) == keep}
    return [one(v) for v in value] if isinstance(value, list) else one(value)


# ---- PATCH -----------------------------------------------------------------------------------------

_PATH = re.compile(r"^(?P<attr>[^\[\]]+?)(?:\[(?P<filter>.*)\])?(?:\.(?P<sub>[A-Za-z0-9_$]+))?$")


def apply_patch(kind: str, resource: dict[str, Any], operations: list[PatchOperation]) -> dict[str, Any]:
    """Apply operations to a rendered resource; returns {attribute: new clean value} for each
    attribute they touched (None: removed)."""
    doc = copy.deepcopy(resource)
    touched: set[str] = set()
    for op in operations:
        if op.path is None:
            if op.op == "remove":
                raise InvalidParameter("A 'remove' operation needs a 'path'")
            if not isinstance(op.value, dict):
                raise InvalidParameter(f"An '{op.op}' operation without a 'path' needs an object 'value'")
            for key, value in op.value.items():
                if key.lower() in ("schemas", "meta"):
                    continue
                attr = _target(kind, key)
                _set_whole(kind, doc, attr, value, op.op)
                touched.add(attr)
            continue
        attr, filt, sub = _split_path(kind, op.path)
        touched.add(attr)
        if op.value is None and op.op != "remove" and attr == "active" and sub is None:
            # databricks-sdk's Patch.as_dict drops falsy values: `value=False` arrives as no value at all.
            op = dataclasses.replace(op, value=False)
        if filt is None and sub is None:
            _set_whole(kind, doc, attr, op.value, op.op)
        elif filt is None:
            _set_sub(doc, attr, sub, op)
        else:
            _set_filtered(doc, attr, filt, sub, op)
    return {attr: clean(attr, doc.get(attr)) for attr in touched}


def _target(kind: str, name: str) -> str:
    attr = canonical(kind, name)
    if attr in READ_ONLY:
        raise InvalidParameter(f"'{attr}' is read-only")
    return attr


def _split_path(kind: str, path: str) -> tuple[str, str | None, str | None]:
    path = scim_filter.strip_urn(path.strip())
    m = _PATH.match(path)
    if not m:
        raise InvalidParameter(f"Invalid PATCH path '{path}'")
    attr, filt, sub = m.group("attr"), m.group("filter"), m.group("sub")
    if filt is None and sub is None and "." in attr:
        attr, sub = attr.split(".", 1)
    return _target(kind, attr), filt, sub


def _is_multi(kind: str, attr: str) -> bool:
    return attr in MULTI[kind]


def _values(value: Any) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    return [i if isinstance(i, dict) else {"value": i} for i in items if i is not None]


def _set_whole(kind: str, doc: dict, attr: str, value: Any, op: str) -> None:
    if not _is_multi(kind, attr):
        if op == "remove":
            doc[attr] = None
        elif attr in COMPLEX[kind] and op == "add" and isinstance(value, dict) and isinstance(doc.get(attr), dict):
            doc[attr] = {**doc[attr], **value}
        else:
            doc[attr] = value
        return
    current = list(doc.get(attr) or [])
    if op == "replace":
        doc[attr] = _values(value)
    elif op == "add":
        known = {str(c.get("value")) for c in current if isinstance(c, dict)}
        for item in _values(value):
            if str(item.get("value")) not in known:
                current.append(item)
                known.add(str(item.get("value")))
        doc[attr] = current
    elif value is None:
        doc[attr] = []
    else:  # remove the listed values (the form Databricks documents for members)
        gone = {str(i.get("value")) for i in _values(value)}
        doc[attr] = [c for c in current if str(c.get("value")) not in gone]


def _set_sub(doc: dict, attr: str, sub: str, op: PatchOperation) -> None:
    current = doc.get(attr)
    targets = current if isinstance(current, list) else [current if isinstance(current, dict) else {}]
    for item in targets:
        if op.op == "remove":
            item.pop(sub, None)
        else:
            item[sub] = op.value
    doc[attr] = targets if isinstance(current, list) else targets[0]


def _set_filtered(doc: dict, attr: str, filt: str, sub: str | None, op: PatchOperation) -> None:
    pred = scim_filter.parse(filt)
    current = [c for c in doc.get(attr) or [] if isinstance(c, dict)]
    matching = [c for c in current if pred(c)]
    if op.op == "replace" and not matching:
        raise InvalidParameter(f"No value of '{attr}' matches [{filt}]")
    if op.op == "remove" and sub is None:
        doc[attr] = [c for c in current if not pred(c)]
        return
    for item in matching:
        if sub is None:
            replacement = _values(op.value)
            item.clear()
            item.update(replacement[0] if replacement else {})
        elif op.op == "remove":
            item.pop(sub, None)
        else:
            item[sub] = op.value
    if op.op == "add" and not matching and sub is None:
        current.extend(_values(op.value))
    doc[attr] = current
