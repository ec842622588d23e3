"""Users (admins manage them)."""

from typing import Optional

import typer

from lakeforge.cli._common import Output, client, command, emit

NAME = "users"
app = typer.Typer(no_args_is_help=True)
COLS = ["id", "userName", "displayName", "active"]


@app.command("list")
@command
def list_(filter: Optional[str] = typer.Option(None, help='SCIM filter, e.g. userName eq "ana"'),
          output: Output = "table"):
    emit(client().users.list(filter), output, COLS)


@app.command()
@command
def create(user_name: str, display_name: Optional[str] = None,
           token: bool = typer.Option(False, help="Also create an access token for the user and print it"),
           output: Output = "table"):
    lf = client()
    user = lf.users.create(user_name, display_name)
    emit(user, output, COLS)
    if token:
        issued = lf.tokens.create_for(user["id"], comment=f"created by CLI for {user_name}")
        typer.echo(f"token (shown once): {issued['token_value']}")


@app.command()
@command
def delete(user_name: str):
    lf = client()
    user = lf.users.find(user_name)
    if user is None:
        raise ValueError(f"user {user_name} does not exist")
    lf.users.delete(user["id"])
    typer.echo(f"deleted user {user_name}")


@app.command()
@command
def me(output: Output = "table"):
    emit(client().users.me(), output, ["id", "userName", "displayName", "groups"])
