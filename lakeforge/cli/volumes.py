"""Volumes and their files: /Volumes/catalog/schema/volume/..."""

from pathlib import Path

import typer

from lakeforge.cli._common import Output, client, command, emit

NAME = "volumes"
app = typer.Typer(no_args_is_help=True)
COLS = ["full_name", "volume_type", "owner", "storage_location"]


@app.command("list")
@command
def list_(schema: str = typer.Argument(..., help="catalog.schema"), output: Output = "table"):
    emit(client().volumes.list(schema), output, COLS)


@app.command()
@command
def create(full_name: str, output: Output = "table"):
    emit(client().volumes.create(full_name), output, COLS)


@app.command()
@command
def delete(full_name: str):
    client().volumes.delete(full_name)
    typer.echo(f"deleted volume {full_name}")


@app.command()
@command
def upload(local: Path, path: str = typer.Argument(..., help="/Volumes/catalog/schema/volume/file"),
           overwrite: bool = True):
    client().volumes.upload(path, local.read_bytes(), overwrite=overwrite)
    typer.echo(f"uploaded {local} to {path}")


@app.command()
@command
def download(path: str, local: Path):
    local.write_bytes(client().volumes.download(path))
    typer.echo(f"downloaded {path} to {local}")


@app.command()
@command
def ls(path: str, output: Output = "table"):
    emit(client().volumes.list_files(path), output, ["name", "is_directory", "file_size", "last_modified"])
