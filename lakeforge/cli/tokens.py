"""Personal access tokens of the caller."""

from typing import Optional

import typer

from lakeforge.cli._common import Output, client, command, emit

NAME = "tokens"
app = typer.Typer(no_args_is_help=True)


@app.command("list")
@command
def list_(output: Output = "table"):
    emit(client().tokens.list(), output, ["token_id", "comment", "creation_time", "expiry_time"])


@app.command()
@command
def create(comment: Optional[str] = None, lifetime_seconds: Optional[int] = None, output: Output = "table"):
    issued = client().tokens.create(comment, lifetime_seconds)
    if output == "json":
        emit(issued, output)
    else:
        typer.echo(f"token (shown once): {issued['token_value']}")
        emit(issued["token_info"], output, ["token_id", "comment", "expiry_time"])


@app.command()
@command
def revoke(token_id: str):
    client().tokens.revoke(token_id)
    typer.echo(f"revoked token {token_id}")
