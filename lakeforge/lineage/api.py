"""Lineage REST API: record edges, read the graph around an asset."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from lakeforge.server.http import body, call, caller, ok

router = APIRouter(prefix="/api/2.0/lineage")


class NodeRef(BaseModel):
    type: str
    name: str


class EdgeIn(BaseModel):
    source: NodeRef
    target: NodeRef


class RecordEdges(BaseModel):
    edges: list[EdgeIn]
    entity_type: str
    entity_id: str | int | None = None


def _svc(request: Request):
    return request.app.state.ctx.lineage


@router.post("/edges", name="lineage.edges.record")
async def record_edges(request: Request):
    req = await body(request, RecordEdges)
    edges = [(e.source.type, e.source.name, e.target.type, e.target.name) for e in req.edges]
    return ok(await call(_svc(request).record, caller(request), edges, req.entity_type, req.entity_id))


@router.get("/graph", name="lineage.graph")
def graph(request: Request, name: str, type: str | None = None, direction: str = "both", depth: int = 3):
    return ok(_svc(request).graph(caller(request), type, name, direction, depth))
