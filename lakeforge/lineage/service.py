"""Lineage: edges source -> target, recorded by the entity that made them (a query, a job run, an
endpoint, a model version), and the graph around an asset walked breadth-first.

Nodes are (type, name). Catalog securables (TABLE, VOLUME, FUNCTION, REGISTERED_MODEL) are named by
full name and governed by the one access function: recording an edge needs write access to the
target (MODIFY, WRITE_VOLUME for volumes; owners and admins always) and BROWSE on the source; a
graph shows a catalog node only to callers who may BROWSE it. Other nodes (endpoints, jobs,
notebooks, paths) are shown to admins and to the principals who recorded an edge touching them.
Hidden nodes are counted, never named; edges are shown only between visible nodes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from lakeforge import clock, names
from lakeforge.audit.context import note_securable
from lakeforge.catalog import securables as sec
from lakeforge.catalog.access import AccessControl
from lakeforge.catalog.privileges import Kind, P
from lakeforge.catalog.store import SecurableRow
from lakeforge.errors import InvalidParameter, NotFound, PermissionDenied
from lakeforge.identity.principal import Principal
from lakeforge.lineage.export import LineageExport
from lakeforge.lineage.store import LineageEdgeRow
from lakeforge.store import Database

log = logging.getLogger(__name__)

CATALOG_TYPES = {"TABLE": Kind.TABLE, "VOLUME": Kind.VOLUME, "FUNCTION": Kind.FUNCTION,
                 "REGISTERED_MODEL": Kind.REGISTERED_MODEL}
ALIASES = {"MODEL": "REGISTERED_MODEL"}
WRITE_PRIVILEGE = {Kind.VOLUME: P.WRITE_VOLUME}  # everything else: MODIFY
DIRECTIONS = ("upstream", "downstream", "both")
DEFAULT_DEPTH, MAX_DEPTH = 3, 10
MAX_EDGES_PER_CALL = 1000
MAX_GRAPH_EDGES = 10_000  # rows read per graph; beyond that the answer says truncated
_TYPE = re.compile(r"^[A-Z][A-Z0-9_]{0,39}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CHUNK = 500

Node = tuple[str, str]  # (type, name)


def parse_node(node_type, name, what: str = "node") -> Node:
    if not isinstance(node_type, str) or not node_type.strip():
        raise InvalidParameter(f"{what} type is required")
    t = node_type.strip().upper()
    t = ALIASES.get(t, t)
    if not _TYPE.match(t):
        raise InvalidParameter(f"Invalid {what} type '{node_type[:60]}': use letters, digits and underscores "
                               "(at most 40), e.g. TABLE, REGISTERED_MODEL, SERVING_ENDPOINT, JOB")
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameter(f"{what} name is required")
    if t in CATALOG_TYPES:
        names.parse(name, 3, f"{what} name")
    elif len(name) > 800 or _CONTROL.search(name):
        raise InvalidParameter(f"Invalid {what} name: at most 800 characters, no control characters")
    return t, name


def _text(value, what: str, limit: int, required: bool) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidParameter(f"{what} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidParameter(f"{what} must be a string")
    text = str(value).strip()
    if len(text) > limit or _CONTROL.search(text):
        raise InvalidParameter(f"Invalid {what}: at most {limit} characters, no control characters")
    return text


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


INFERABLE = ("table", "registered_model", "volume", "function")


class LineageService:
    def __init__(self, db: Database, access: AccessControl, catalog, settings):
        self.db = db
        self.access = access
        self.catalog = catalog
        self.export = LineageExport(db, catalog, settings.log_dir("lineage"), app_id=settings.log_app_id("lineage"),
                                    fsync=settings.audit_fsync, flush_seconds=settings.audit_flush_seconds,
                                    workers=settings.workers)

    def registered(self, extensions: list) -> LineageService:
        """Hand the Delta export's start/stop to the application context; returns self."""
        extensions.append(self.export)
        return self

    # ---- recording -----------------------------------------------------------------------------
    def record(self, principal: Principal, edges: list[tuple[str, str, str, str]], entity_type: str,
               entity_id: str | None = None) -> dict:
        """Record edges (source_type, source_name, target_type, target_name) made by one entity."""
        entity_type = _text(entity_type, "entity_type", 40, True)
        entity_id = _text(entity_id, "entity_id", 255, False)
        if not isinstance(edges, (list, tuple)) or not edges:
            raise InvalidParameter("edges must be a non-empty list")
        if len(edges) > MAX_EDGES_PER_CALL:
            raise InvalidParameter(f"At most {MAX_EDGES_PER_CALL} edges per call, got {len(edges)}")
        parsed: list[tuple[Node, Node]] = []
        for i, edge in enumerate(edges):
            if not isinstance(edge, (list, tuple)) or len(edge) != 4:
                raise InvalidParameter(f"edges[{i}] must be (source_type, source_name, target_type, target_name)")
            source = parse_node(edge[0], edge[1], f"edges[{i}].source")
            target = parse_node(edge[2], edge[3], f"edges[{i}].target")
            if source == target:
                raise InvalidParameter(f"edges[{i}]: an edge cannot lead from a node to itself")
            parsed.append((source, target))
        note_securable(parsed[0][1][1])
        with self.db.write() as s:
            self._check_may_record(s, principal, parsed)
            now = clock.now()
            rows = [LineageEdgeRow(source_type=src[0], source_name=src[1], target_type=tgt[0], target_name=tgt[1],
                                   entity_type=entity_type, entity_id=entity_id, created_at=now,
                                   created_by=principal.name) for src, tgt in parsed]
            s.add_all(rows)
            s.flush()
        self.export.append(rows)  # after the commit; see lineage/export.py for the crash window
        return {"edges": [_edge_info(r) for r in rows]}

    def _check_may_record(self, s: Session, principal: Principal, edges: list[tuple[Node, Node]]) -> None:
        checks: dict[Node, P] = {}
        for source, target in edges:
            if source[0] in CATALOG_TYPES:
                checks.setdefault(source, P.BROWSE)
            if target[0] in CATALOG_TYPES:  # a write check subsumes a browse check
                checks[target] = WRITE_PRIVILEGE.get(CATALOG_TYPES[target[0]], P.MODIFY)
        for (node_type, name), privilege in checks.items():
            row = sec.get_row(s, CATALOG_TYPES[node_type], name)  # 404 when it does not exist
            self.access.authorize(principal, privilege, sec.securable_of(s, row))

    # ---- reading -------------------------------------------------------------------------------
    def graph(self, principal: Principal, securable_type: str | None, full_name: str,
              direction: str | None = "both", depth: int | None = DEFAULT_DEPTH) -> dict:
        if not securable_type:
            securable_type = self._infer_type(full_name)
        root = parse_node(securable_type, full_name, "root")
        direction = (direction or "both").strip().lower()
        if direction not in DIRECTIONS:
            raise InvalidParameter(f"Invalid direction '{direction[:40]}': expected upstream, downstream or both")
        depth = DEFAULT_DEPTH if depth is None else depth
        if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= MAX_DEPTH:
            raise InvalidParameter(f"depth must be between 1 and {MAX_DEPTH}")
        note_securable(root[1])
        with self.db.read() as s:
            self._check_root(s, principal, root)
            hops: dict[Node, int] = {root: 0}
            found: dict[tuple, LineageEdgeRow] = {}
            truncated = False
            for walk in (("upstream", "downstream") if direction == "both" else (direction,)):
                truncated |= self._walk(s, root, walk, depth, hops, found)
            visible = self._visible(s, principal, set(hops)) | {root}
            nodes = sorted((n for n in hops if n in visible), key=lambda n: (hops[n], n))
            edges = [_edge_info(r) for r in sorted(
                (r for r in found.values() if (r.source_type, r.source_name) in visible
                 and (r.target_type, r.target_name) in visible),
                key=lambda r: (r.source_type, r.source_name, r.target_type, r.target_name, r.id))]
        return {
            "root": {"type": root[0], "name": root[1]},
            "direction": direction,
            "depth": depth,
            "nodes": [{"type": t, "name": n, "depth": hops[(t, n)]} for t, n in nodes],
            "edges": edges,
            "hidden_nodes": len(hops) - len(nodes),
            "truncated": truncated or None,
        }

    def _check_root(self, s: Session, principal: Principal, root: Node) -> None:
        kind = CATALOG_TYPES.get(root[0])
        if kind is not None:
            if principal.is_admin:
                return  # admins may also read the history of dropped assets
            row = sec.get_row(s, kind, root[1])
            self.access.authorize(principal, P.BROWSE, sec.securable_of(s, row))
        elif not (principal.is_admin or self._recorded_by(s, principal, [root])):
            # Same answer whether or not edges exist, so nothing is revealed.
            raise PermissionDenied(f"User '{principal.name}' does not have access to the lineage of "
                                   f"{root[0]} '{root[1]}'")

    def _infer_type(self, full_name: str) -> str:
        """The kind of catalog object named `full_name`, when the caller did not say (so that
        `lakeforge lineage main.ml.churn` finds a model as readily as a table)."""
        with self.db.read() as s:
            kinds = sorted(set(s.scalars(select(SecurableRow.kind).where(SecurableRow.full_name == full_name,
                                                                         SecurableRow.kind.in_(INFERABLE)))))
        if not kinds:
            raise NotFound(f"No table, registered model, volume or function named '{full_name[:200]}'")
        if len(kinds) > 1:
            raise InvalidParameter(f"'{full_name[:200]}' names several objects ({', '.join(kinds)}); pass type")
        return kinds[0]

    def _walk(self, s: Session, root: Node, walk: str, depth: int, hops: dict[Node, int],
              found: dict[tuple, LineageEdgeRow]) -> bool:
        """Breadth-first from `root` against (upstream) or along (downstream) the edges; fills `hops`
        and `found` (per pair and entity the latest edge). True when the row budget ran out."""
        upstream = walk == "upstream"
        near = LineageEdgeRow.target_name if upstream else LineageEdgeRow.source_name
        seen, frontier = {root}, {root}
        for level in range(1, depth + 1):
            next_frontier: set[Node] = set()
            for batch in _chunks(sorted({name for _, name in frontier})):
                for row in s.scalars(select(LineageEdgeRow).where(near.in_(batch))):
                    source, target = (row.source_type, row.source_name), (row.target_type, row.target_name)
                    here, there = (target, source) if upstream else (source, target)
                    if here not in frontier:
                        continue  # same name, another type
                    key = (*source, *target, row.entity_type, row.entity_id)
                    if key not in found or found[key].id < row.id:
                        found[key] = row
                    if there not in seen:
                        seen.add(there)
                        next_frontier.add(there)
                        hops[there] = min(hops.get(there, level), level)
                    if len(found) >= MAX_GRAPH_EDGES:
                        return True
            if not next_frontier:
                break
            frontier = next_frontier
        return False

    def _visible(self, s: Session, principal: Principal, nodes: set[Node]) -> set[Node]:
        if principal.is_admin:
            return set(nodes)
        out: set[Node] = set()
        for node_type, kind in CATALOG_TYPES.items():
            full_names = sorted(n for t, n in nodes if t == node_type)
            for batch in _chunks(full_names):
                rows = s.scalars(select(SecurableRow).where(SecurableRow.kind == kind.value,
                                                            SecurableRow.full_name.in_(batch)))
                out |= {(node_type, r.full_name) for r in rows
                        if self.access.allowed(principal, P.BROWSE, sec.securable_of(s, r))}
        return out | self._recorded_by(s, principal, [n for n in nodes if n[0] not in CATALOG_TYPES])

    @staticmethod
    def _recorded_by(s: Session, principal: Principal, nodes: list[Node]) -> set[Node]:
        """The nodes among `nodes` that `principal` recorded an edge to or from."""
        wanted, out = set(nodes), set()
        for batch in _chunks(sorted({n for _, n in nodes})):
            q = select(LineageEdgeRow.source_type, LineageEdgeRow.source_name, LineageEdgeRow.target_type,
                       LineageEdgeRow.target_name).where(
                LineageEdgeRow.created_by == principal.name,
                or_(LineageEdgeRow.source_name.in_(batch), LineageEdgeRow.target_name.in_(batch)))
            for st, sn, tt, tn in s.execute(q):
                out |= {(st, sn), (tt, tn)} & wanted
        return out


def _edge_info(row: LineageEdgeRow) -> dict:
    return {"source": {"type": row.source_type, "name": row.source_name},
            "target": {"type": row.target_type, "name": row.target_name},
            "entity_type": row.entity_type, "entity_id": row.entity_id,
            "event_time": clock.to_ms(row.created_at), "created_by": row.created_by}


__all__ = ["CATALOG_TYPES", "LineageService", "parse_node"]
