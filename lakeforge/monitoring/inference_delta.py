"""Delta reads and writes of an inference log's sync: the payload rows added since a version, the
labels table as one label per request id, and the one merge commit that adds rows and sets labels."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import DeltaError

from lakeforge.catalog.storage import to_path
from lakeforge.errors import InvalidState
from lakeforge.monitoring import inference_unpack as unpack

log = logging.getLogger(__name__)

_NEW = "_lakeforge_new_row"  # marks the merge source's new rows (inserted) apart from label updates


def open_table(path: Path, full_name: str) -> DeltaTable:
    try:
        return DeltaTable(str(path))
    except DeltaError as e:
        raise InvalidState(f"The Delta table of '{full_name}' cannot be read: {first_line(e)}") from None


def table_version(location: str) -> int | None:
    try:
        return DeltaTable(str(to_path(location))).version()
    except DeltaError:
        return None


def payload_rows(dt: DeltaTable, path: Path, done: int | None, version: int) -> list[dict]:
    """Payload rows added after version `done` up to `version`: the change data feed's inserts, or the
    whole snapshot at `version` (first sync, or a feed that cannot be read)."""
    if done is not None:
        try:
            reader = dt.load_cdf(starting_version=done + 1, ending_version=version,
                                 columns=[*unpack.PAYLOAD_COLUMNS, "_change_type"])
            table = pa.RecordBatchReader.from_stream(reader).read_all()
            table = table.filter(pc.equal(table.column("_change_type").cast(pa.string()), "insert"))
            return table.select(unpack.PAYLOAD_COLUMNS).to_pylist()
        except (DeltaError, pa.ArrowException, OSError) as e:
            log.info("reading the payload changes after version %s failed (%s); reading the snapshot", done,
                     first_line(e))
    snapshot = DeltaTable(str(path), version=version)
    return snapshot.to_pyarrow_dataset().to_table(columns=unpack.PAYLOAD_COLUMNS).to_pylist()


def read_labels(dt: DeltaTable, full_name: str, request_id_col: str, label_col: str,
                label_type: pa.DataType) -> tuple[pa.Table, int]:
    """(request_id, label) of the labels table, one row per request id (the one in the most recently
    written file wins), labels converted to the flat table's label type; and how many could not be."""
    by_lower = {c.lower(): c for c in pa.schema(dt.schema().to_arrow()).names}
    id_col, value_col = by_lower.get(request_id_col.lower()), by_lower.get(label_col.lower())
    if id_col is None or value_col is None:
        raise InvalidState(f"Labels table '{full_name}' no longer has columns '{request_id_col}' and '{label_col}'")
    raw = dt.to_pyarrow_dataset().to_table(columns=[id_col, value_col, "__filename"])
    adds = pa.table(dt.get_add_actions(flatten=True)).select(["path", "modification_time"])
    written = dict(zip(adds.column("path").to_pylist(), adds.column("modification_time").cast(pa.int64()).to_pylist()))
    files = raw.column("__filename").to_pylist()
    order = sorted(range(raw.num_rows), key=lambda i: written.get(files[i]) or 0)  # stable: file order kept
    ids, values = raw.column(id_col).to_pylist(), raw.column(value_col).to_pylist()
    last = {str(ids[i]): values[i] for i in order if ids[i] is not None and values[i] is not None}
    labels, unusable = unpack.convert(list(last.values()), label_type)
    table = pa.table({unpack.REQUEST_ID: pa.array(list(last), pa.string()), unpack.LABEL: labels})
    return table.filter(pc.is_valid(table.column(unpack.LABEL))), unusable


def with_labels(rows: pa.Table, labels: pa.Table) -> pa.Table:
    if not rows.num_rows:
        return rows
    at = pc.index_in(rows.column(unpack.REQUEST_ID), value_set=labels.column(unpack.REQUEST_ID))
    found = labels.column(unpack.LABEL).take(at)
    column = pc.coalesce(found, rows.column(unpack.LABEL).cast(found.type))
    return rows.set_column(rows.schema.get_field_index(unpack.LABEL), unpack.LABEL, column)


def changed_labels(have: pa.Table, labels: pa.Table) -> pa.Table:
    """(request_id, label) of rows already in the flat table whose label is new or different."""
    if not have.num_rows or not labels.num_rows:
        return labels.slice(0, 0)
    at = pc.index_in(labels.column(unpack.REQUEST_ID), value_set=have.column(unpack.REQUEST_ID))
    labels = labels.filter(pc.is_valid(at))
    new = labels.column(unpack.LABEL)
    current = have.column(unpack.LABEL).cast(new.type).take(pc.drop_null(at))  # aligned with the filtered labels
    changed = pc.or_kleene(pc.is_null(current), pc.not_equal(current, new))
    return labels.filter(pc.fill_null(changed, True))


def merge(flat: DeltaTable, new_rows: pa.Table, changed: pa.Table, props: CommitProperties) -> None:
    """One commit: insert `new_rows` and set the `changed` labels (request_id, label) on older rows."""
    schema = new_rows.schema
    updates = pa.table([changed.column(f.name) if f.name in changed.column_names
                        else pa.nulls(changed.num_rows, f.type) for f in schema], schema=schema)
    source = pa.concat_tables([
        new_rows.append_column(_NEW, pa.array([True] * new_rows.num_rows, pa.bool_())),
        updates.append_column(_NEW, pa.array([False] * updates.num_rows, pa.bool_()))])
    (flat.merge(source, f"t.{unpack.REQUEST_ID} = s.{unpack.REQUEST_ID}", source_alias="s", target_alias="t",
                merge_schema=True, commit_properties=props)
     .when_matched_update({unpack.LABEL: f"s.{unpack.LABEL}"}, predicate=f"NOT s.{_NEW}")
     .when_not_matched_insert_all(predicate=f"s.{_NEW}", except_cols=[_NEW])
     .execute())


def first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


__all__ = ["changed_labels", "merge", "open_table", "payload_rows", "read_labels", "table_version", "with_labels"]
