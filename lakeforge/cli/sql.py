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
    if not rows and table.num_columns:
        rows = []
        typer.echo(" | ".join(table.column_names))
    emit(rows, output, table.column_names, title=f"{table.num_rows} row(s)")
