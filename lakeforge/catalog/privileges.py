"""The privilege model: which privileges exist, where they may be granted, how they are spelled.

Internally privileges use the Databricks spelling (`USE_CATALOG`). The Unity Catalog spec spells
them with spaces (`USE CATALOG`) and knows fewer of them; `to_wire` answers each client in its own
spelling and never sends a value outside the spec's enum to a spec client.
"""

from __future__ import annotations

from enum import StrEnum

from lakeforge.errors import InvalidParameter


class Kind(StrEnum):
    METASTORE = "metastore"
    CATALOG = "catalog"
    SCHEMA = "schema"
    TABLE = "table"
    VOLUME = "volume"
    FUNCTION = "function"
    REGISTERED_MODEL = "registered_model"
    # Governed by the same access function, outside the catalog tree:
    SECRET_SCOPE = "secret_scope"
    SERVING_ENDPOINT = "serving_endpoint"
    EXPERIMENT = "experiment"


CATALOG_TREE = {Kind.METASTORE, Kind.CATALOG, Kind.SCHEMA, Kind.TABLE, Kind.VOLUME, Kind.FUNCTION,
                Kind.REGISTERED_MODEL}
LEAF_KINDS = {Kind.TABLE, Kind.VOLUME, Kind.FUNCTION, Kind.REGISTERED_MODEL}


class P(StrEnum):
    CREATE_CATALOG = "CREATE_CATALOG"
    USE_CATALOG = "USE_CATALOG"
    CREATE_SCHEMA = "CREATE_SCHEMA"
    USE_SCHEMA = "USE_SCHEMA"
    CREATE_TABLE = "CREATE_TABLE"
    CREATE_VOLUME = "CREATE_VOLUME"
    CREATE_FUNCTION = "CREATE_FUNCTION"
    CREATE_MODEL = "CREATE_MODEL"
    SELECT = "SELECT"
    MODIFY = "MODIFY"
    READ_VOLUME = "READ_VOLUME"
    WRITE_VOLUME = "WRITE_VOLUME"
    EXECUTE = "EXECUTE"
    MANAGE = "MANAGE"
    ALL_PRIVILEGES = "ALL_PRIVILEGES"
    # Pseudo-privilege checked, never granted: "may see this object's metadata".
    BROWSE = "BROWSE"
    # ACL levels of objects outside the catalog tree.
    READ = "READ"
    WRITE = "WRITE"
    CAN_VIEW = "CAN_VIEW"
    CAN_QUERY = "CAN_QUERY"
    CAN_READ = "CAN_READ"
    CAN_EDIT = "CAN_EDIT"
    CAN_MANAGE = "CAN_MANAGE"


_DATA = [P.SELECT, P.MODIFY, P.READ_VOLUME, P.WRITE_VOLUME, P.EXECUTE]
_SCHEMA_CREATE = [P.CREATE_TABLE, P.CREATE_VOLUME, P.CREATE_FUNCTION, P.CREATE_MODEL]

# Where each privilege may be granted. Privileges granted on a container apply to what it holds.
GRANTABLE: dict[Kind, set[P]] = {
    Kind.METASTORE: {P.CREATE_CATALOG, P.MANAGE},
    Kind.CATALOG: {P.USE_CATALOG, P.USE_SCHEMA, P.CREATE_SCHEMA, *_SCHEMA_CREATE, *_DATA, P.MANAGE,
                   P.ALL_PRIVILEGES},
    Kind.SCHEMA: {P.USE_SCHEMA, *_SCHEMA_CREATE, *_DATA, P.MANAGE, P.ALL_PRIVILEGES},
    Kind.TABLE: {P.SELECT, P.MODIFY, P.MANAGE, P.ALL_PRIVILEGES},
    Kind.VOLUME: {P.READ_VOLUME, P.WRITE_VOLUME, P.MANAGE, P.ALL_PRIVILEGES},
    Kind.FUNCTION: {P.EXECUTE, P.MANAGE, P.ALL_PRIVILEGES},
    Kind.REGISTERED_MODEL: {P.EXECUTE, P.MANAGE, P.ALL_PRIVILEGES},
    Kind.SECRET_SCOPE: {P.READ, P.WRITE, P.MANAGE},
    Kind.SERVING_ENDPOINT: {P.CAN_VIEW, P.CAN_QUERY, P.CAN_MANAGE},
    Kind.EXPERIMENT: {P.CAN_READ, P.CAN_EDIT, P.CAN_MANAGE},
}

