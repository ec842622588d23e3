"""Lineage: where a table or model comes from and what is built from it."""

import typer

from lakeforge.cli._common import Output, client, command, emit

NAME = "lineage"


@command
def show(name: str = typer.Argument(..., help="Full name, e.g. main.ml.churn"),
         securable_type: str = typer.Option(None, "--type",
                                            help="table, registered_model, volume, ... (default: what the name is)"),
         direction: str = typer.Option("both", help="upstream, downstream or both"), depth: int = 3,
         output: Output = "table"):
    graph = client().lineage.graph(name, securable_type, direction, depth)
    if output == "json":
        emit(graph, output)
        return
    edges = [{"source": f"{e['source']['type']}:{e['source']['name']}",
              "target": f"{e['target']['type']}:{e['target']['name']}",
              "entity": f"{e.get('entity_type') or ''} {e.get('entity_id') or ''}".strip(),
              "event_time": e.get("event_time")} for e in graph.get("edges", [])]
    emit(edges, output, ["source", "target", "entity", "event_time"], title=f"lineage of {name}")
