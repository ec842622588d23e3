"""The one door: `authorize(principal, privilege, securable)` decides every access in Lakeforge.

Rules (Unity Catalog's model):
- Metastore admins (members of the `admins` group) may do everything.
- The owner of an object, or of any container above it, holds every privilege on it, MANAGE included.
- A privilege granted on a catalog or schema applies to everything inside it.
- ALL_PRIVILEGES implies every privilege except MANAGE.
- Anything inside a catalog also needs USE_CATALOG on it; anything inside a schema needs USE_SCHEMA.
  Acting on a container itself (CREATE_TABLE on a schema, SELECT on a catalog) needs its USE too.
- BROWSE (see an object's metadata) is held by anyone holding a privilege on the object, or one on a
  container that applies to objects of its kind (SELECT on a schema reveals its tables; USE_CATALOG
  alone reveals nothing inside the catalog).
- Objects outside the catalog tree (secret scopes, serving endpoints, experiments) have ACL levels
  where a higher level implies the lower ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, false, or_, select, true

from lakeforge.audit.context import note_securable
from lakeforge.catalog.privileges import ACL_LADDERS, CATALOG_TREE, REVEALS, USE_OF, Kind, P, implied_by_acl
from lakeforge.catalog.store import GrantRow
from lakeforge.errors import PermissionDenied
from lakeforge.identity.principal import Principal
from lakeforge.store import Database
from lakeforge.store.generation import Generation

METASTORE_ID = "metastore"


@dataclass(frozen=True)
class Securable:
    """What an access decision is about: an object with its owner and its chain of containers."""

    kind: Kind
    id: str
    full_name: str
    owner_id: str | None = None
    parent: Securable | None = None

    def chain(self) -> list[Securable]:
        """Outermost container first, this object last."""
        out, node = [], self
        while node is not None:
            out.append(node)
            node = node.parent
        return out[::-1]


METASTORE = Securable(Kind.METASTORE, METASTORE_ID, "metastore")


@dataclass(frozen=True)
class SecurableColumns:
    """One level of a securable's chain in a SQL query: its kind and the columns of its id and owner."""

    kind: Kind
    id: ColumnElement
    owner_id: ColumnElement


