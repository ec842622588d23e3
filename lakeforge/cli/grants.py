"""Grants: who holds which privilege on a securable."""

from typing import Optional

import typer

from lakeforge.cli._common import Output, client, command, emit

NAME = "grants"
app = typer.Typer(no_args_is_help=True)
TYPE = typer.Argument(..., help="catalog, schema, table, volume, function, registered_model or metastore")


@app.command()
@command
def get(securable_type: str = TYPE, full_name: str = typer.Argument(...), principal: Optional[str] = None,
        output: Output = "table"):
    emit(client().grants.get(securable_type, full_name, principal), output, ["principal", "privileges"])


@app.command()
@command
def grant(securable_type: str = TYPE, full_name: str = typer.Argument(...), principal: str = typer.Argument(...),
          privileges: list[str] = typer.Argument(..., help="e.g. USE_CATALOG SELECT"), output: Output = "table"):
    emit(client().grants.grant(securable_type, full_name, principal, *privileges), output, ["principal", "privileges"])


@app.command()
@command
def revoke(securable_type: str = TYPE, full_name: str = typer.Argument(...), principal: str = typer.Argument(...),
           privileges: list[str] = typer.Argument(...), output: Output = "table"):
    emit(client().grants.revoke(securable_type, full_name, principal, *privileges), output,
         ["principal", "privileges"])
