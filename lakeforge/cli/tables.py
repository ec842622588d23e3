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


# ---- data ----------------------------------------------------------------------------------------
DATA_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "json", ".jsonl": "json",
                ".ndjson": "json", ".arrows": "arrow-stream", ".arrow": "arrow-file"}


@app.command()
@command
def write(file: str = typer.Argument(..., help="A .csv, .parquet, .jsonl (JSON lines) or .arrows file"),
          full_name: str = typer.Argument(..., help="catalog.schema.table (created on the first write)"),
          mode: str = typer.Option("append", "--mode", help="append or overwrite"),
          schema_mode: str = typer.Option(None, "--schema-mode", help="merge (add new columns) or overwrite")):
    """Write a file's rows into a table; creates a managed table on the first write."""
    result = client().tables.write(_read_file(file), full_name, mode=mode, schema_mode=schema_mode)
    note = " (table created)" if result.get("created") else ""
    typer.echo(f"wrote {result['num_rows']} rows to {result['full_name']}: version {result['version']}{note}")


@app.command()
@command
def read(full_name: str, version: int = typer.Option(None, "--version", help="Time travel to this version"),
         limit: int = typer.Option(20, "--limit", help="Rows to show (0: all)"),
         columns: str = typer.Option(None, "--columns", help="Comma-separated column names"),
         output: Output = "table"):
    """Show a table's rows (the latest version unless --version)."""
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    data = client().tables.read(full_name, version=version, columns=cols, limit=limit or None)
    rows = data.to_pylist()
    if output == "table" and not rows:
        typer.echo(f"(no rows; columns: {', '.join(data.column_names)})")
        return
    emit(rows, output, data.column_names)


@app.command()
@command
def history(full_name: str, limit: int = typer.Option(None, "--limit", help="Newest commits to show"),
            output: Output = "table"):
    """The table's Delta commits, newest first, with who wrote each."""
    emit(client().tables.history(full_name, limit=limit), output,
         ["version", "timestamp", "operation", "user", "num_rows"])


def _read_file(file: str):
    """A streaming Arrow reader for CSV, Parquet and Arrow files; JSON lines are read whole."""
    from pathlib import Path

    path = Path(file)
    kind = DATA_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"unknown file type '{path.suffix}': use one of {', '.join(sorted(DATA_FORMATS))}")
    if not path.is_file():
        raise ValueError(f"no such file: {file}")
    import pyarrow as pa

    if kind == "csv":
        from pyarrow import csv

        return csv.open_csv(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        return pa.RecordBatchReader.from_batches(pf.schema_arrow, pf.iter_batches())
    if kind == "json":
        from pyarrow import json as pa_json

        return pa_json.read_json(path).to_reader()
    if kind == "arrow-file":
        f = pa.ipc.open_file(pa.memory_map(str(path)))
        return pa.RecordBatchReader.from_batches(f.schema, (f.get_batch(i) for i in range(f.num_record_batches)))
    return pa.ipc.open_stream(pa.memory_map(str(path)))