class AccessControl:
    def __init__(self, db: Database, cache_seconds: float = 2.0, generation: Generation | None = None):
        self.db = db
        self.cache_seconds = cache_seconds
        self._grants: dict[str, tuple[float, int, dict[tuple[str, str], frozenset[str]]]] = {}
        self.generation = generation or Generation()
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Called after any change to grants, owners or group membership."""
        self.generation.bump()
        with self._lock:
            self._grants.clear()

    # ---- the decision --------------------------------------------------------------------------
    def authorize(self, principal: Principal, privilege: P, securable: Securable) -> None:
        """Raise PermissionDenied unless `principal` holds `privilege` on `securable`."""
        note_securable(securable.full_name)
        missing = self._missing(principal, privilege, securable)
        if missing is not None:
            raise PermissionDenied(_denial(principal, *missing))

    def allowed(self, principal: Principal, privilege: P, securable: Securable) -> bool:
        return self._missing(principal, privilege, securable) is None

    def _missing(self, principal: Principal, privilege: P, securable: Securable) -> tuple[P, Securable] | None:
        """None when allowed; otherwise the privilege that is lacking and where."""
        if principal.is_admin:
            return None
        held = self._held(principal)
        ids = principal.identity_ids
        if securable.kind not in CATALOG_TREE:
            return None if self._acl_allowed(privilege, securable, held, ids) else (privilege, securable)
        chain = securable.chain()
        # Container usage rules: USE_CATALOG on the catalog, USE_SCHEMA on the schema, including
        # the object itself when it is a container and the privilege acts on its contents.
        acts_inside = privilege not in (P.USE_CATALOG, P.USE_SCHEMA, P.BROWSE, P.MANAGE)
        containers = chain if acts_inside else chain[:-1]
        for depth, node in enumerate(containers):
            use = USE_OF.get(node.kind)
            if use is not None and not self._has(chain[: depth + 1], use, held, ids):
                return use, node
        if any(node.owner_id in ids for node in chain):
            return None
        if privilege == P.BROWSE:
            reveals = REVEALS.get(securable.kind, set())
            ok = bool(held.get((securable.kind, securable.id))) or any(
                self._grants_any(held.get((n.kind, n.id), ()), reveals) for n in chain[:-1])
        else:
            ok = any(self._grants_privilege(held.get((n.kind, n.id), ()), privilege) for n in chain)
        return None if ok else (privilege, securable)

    # ---- the same decision for many rows at once, as a SQL condition ---------------------------
    def allowed_where(self, principal: Principal, privilege: P, chain: list[SecurableColumns]) -> ColumnElement:
        """A SQL condition that holds for exactly the rows whose securable `allowed(principal, privilege,
        ...)` would pass, so that lists and searches filter, order and page in the database. `chain`
        names the columns of each level of the securable's chain, outermost container first, the
        securable last (as `Securable.chain()`). The rules are `_missing`'s, step by step, over the same
        cached grants: each grant test below is the one `_missing` applies, run once per securable the
        principal holds grants on, instead of once per row."""
        if principal.is_admin:
            return true()
        held = self._held(principal)
        ids = principal.identity_ids
        leaf = chain[-1]

        def granted(level: SecurableColumns, passes) -> ColumnElement:
            """The principal's grants on this level's securable pass `passes`."""
            sids = sorted(sid for (kind, sid), privileges in held.items() if kind == level.kind and passes(privileges))
            return level.id.in_(sids) if sids else false()

        def owned(levels: list[SecurableColumns]) -> ColumnElement:
            return or_(*(level.owner_id.in_(ids) for level in levels))

        if leaf.kind not in CATALOG_TREE:
            def acl(privileges) -> bool:  # _acl_allowed on a securable the principal does not own
                return self._acl_allowed(privilege, Securable(leaf.kind, "", ""), {(leaf.kind, ""): privileges}, ())
            return or_(owned([leaf]), granted(leaf, acl))

        def has(levels: list[SecurableColumns], wanted: P) -> ColumnElement:  # _has
            return or_(owned(levels), *(granted(n, lambda g: self._grants_privilege(g, wanted)) for n in levels))

        conditions = []
        acts_inside = privilege not in (P.USE_CATALOG, P.USE_SCHEMA, P.BROWSE, P.MANAGE)
        containers = chain if acts_inside else chain[:-1]
        for depth, level in enumerate(containers):
            use = USE_OF.get(level.kind)
            if use is not None:
                conditions.append(has(chain[: depth + 1], use))
        if privilege == P.BROWSE:
            reveals = REVEALS.get(leaf.kind, set())
            ok = or_(granted(leaf, bool), *(granted(n, lambda g: self._grants_any(g, reveals)) for n in chain[:-1]))
        else:
            ok = or_(*(granted(n, lambda g: self._grants_privilege(g, privilege)) for n in chain))
        conditions.append(or_(owned(chain), ok))
        return and_(*conditions)

    def _has(self, chain: list[Securable], privilege: P, held, ids) -> bool:
        if any(n.owner_id in ids for n in chain):
            return True
        return any(self._grants_privilege(held.get((n.kind, n.id), ()), privilege) for n in chain)

    @staticmethod
    def _grants_any(granted: Iterable[str], privileges: set[P]) -> bool:
        granted = set(granted)
        return bool(granted & privileges) or (P.ALL_PRIVILEGES in granted and bool(privileges))

    @staticmethod
    def _grants_privilege(granted: Iterable[str], privilege: P) -> bool:
        granted = set(granted)
        if privilege in granted:
            return True
        return P.ALL_PRIVILEGES in granted and privilege != P.MANAGE

    def _acl_allowed(self, privilege: P, securable: Securable, held, ids) -> bool:
        if securable.owner_id in ids:
            return True
        granted = implied_by_acl(securable.kind, set(held.get((securable.kind, securable.id), ())))
        if privilege == P.BROWSE:
            return bool(granted)
        ladder = ACL_LADDERS.get(securable.kind, [])
        return privilege in granted or (privilege == P.MANAGE and ladder and ladder[-1] in granted)

    # ---- grants held by a principal, cached ----------------------------------------------------
    def _held(self, principal: Principal) -> dict[tuple[str, str], frozenset[str]]:
        now = time.monotonic()
        hit = self._grants.get(principal.id)
        if hit and hit[0] > now and hit[1] == self.generation.value:
            return hit[2]
        gen = self.generation.value
        held: dict[tuple[str, str], set[str]] = {}
        with self.db.read() as s:
            rows = s.execute(select(GrantRow.securable_kind, GrantRow.securable_id, GrantRow.privilege)
                             .where(GrantRow.principal_id.in_(principal.identity_ids)))
            for kind, sid, priv in rows:
                held.setdefault((kind, sid), set()).add(priv)
        frozen = {k: frozenset(v) for k, v in held.items()}
        with self._lock:
            if gen == self.generation.value:
                self._grants[principal.id] = (now + self.cache_seconds, gen, frozen)
        return frozen


def _denial(principal: Principal, privilege: P, securable: Securable) -> str:
    what = "access" if privilege == P.BROWSE else privilege.value
    return f"User '{principal.name}' does not have {what} on {securable.kind.value} '{securable.full_name}'"
