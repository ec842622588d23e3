"""Secret scopes and secrets (values are write-only here except `get`)."""

from typing import Optional

import typer

from lakeforge.cli._common import Output, client, command, emit

NAME = "secrets"
app = typer.Typer(no_args_is_help=True)


@app.command("create-scope")
@command
def create_scope(scope: str):
    client().secrets.create_scope(scope)
    typer.echo(f"created scope {scope}")


@app.command("list-scopes")
@command
def list_scopes(output: Output = "table"):
    emit(client().secrets.list_scopes(), output, ["name", "backend_type"])


@app.command("delete-scope")
@command
def delete_scope(scope: str):
    client().secrets.delete_scope(scope)
    typer.echo(f"deleted scope {scope}")


@app.command()
@command
def put(scope: str, key: str, value: Optional[str] = typer.Option(
        None, help="The value; omit to read it from stdin (keeps it out of shell history)")):
    import sys

    client().secrets.put(scope, key, value if value is not None else sys.stdin.read().rstrip("\n"))
    typer.echo(f"stored {scope}/{key}")


@app.command()
@command
def get(scope: str, key: str):
    typer.echo(client().secrets.get(scope, key).decode(errors="replace"))


@app.command("list")
@command
def list_(scope: str, output: Output = "table"):
    emit(client().secrets.list(scope), output, ["key", "last_updated_timestamp"])


@app.command()
@command
def delete(scope: str, key: str):
    client().secrets.delete(scope, key)
    typer.echo(f"deleted {scope}/{key}")


@app.command("put-acl")
@command
def put_acl(scope: str, principal: str, permission: str = typer.Argument(..., help="READ, WRITE or MANAGE")):
    client().secrets.put_acl(scope, principal, permission.upper())
    typer.echo(f"{principal} has {permission.upper()} on {scope}")


@app.command("list-acls")
@command
def list_acls(scope: str, output: Output = "table"):
    emit(client().secrets.list_acls(scope), output, ["principal", "permission"])
