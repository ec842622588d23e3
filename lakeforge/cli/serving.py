"""Model serving endpoints: create, update, query, usage and logs."""

import json
from pathlib import Path
from typing import Optional

import typer

from lakeforge.cli._common import Output, client, command, emit

NAME = "serving"
app = typer.Typer(no_args_is_help=True)

Model = typer.Option(None, "--model", help="Registered model to serve, catalog.schema.model")
Version = typer.Option(None, "--version", help="Version of --model")
ServedName = typer.Option(None, "--name", help="Served entity name for --model (default MODEL-VERSION)")
Entity = typer.Option(None, "--entity", help="Another served entity, catalog.schema.model:VERSION[:NAME] "
                                             "(repeatable)")
Traffic = typer.Option(None, "--traffic", help="SERVED=PERCENT (repeatable; default: an even split)")
Wait = typer.Option(True, "--wait/--no-wait", help="Wait until the config is deployed")
Timeout = typer.Option(300, "--timeout", help="Seconds to wait for the deployment")


@app.command()
@command
def create(name: str, model: Optional[str] = Model, version: Optional[str] = Version,
           served_name: Optional[str] = ServedName, entity: Optional[list[str]] = Entity,
           traffic: Optional[list[str]] = Traffic,
           inference_table: Optional[str] = typer.Option(None, "--inference-table",
                                                         help="catalog.schema: log requests to NAME_payload"),
           usage_tracking: bool = typer.Option(False, "--usage-tracking",
                                               help="Record calls in system.serving.endpoint_usage"),
           wait: bool = Wait, timeout: float = Timeout, output: Output = "table"):
    """Create an endpoint serving one or more registered model versions."""
    ep = client().serving.create(name, _entities(entity), model=model, version=version, served_name=served_name,
                                 traffic=_traffic(traffic), inference_table=inference_table,
                                 usage_tracking=usage_tracking, wait=wait, timeout=timeout)
    _show(ep, output)


@app.command("list")
@command
def list_(output: Output = "table"):
    """Endpoints you may view, with their served entities."""
    endpoints = client().serving.list()
    if output == "json":
        emit(endpoints, output)
        return
    emit([{"name": e["name"], "ready": e["state"]["ready"], "config_update": e["state"]["config_update"],
           "served_entities": ", ".join(_entity_label(s) for s in (e.get("config") or {}).get("served_entities", [])),
           "creator": e.get("creator"), "created": e.get("creation_timestamp")} for e in endpoints],
         output, ["name", "ready", "config_update", "served_entities", "creator", "created"])


@app.command()
@command
def get(name: str, output: Output = "table"):
    """An endpoint's state, served entities and traffic split (and a pending config, if any)."""
    _show(client().serving.get(name), output)


@app.command()
@command
def update(name: str, model: Optional[str] = Model, version: Optional[str] = Version,
           served_name: Optional[str] = ServedName, entity: Optional[list[str]] = Entity,
           traffic: Optional[list[str]] = Traffic, wait: bool = Wait, timeout: float = Timeout,
           output: Output = "table"):
    """Replace the served entities and traffic split; the old config serves until the new one is up."""
    ep = client().serving.update(name, _entities(entity), model=model, version=version, served_name=served_name,
                                 traffic=_traffic(traffic), wait=wait, timeout=timeout)
    _show(ep, output)


@app.command()
@command
def delete(name: str):
    """Delete an endpoint and stop its model workers."""
    client().serving.delete(name)
    typer.echo(f"deleted serving endpoint {name}")


