"""Reading the monitored Delta table: its current data files, the commit that added each, their rows.

The table is read with `deltalake` at one version (the Arrow dataset of that version's files), file by
file, so every partial state can be tied to the data file it came from. A file's fold position is the
commit version that added it, then its path: versions come from the commit JSON files of the Delta log
(`_delta_log/<version>.json`); files whose commit has already been cleaned from the log (older than a
checkpoint and the log retention) get version -1, so they fold first, by path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import sqlglot
from deltalake import DeltaTable
from sqlglot import exp

FILE_COLUMN = "__lf_file"        # position of the row's file in the fold order of the files read
SMALL_FILE_ROWS = 1 << 15       # files with fewer rows are read whole at once
CHUNK_ROWS = 1 << 18             # files are read together until a chunk holds about this many rows


class SourceTable:
    """One version of a Delta table."""

    def __init__(self, path: str, version: int | None = None):
        self.path = path
        self.table = DeltaTable(path, version=version) if version is not None else DeltaTable(path)
        self.version = self.table.version()
        self.dataset = self.table.to_pyarrow_dataset()
        self.schema: pa.Schema = self.dataset.schema
        self.fragments = {f.path: f for f in self.dataset.get_fragments()}
        actions = pa.table(self.table.get_add_actions(flatten=True))
        self.num_records = dict(zip((unquote(p) for p in actions.column("path").to_pylist()),
                                    actions.column("num_records").to_pylist()))

    def commit_timestamp_us(self) -> int:
        for entry in self.table.history(1):
            return int(entry.get("timestamp", 0)) * 1000
        return 0

    def added_since(self, since: int) -> dict[str, int]:
        """Path -> the last commit in (since, version] that added it, read from the commit files."""
        added: dict[str, int] = {}
        log = Path(self.path) / "_delta_log"
        for v in range(since + 1, self.version + 1):
            commit = log / f"{v:020d}.json"
            if not commit.exists():
                continue
            with commit.open() as f:
                for line in f:
                    if line.startswith('{"add"') or '"add"' in line[:12]:
                        action = json.loads(line).get("add")
                        if action:
                            added[unquote(action["path"])] = v
        return added

    def file_versions(self, known: dict[str, int], since: int) -> tuple[dict[str, int], set[str]]:
        """The commit version of every current file, and the paths added after `since` (new to the
        caller, or re-added, e.g. by a restore). `known` maps paths the caller already knows to versions."""
        added = self.added_since(since)
        versions, new = {}, set()
        for path in self.fragments:
            if path in added:
                versions[path] = added[path]
                new.add(path)
            elif path in known:
                versions[path] = known[path]
            else:
                versions[path] = -1
                new.add(path)
        return versions, new

    def read(self, paths: list[str], columns: list[pa.Field], others: list[pa.Field] = ()) -> Iterator[Chunk]:
        """Rows of `paths` (in the given fold order) as chunks of whole files, with `columns` read and a
        FILE_COLUMN indexing `paths`. The `others` are read on demand, one at a time (Chunk.column), so a
        refresh never holds a large decoded table whole; small files are read whole at once instead
        (opening a file per column would cost more than their rows). Columns the table lacks (a baseline
        without the timestamp column, say) read as nulls of the given type."""
        parts, names, rows = [], [], 0
        for i, path in enumerate(paths):
            small = others and (self.num_records.get(path) or SMALL_FILE_ROWS) < SMALL_FILE_ROWS
            wanted = columns + [f for f in others if f.name not in {c.name for c in columns}] if small else columns
            table = self._columns(path, list(wanted))
            table = table.append_column(FILE_COLUMN, pa.array(np.full(table.num_rows, i, np.int32)))
            parts.append(table)
            names.append(path)
            rows += table.num_rows
            if rows >= CHUNK_ROWS:
                yield Chunk(self, parts, names, [c.name for c in columns])
                parts, names, rows = [], [], 0
        if parts:
            yield Chunk(self, parts, names, [c.name for c in columns])

    def _columns(self, path: str, columns: list[pa.Field]) -> pa.Table:
        present = [f.name for f in columns if self.schema.get_field_index(f.name) >= 0]
        fragment = self.fragments[path]
        table = fragment.to_table(schema=self.dataset.schema, columns=present)
        for f in columns:
            if f.name not in present:
                table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
        return table.select([f.name for f in columns])


def referenced_columns(exprs, schema: pa.Schema) -> set[str]:
    """Columns of `schema` that SQL expressions may read: every identifier in them that names a column
    (all columns when one does not parse)."""
    names: set[str] = set()
    for expr in exprs:
        try:
            tree = sqlglot.parse_one(expr, read="duckdb")
        except sqlglot.errors.SqlglotError:
            return set(schema.names)
        names |= {i.name for i in tree.find_all(exp.Identifier)}
    lowered = {n.lower() for n in names}
    return {n for n in schema.names if n in names or n.lower() in lowered}


class Chunk:
    """Rows of whole files: some columns read up front, the others on demand."""

    def __init__(self, source: SourceTable, parts: list[pa.Table], paths: list[str], keys: list[str]):
        self.source, self.parts, self.paths = source, parts, paths
        self.table = pa.concat_tables([part.select([*keys, FILE_COLUMN]) for part in parts])
        self.num_rows = self.table.num_rows

    def column(self, f: pa.Field | str) -> pa.ChunkedArray:
        name = f if isinstance(f, str) else f.name
        if name in self.table.column_names:
            return self.table.column(name)
        pieces = [part.column(name) if name in part.column_names else self.source._columns(path, [f]).column(0)
                  for part, path in zip(self.parts, self.paths)]
        return pa.chunked_array([c for piece in pieces for c in piece.chunks], type=pieces[0].type)


def fold_order(versions: dict[str, int], paths) -> list[str]:
    return sorted(paths, key=lambda p: (versions[p], p))
