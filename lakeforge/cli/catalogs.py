"""Catalogs: the first level of the namespace."""

from typing import Optional

import typer

from lakeforge.cli._common import Output, client, command, emit

NAME = "catalogs"
app = typer.Typer(no_args_is_help=True)
COLS = ["name", "owner", "comment", "created_at"]


@app.command("list")
@command
def list_(output: Output = "table"):
    emit(client().catalogs.list(), output, COLS)


@app.command()
@command
def get(name: str, output: Output = "table"):
    emit(client().catalogs.get(name), output)


@app.command()
@command
def create(name: str, comment: Optional[str] = None, output: Output = "table"):
    emit(client().catalogs.create(name, comment=comment), output, COLS)


@app.command()
@command
def update(name: str, new_name: Optional[str] = None, comment: Optional[str] = None, owner: Optional[str] = None,
           output: Output = "table"):
    emit(client().catalogs.update(name, new_name=new_name, comment=comment, owner=owner), output, COLS)


@app.command()
@command
def delete(name: str, force: bool = typer.Option(False, help="Also delete everything inside")):
    client().catalogs.delete(name, force=force)
    typer.echo(f"deleted catalog {name}")