@app.command()
@command
def query(name: str,
          body: Optional[str] = typer.Option(None, "--json", help="The request body, e.g. "
                                             "'{\"dataframe_records\": [{\"x\": 1}]}' (a list means records)"),
          file: Optional[Path] = typer.Option(None, "--file", help="A JSON file with the request body"),
          csv: Optional[Path] = typer.Option(None, "--csv", help="A CSV file: a header row, one line per row"),
          served_model: Optional[str] = typer.Option(None, "--served-model", help="Query this served entity "
                                                     "directly, bypassing the traffic split"),
          output: Output = "table"):
    """Score data with an endpoint; prints the predictions and the served entity that answered."""
    given = [x for x in (body, file, csv) if x is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of --json, --file or --csv")
    if csv is not None:
        import pandas as pd

        data = pd.read_csv(csv)
    else:
        data = json.loads(body if body is not None else file.read_text())
    result = client().serving.query(name, data, served_model=served_model)
    if output == "json":
        emit(result, output)
        return
    predictions = result.get("predictions")
    title = f"served by {result.get('served_model_name')}"
    if isinstance(predictions, list) and all(isinstance(p, dict) for p in predictions) and predictions:
        emit(predictions, output, title=title)
    elif isinstance(predictions, list):
        emit([{"row": i, "prediction": p} for i, p in enumerate(predictions)], output, title=title)
    else:
        emit({k: v for k, v in result.items() if k != "served_model_name"} | {"served_by": result.get(
            "served_model_name")}, output)


@app.command()
@command
def logs(name: str, served: str = typer.Argument(..., help="Served entity name")):
    """The tail of a served entity's model worker log."""
    typer.echo(client().serving.logs(name, served).rstrip("\n"))


@app.command()
@command
def usage(name: str, output: Output = "table"):
    """Requests, errors and latency per served entity, counted by the server process that answers."""
    u = client().serving.usage(name)
    if output == "json":
        emit(u, output)
        return
    t = u["totals"]
    rows = [_usage_row(e["name"], e, e["latency_ms"]) for e in u["served_entities"]]
    rows.append(_usage_row("(total)", t, t["latency_ms"]) | {"rate_limited": t.get("rate_limited")})
    emit(rows, output, ["served_entity", "requests", "errors", "rate_limited", "p50_ms", "p90_ms", "p99_ms",
                        "mean_ms"], title=f"{name} usage")


# ---- helpers -------------------------------------------------------------------------------------
def _entities(specs: Optional[list[str]]) -> list[dict]:
    from lakeforge.client.serving import entity

    out = []
    for spec in specs or []:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"--entity is catalog.schema.model:VERSION[:NAME], got '{spec}'")
        out.append(entity(parts[0], parts[1], parts[2] if len(parts) == 3 else None))
    return out


def _traffic(specs: Optional[list[str]]) -> Optional[dict]:
    if not specs:
        return None
    out = {}
    for spec in specs:
        served, _, pct = spec.rpartition("=")
        if not served or not pct.strip().isdigit():
            raise ValueError(f"--traffic is SERVED=PERCENT, got '{spec}'")
        out[served] = int(pct)
    return out


def _entity_label(e: dict) -> str:
    return f"{e['name']}={e['entity_name']}/{e['entity_version']}"


def _show(ep: dict, output: str) -> None:
    if output == "json":
        emit(ep, output)
        return
    state = ep.get("state") or {}
    title = f"{ep['name']}: {state.get('ready')}, {state.get('config_update')}"
    if state.get("config_update_message"):
        title += f" ({state['config_update_message']})"
    configs = [(label, ep[key]) for key, label in (("config", "config"), ("pending_config", "pending config"))
               if ep.get(key)]
    if not configs:
        typer.echo(title)
    for label, config in configs:
        share = {r["served_entity_name"]: r["traffic_percentage"] for r in config["traffic_config"]["routes"]}
        emit([{"served_entity": e["name"], "model": e["entity_name"], "version": e["entity_version"],
               "workload_size": e.get("workload_size"), "traffic_%": share.get(e["name"], 0),
               "state": (e.get("state") or {}).get("deployment")} for e in config["served_entities"]], output,
             title=f"{title} — {label} v{config.get('config_version')}")


def _usage_row(name: str, figures: dict, latency: dict) -> dict:
    ms = {f"{k}_ms": (round(v, 2) if v is not None else None) for k, v in latency.items()}
    return {"served_entity": name, "requests": figures["requests"], "errors": figures["errors"], **ms}
