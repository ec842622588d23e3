"""Run a SQL statement over catalog tables and print the result."""

import typer

from lakeforge.cli._common import Output, client, command, emit

NAME = "sql"


@command
def show(statement: str = typer.Argument(..., help='e.g. "SELECT * FROM main.default.orders LIMIT 10"'),
         catalog: str = typer.Option(None, help="default catalog for unqualified names (main)"),
         schema: str = typer.Option(None, help="default schema for unqualified names (default)"),
         limit: int = typer.Option(None, "--limit", help="at most this many rows"),
         output: Output = "table"):
    table = client().sql(statement, catalog=catalog, schema=schema, row_limit=limit)
    rows = table.to_pylist()
    if output == "json":
        emit(rows, output)
        return
    if not rows:
        typer.echo(f"(no rows; columns: {', '.join(table.column_names)})")
        return
    # Text as SQL shows it: no guessing that a large number is a time.
    text = [{k: v if v is None or isinstance(v, str) else str(v) for k, v in r.items()} for r in rows]
    emit(text, output, table.column_names, title=f"{table.num_rows} row(s)")
