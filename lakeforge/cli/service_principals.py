"""Service principals: identities for automation."""

import typer

from lakeforge.cli._common import Output, client, command, emit

NAME = "service-principals"
app = typer.Typer(no_args_is_help=True)
COLS = ["id", "applicationId", "displayName", "active"]


@app.command("list")
@command
def list_(output: Output = "table"):
    emit(client().service_principals.list(), output, COLS)


@app.command()
@command
def create(display_name: str, token: bool = typer.Option(False, help="Also create a token and print it"),
           output: Output = "table"):
    lf = client()
    sp = lf.service_principals.create(display_name)
    emit(sp, output, COLS)
    if token:
        issued = lf.tokens.create_for(sp["applicationId"], comment=f"created by CLI for {display_name}")
        typer.echo(f"token (shown once): {issued['token_value']}")


@app.command()
@command
def delete(sp_id: str):
    client().service_principals.delete(sp_id)
    typer.echo(f"deleted service principal {sp_id}")
