"""Tables: catalog.schema.table (Delta)."""

import typer

from lakeforge.cli._common import Output, client, command, emit

NAME = "tables"
app = typer.Typer(no_args_is_help=True)
COLS = ["full_name", "table_type", "owner", "created_at"]


@app.command("list")
@command
def list_(schema: str = typer.Argument(..., help="catalog.schema"), output: Output = "table"):
    emit(client().tables.list(schema), output, COLS)


@app.command()
@command
def get(full_name: str, output: Output = "table"):
    info = client().tables.get(full_name)
    if output == "json":
        emit(info, output)
        return
    emit(info, output, ["full_name", "table_type", "data_source_format", "storage_location", "owner"])
    emit(info.get("columns", []), output, ["position", "name", "type_text", "nullable"], title="columns")


@app.command()
@command
def delete(full_name: str):
    client().tables.delete(full_name)
    typer.echo(f"deleted table {full_name}")
