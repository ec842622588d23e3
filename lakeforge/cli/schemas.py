"""Schemas: catalog.schema."""

from typing import Optional

import typer

from lakeforge.cli._common import Output, client, command, emit

NAME = "schemas"
app = typer.Typer(no_args_is_help=True)
COLS = ["full_name", "owner", "comment", "created_at"]


@app.command("list")
@command
def list_(catalog: str, output: Output = "table"):
    emit(client().schemas.list(catalog), output, COLS)


@app.command()
@command
def get(full_name: str, output: Output = "table"):
    emit(client().schemas.get(full_name), output)


@app.command()
@command
def create(full_name: str, comment: Optional[str] = None, output: Output = "table"):
    emit(client().schemas.create(full_name, comment=comment), output, COLS)


@app.command()
@command
def delete(full_name: str, force: bool = typer.Option(False, help="Also delete everything inside")):
    client().schemas.delete(full_name, force=force)
    typer.echo(f"deleted schema {full_name}")