# Privileges that, held on an object or inherited from a container, let a principal see the object.
# USE_CATALOG on a catalog does not reveal its tables; SELECT on the catalog does.
REVEALS: dict[Kind, set[P]] = {
    Kind.SCHEMA: {P.USE_SCHEMA, *_SCHEMA_CREATE, *_DATA, P.MANAGE, P.ALL_PRIVILEGES},
    Kind.TABLE: {P.SELECT, P.MODIFY, P.MANAGE, P.ALL_PRIVILEGES},
    Kind.VOLUME: {P.READ_VOLUME, P.WRITE_VOLUME, P.MANAGE, P.ALL_PRIVILEGES},
    Kind.FUNCTION: {P.EXECUTE, P.MANAGE, P.ALL_PRIVILEGES},
    Kind.REGISTERED_MODEL: {P.EXECUTE, P.MANAGE, P.ALL_PRIVILEGES},
}

# Using a container: USE_CATALOG on catalogs, USE_SCHEMA on schemas.
USE_OF = {Kind.CATALOG: P.USE_CATALOG, Kind.SCHEMA: P.USE_SCHEMA}

# ACL levels: holding a higher level implies the lower ones.
ACL_LADDERS: dict[Kind, list[P]] = {
    Kind.SECRET_SCOPE: [P.READ, P.WRITE, P.MANAGE],
    Kind.SERVING_ENDPOINT: [P.CAN_VIEW, P.CAN_QUERY, P.CAN_MANAGE],
    Kind.EXPERIMENT: [P.CAN_READ, P.CAN_EDIT, P.CAN_MANAGE],
}

# The spec's enum (with spaces); anything else is never sent to a spec client.
SPEC_PRIVILEGES = {
    "CREATE CATALOG", "USE CATALOG", "CREATE SCHEMA", "USE SCHEMA", "CREATE TABLE", "SELECT", "MODIFY",
    "CREATE FUNCTION", "EXECUTE", "CREATE VOLUME", "READ VOLUME", "CREATE MODEL", "CREATE EXTERNAL LOCATION",
    "READ FILES", "WRITE FILES", "CREATE EXTERNAL TABLE", "CREATE EXTERNAL VOLUME", "CREATE MANAGED STORAGE",
    "CREATE STORAGE CREDENTIAL",
}


def parse_kind(value: str) -> Kind:
    try:
        kind = Kind(str(value).strip().lower())
    except ValueError:
        raise InvalidParameter(f"Unknown securable type '{value}'") from None
    return kind


def parse_privilege(value: str, kind: Kind) -> P:
    """Accept either spelling, any case; reject privileges that cannot be granted on `kind`."""
    norm = str(value).strip().upper().replace(" ", "_")
    if norm == "ALL":
        norm = "ALL_PRIVILEGES"
    try:
        priv = P(norm)
    except ValueError:
        raise InvalidParameter(f"Unknown privilege '{value}'") from None
    if priv not in GRANTABLE.get(kind, set()):
        raise InvalidParameter(f"Privilege {priv.value} cannot be granted on a {kind.value}")
    return priv


def to_wire(priv: str, spaces: bool) -> str | None:
    if not spaces:
        return priv
    text = priv.replace("_", " ")
    return text if text in SPEC_PRIVILEGES else None


def implied_by_acl(kind: Kind, held: set[str]) -> set[str]:
    ladder = ACL_LADDERS.get(kind)
    if not ladder:
        return held
    out = set(held)
    for i, level in enumerate(ladder):
        if level in held:
            out.update(ladder[:i])
    return out
