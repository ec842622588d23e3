"""Groups (nested), managed by admins."""

import typer

from lakeforge.cli._common import Output, client, command, emit

NAME = "groups"
app = typer.Typer(no_args_is_help=True)


def _principal_id(lf, name: str) -> str:
    for finder in (lf.users.find, lf.groups.find):
        found = finder(name)
        if found:
            return found["id"]
    sps = lf.service_principals.list(filter=f'displayName eq "{name}"')
    if sps:
        return sps[0]["id"]
    raise ValueError(f"no user, group or service principal named {name}")


@app.command("list")
@command
def list_(output: Output = "table"):
    emit(client().groups.list(), output, ["id", "displayName", "members"])


@app.command()
@command
def create(name: str, output: Output = "table"):
    emit(client().groups.create(name), output, ["id", "displayName"])


@app.command("add-member")
@command
def add_member(group: str, member: str):
    lf = client()
    lf.groups.add_member(_principal_id(lf, group), _principal_id(lf, member))
    typer.echo(f"added {member} to {group}")


@app.command("remove-member")
@command
def remove_member(group: str, member: str):
    lf = client()
    lf.groups.remove_member(_principal_id(lf, group), _principal_id(lf, member))
    typer.echo(f"removed {member} from {group}")


@app.command()
@command
def delete(name: str):
    lf = client()
    lf.groups.delete(_principal_id(lf, name))
    typer.echo(f"deleted group {name}")
