"""Registered models, their versions and aliases."""

from typing import Optional

import typer

from lakeforge.cli._common import Output, client, command, emit

NAME = "models"
app = typer.Typer(no_args_is_help=True)


@app.command("list")
@command
def list_(schema: Optional[str] = typer.Argument(None, help="catalog.schema (default: all)"),
          output: Output = "table"):
    emit(client().models.list(schema), output, ["full_name", "owner", "comment", "created_at"])


@app.command()
@command
def get(full_name: str, output: Output = "table"):
    emit(client().models.get(full_name), output)


@app.command()
@command
def versions(full_name: str, output: Output = "table"):
    emit(client().models.versions(full_name), output, ["version", "status", "source", "run_id", "created_at"])


@app.command("set-alias")
@command
def set_alias(full_name: str, alias: str, version: int, output: Output = "table"):
    emit(client().models.set_alias(full_name, alias, version), output)


@app.command("delete-alias")
@command
def delete_alias(full_name: str, alias: str):
    client().models.delete_alias(full_name, alias)
    typer.echo(f"deleted alias {alias} of {full_name}")


@app.command()
@command
def delete(full_name: str):
    client().models.delete(full_name)
    typer.echo(f"deleted model {full_name}")
