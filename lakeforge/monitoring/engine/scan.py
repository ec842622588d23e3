"""Reading the monitored Delta table: its current data files, the commit that added each, their rows.

The table is read at one version, file by file, so every partial state can be tied to the data file it
came from: `deltalake` gives the version's schema and data files (add actions, with their partition values),
and each file is read with `pyarrow.parquet` (not through a pyarrow dataset: `pyarrow.dataset` imports
pandas, about 50 MB and 0.7 s that a refresh does not need). As a dataset of the table would, a file's
columns are cast to the table's types, columns a file lacks (added to the table later) read as nulls and
partition columns take the file's partition value; tables whose files cannot be read that way (column
mapping, deletion vectors, reader features deltalake does not support) are refused with deltalake's
DeltaProtocolError. A file's fold position is the commit version that added it, then its path: versions
come from the commit JSON files of the Delta log (`_delta_log/<version>.json`); files whose commit has
already been cleaned from the log (older than a checkpoint and the log retention) get version -1, so
they fold first, by path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake import table as delta_table
from deltalake.exceptions import DeltaProtocolError

FILE_COLUMN = "__lf_file"        # position of the row's file in the fold order of the files read
SMALL_FILE_ROWS = 1 << 15       # files with fewer rows are read whole at once
CHUNK_ROWS = 1 << 18             # files are read together until a chunk holds about this many rows


class SourceTable:
    """One version of a Delta table: its schema, its data files (`files`: path relative to the table, as
    the add action names it, decoded -> partition values) and their rows."""

    def __init__(self, path: str, version: int | None = None, table: DeltaTable | None = None):
        """`table`: the DeltaTable of `path` at the version wanted, when the caller has it open."""
        self.path = path
        if table is None:
            table = DeltaTable(path, version=version) if version is not None else DeltaTable(path)
        self.table = table
        self.version = self.table.version()
        _check_readable(self.table)
        self.schema: pa.Schema = pa.schema(self.table.schema().to_arrow())
        actions = pa.table(self.table.get_add_actions(flatten=True))
        paths = [unquote(p) for p in actions.column("path").to_pylist()]
        self.num_records = dict(zip(paths, actions.column("num_records").to_pylist()))
        partitions = [(n.removeprefix("partition."), actions.column(n).to_pylist())
                      for n in actions.column_names if n.startswith("partition.")]
        self.files: dict[str, dict] = {p: {name: values[i] for name, values in partitions}
                                       for i, p in enumerate(paths)}

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
        for path in self.files:
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

    def read_all(self) -> pa.Table:
        """Every row of the table, all its columns (for small tables: the metric tables)."""
        fields = list(self.schema)
        parts = [self._columns(path, fields) for path in sorted(self.files)]
        return pa.concat_tables(parts) if parts else self.schema.empty_table()

    def count(self) -> int:
        """Rows of the table, from the add actions' statistics (or the files' footers where they lack them)."""
        return sum(n if n is not None else pq.ParquetFile(self._local(path)).metadata.num_rows
                   for path, n in self.num_records.items())

    def _columns(self, path: str, columns: list[pa.Field]) -> pa.Table:
        """`columns` of one file, typed as the table's schema says (a column the table lacks: nulls of the
        field's type)."""
        file = pq.ParquetFile(self._local(path))
        in_file = set(file.schema_arrow.names)
        partition = self.files[path]
        # Threads for large files only: on a small one they cost more CPU than they save (several ms).
        threads = (self.num_records.get(path) or SMALL_FILE_ROWS) >= SMALL_FILE_ROWS
        table = file.read(columns=[f.name for f in columns if f.name in in_file and f.name not in partition],
                          use_threads=threads)
        out = []
        for f in columns:
            index = self.schema.get_field_index(f.name)
            want = self.schema.field(index).type if index >= 0 else f.type
            if index >= 0 and f.name in partition:
                column = pa.repeat(pa.scalar(partition[f.name], want), table.num_rows)
            elif index >= 0 and f.name in in_file:
                column = table.column(f.name)
                if column.type != want:
                    column = pc.cast(column, want)
            else:
                column = pa.nulls(table.num_rows, want)
            out.append(column)
        return pa.Table.from_arrays(out, names=[f.name for f in columns])

    def _local(self, path: str) -> str:
        """The file's path on disk: add actions name files relative to the table or by absolute URI."""
        if "://" not in path:
            return os.path.join(self.path, path)
        url = urlparse(path)
        if url.scheme != "file":
            raise DeltaProtocolError(f"data file {path} is not on the local file system")
        return url.path


def _check_readable(table: DeltaTable) -> None:
    """Refuse, as deltalake's pyarrow dataset does, tables whose files alone do not give their rows."""
    protocol = table.protocol()
    features = set(protocol.reader_features or ())
    if protocol.min_reader_version > delta_table.MAX_SUPPORTED_READER_VERSION:
        raise DeltaProtocolError(f"The table's minimum reader version {protocol.min_reader_version} is greater "
                                 f"than the maximum supported version {delta_table.MAX_SUPPORTED_READER_VERSION}")
    unsupported = features - delta_table.SUPPORTED_READER_FEATURES if protocol.min_reader_version >= 3 else set()
    unsupported |= features & {"columnMapping", "deletionVectors"}
    if unsupported:
        raise DeltaProtocolError(f"The table has set these reader features: {sorted(unsupported)} "
                                 "but these are not supported by the monitoring engine's reader.")


def referenced_columns(exprs, schema: pa.Schema) -> set[str]:
    """Columns of `schema` that SQL expressions may read: every identifier in them that names a column
    (all columns when one does not parse)."""
    names: set[str] = set()
    if not exprs:
        return names
    import sqlglot  # here only: about 20 MB and 0.3 s to import, for monitors with slices
    from sqlglot import exp

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
