"""What every CLI area shares: the client from global options, output as rich tables or JSON,
and error reporting in one line."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable
from typing import Annotated, Any

import typer

OPTIONS: dict[str, str | None] = {"host": None, "token": None, "profile": None}

Output = Annotated[str, typer.Option("--output", "-o", help="table (default) or json")]


def client():
    from lakeforge.client import Client

    return Client(OPTIONS["host"], OPTIONS["token"], profile=OPTIONS["profile"])


def command(fn: Callable) -> Callable:
    """Turn API errors into one clear line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import httpx

        from lakeforge.client import ApiError

        try:
            return fn(*args, **kwargs)
        except ApiError as e:
            typer.echo(f"error: {e.error_code}: {e.message}", err=True)
            raise typer.Exit(1)
        except httpx.HTTPError as e:
            where = getattr(getattr(e, "request", None), "url", "the server")
            typer.echo(f"error: cannot reach {where}: {e} (is `lakeforge up` running? see --host)", err=True)
            raise typer.Exit(1)
        except (ValueError, OSError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1)

    return wrapper


def emit(data: Any, output: str, columns: list[str] | None = None, title: str | None = None) -> None:
    """Print records as a table (choosing `columns`) or the full JSON."""
    if isinstance(data, Iterable) and not isinstance(data, (dict, str)):
        data = list(data)
    if output == "json":
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    if output != "table":
        raise typer.BadParameter("--output must be table or json")
    from rich.console import Console
    from rich.table import Table

    rows = data if isinstance(data, list) else [data]
    if not rows:
        typer.echo("(none)")
        return
    cols = columns or list(rows[0].keys())
    table = Table(title=title, show_lines=False)
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*[_cell(r.get(c)) for c in cols])
    Console().print(table)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    if isinstance(v, int) and v > 1_000_000_000_000:  # epoch milliseconds
        from datetime import datetime, timezone

        return datetime.fromtimestamp(v / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return str(v)
