"""Registry searches: MLflow's own filter and order_by semantics (its SearchModelUtils and
SearchModelVersionUtils) over the registered models and versions the caller may EXECUTE.

The database does the work, so a search reads about one page of rows: visibility (the access
control's `allowed_where`, the same rules as each single decision), every filter it can answer
exactly or as a superset, MLflow's order, and paging. MLflow's own matcher then checks each row read,
so results are MLflow's to the letter on SQLite and PostgreSQL alike. A page token is an offset into
the rows the database returns, as in MLflow's SQL store; when the database already answered the filter
exactly (names, tags compared with `=`, versions, run ids), that is an offset into the results.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

from sqlalchemy import Float, Integer, LargeBinary, cast, func, literal_column, or_, select
from sqlalchemy.orm import Session, aliased

from lakeforge import clock
from lakeforge.catalog import securables as sec
from lakeforge.catalog.access import SecurableColumns
from lakeforge.catalog.privileges import Kind, P
from lakeforge.catalog.store import ModelVersionRow, SecurableRow
from lakeforge.errors import InvalidParameter
from lakeforge.identity.principal import Principal

MODELS_PAGE, MODELS_MAX = 100, 1000  # MLflow's defaults for search_registered_models
VERSIONS_PAGE, VERSIONS_MAX = 10_000, 200_000  # and for search_model_versions
IS_PROMPT_TAG = "mlflow.prompt.is_prompt"  # MLflow matches its absence specially: never narrowed in SQL

# Plain rows with the tables' columns as attributes: rendering reads them as it reads ORM objects,
# without the cost of building (and tracking) an ORM object per row.
_MODEL = [getattr(SecurableRow, c.key) for c in SecurableRow.__table__.columns]
_VERSION = [getattr(ModelVersionRow, c.key) for c in ModelVersionRow.__table__.columns]
_SCHEMA = aliased(SecurableRow, name="model_schema")
_CATALOG = aliased(SecurableRow, name="model_catalog")
_MODEL_CHAIN = [SecurableColumns(Kind.CATALOG, _CATALOG.id, _CATALOG.owner_id),
                SecurableColumns(Kind.SCHEMA, _SCHEMA.id, _SCHEMA.owner_id),
                SecurableColumns(Kind.REGISTERED_MODEL, SecurableRow.id, SecurableRow.owner_id)]


def _offset(page_token: str | None) -> int:
    token = (page_token or "").strip()
    if token and not token.isdigit():
        raise InvalidParameter(f"Invalid page_token '{token[:40]}'")
    return int(token or 0)


def _limit(max_results, default: int, maximum: int) -> int:
    if max_results is None or max_results == 0:
        return default
    if max_results < 0:
        raise InvalidParameter("max_results must be a positive number")
    return min(int(max_results), maximum)


def _mlflow(fn):
    """MLflow's parsing and matching; its errors become ours."""
    from mlflow.exceptions import MlflowException

    try:
        return fn()
    except MlflowException as e:
        raise InvalidParameter(e.message) from None


class _Dialect:
    """The few expressions SQLite and PostgreSQL spell differently, each equal to what MLflow's
    Python matcher and sort compare."""

    def __init__(self, s: Session):
        self.pg = s.get_bind().dialect.name == "postgresql"

    def text(self, column):
        """Python orders strings by code point: so does SQLite; PostgreSQL does under collation "C"."""
        return column.collate("C") if self.pg else column

    def ms(self, column):
        """`clock.to_ms` in SQL, float arithmetic included: int(microseconds / 1e6 * 1000)."""
        if self.pg:
            return func.floor(cast(func.extract("epoch", column), Float) * 1000)
        # SQLite stores UTC as 'YYYY-MM-DD HH:MM:SS.ffffff'.
        micros = (cast(func.strftime("%s", func.substr(column, 1, 19)), Integer) * 1_000_000
                  + cast(func.substr(column, 21, 6), Integer))
        return cast(micros / literal_column("1000000.0") * literal_column("1000"), Integer)

    def like(self, pattern: str) -> str:
        """MLflow's LIKE has no escape character; PostgreSQL's is a backslash."""
        return pattern.replace("\\", "\\\\") if self.pg else pattern

    def non_ascii(self, column):
        if self.pg:
            return func.octet_length(column) != func.char_length(column)
        return func.length(cast(column, LargeBinary)) != func.length(column)

    def tag(self, spec, key: str):
        """The value of tag `key` in a spec JSON (NULL when absent)."""
        if self.pg:
            from sqlalchemy.dialects.postgresql import JSONB

            return func.jsonb_extract_path_text(cast(spec, JSONB), "tags", key)
        tags = func.json_each(spec, "$.tags").table_valued("key", "value")
        return select(tags.c.value).where(tags.c.key == key).scalar_subquery()


def _string_match(sql: _Dialect, column, comparator: str, value, one_line: bool):
    """Rows that may match `column <comparator> value`: exactly, or a superset MLflow's matcher
    narrows. LIKE is left to MLflow for values that may hold a newline (its regex differs there)."""
    if comparator in ("IN", "NOT IN"):
        if not isinstance(value, (list, set, tuple)):
            return None
        return column.in_(list(value)) if comparator == "IN" else column.not_in(list(value))
    if not isinstance(value, str):
        return None
    if comparator == "=":
        return column == value
    if comparator == "!=":
        return column != value
    if comparator == "LIKE" and one_line:  # SQLite's LIKE ignores ASCII case: a superset
        return column.like(sql.like(value))
    if comparator == "ILIKE" and one_line and value.isascii():
        # Python's IGNORECASE also folds some non-ASCII letters onto ASCII ones: keep those rows.
        return or_(column.ilike(sql.like(value)), sql.non_ascii(column))
    return None


def _tag_match(sql: _Dialect, spec, key: str, comparator: str, value):
    if key == IS_PROMPT_TAG:
        return None
    tag = sql.tag(spec, key)
    return tag == value if comparator == "=" and isinstance(value, str) else tag.is_not(None)


def _where(search, clauses: list[dict], sql: _Dialect, strings: dict, numbers: dict, spec) -> list:
    """SQL conditions for MLflow's parsed clauses, each first checked as MLflow's matcher checks it."""
    out = []
    for c in clauses:
        kind, key, comparator, value = c["type"], c["key"], c["comparator"].upper(), c["value"]
        if search.is_string_attribute(kind, key, comparator):
            column, one_line = strings[key]
            out.append(_string_match(sql, column, comparator, value, one_line))
        elif search.is_numeric_attribute(kind, key, comparator):
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise InvalidParameter(f"Invalid value '{value}' for {key}: expected an integer") from None
            out.append(search.get_comparison_func(comparator)(numbers[key], number))
        elif search.is_tag(kind, comparator):
            out.append(_tag_match(sql, spec, key, comparator, value))
        else:
            raise InvalidParameter(f"Invalid search expression type '{kind}'")
    return [w for w in out if w is not None]


def _order(parsed: list[tuple[str, str, bool]], columns: dict) -> list:
    out = []
    for kind, key, ascending in parsed:
        if kind != "attribute":
            raise InvalidParameter(f"Invalid order_by entity: {kind}")
        out.append(columns[key].asc() if ascending else columns[key].desc())
    return out


def _scan(s: Session, q, start: int, limit: int, matches: Callable[[list], list]) -> tuple[list, str | None]:
    """One page of `q` from offset `start`: rows are read a page (and one) at a time and kept when
    `matches` keeps them; the token is the offset after the last row returned, given only when a
    further row matches."""
    out: list = []
    pos, chunk, end = start, limit + 1, start
    while True:
        batch = s.execute(q.offset(pos).limit(chunk)).all()
        for i in matches(list(range(len(batch))), batch):
            if len(out) == limit:
                return out, str(end)
            out.append(batch[i])
            end = pos + i + 1
        if len(batch) < chunk:
            return out, None
        pos, chunk = pos + chunk, min(chunk * 2, 10_000)


def _matcher(search, filter_string: str | None, describe: Callable) -> Callable[[list, list], list]:
    """Indexes of the rows MLflow's own filter keeps."""
    if not filter_string:
        return lambda indexes, batch: indexes

    def matches(indexes, batch):
        found = [describe(batch[i], i) for i in indexes]
        return [m.index for m in _mlflow(lambda: search.filter(found, filter_string))]

    return matches


def registered_models(svc, caller: Principal, filter_string: str | None, max_results: int | None,
                      order_by: list[str], page_token: str | None) -> dict:
    from mlflow.utils.search_utils import SearchModelUtils as Search

    limit = _limit(max_results, MODELS_PAGE, MODELS_MAX)
    start = _offset(page_token)
    clauses = _mlflow(lambda: Search.parse_search_filter(filter_string)) if filter_string else []
    ordering = _mlflow(lambda: [Search.parse_order_by_for_search_registered_models(o) for o in order_by or []])
    if not any(key == "name" for _, key, _ in ordering):
        ordering.append(("attribute", "name", True))
    m = SecurableRow
    with svc.db.read() as s:
        sql = _Dialect(s)
        where = _mlflow(lambda: _where(Search, clauses, sql, {"name": (m.full_name, True)}, {}, m.spec))
        q = (select(*_MODEL).join(_SCHEMA, _SCHEMA.id == m.parent_id).join(_CATALOG, _CATALOG.id == _SCHEMA.parent_id)
             .where(m.kind == Kind.REGISTERED_MODEL.value, svc.access.allowed_where(caller, P.EXECUTE, _MODEL_CHAIN),
                    *where)
             .order_by(*_order(ordering, {"name": sql.text(m.full_name), "creation_timestamp": sql.ms(m.created_at),
                                          "last_updated_timestamp": sql.ms(m.updated_at)})))

        def describe(r, index):
            return SimpleNamespace(name=r.full_name, creation_timestamp=clock.to_ms(r.created_at),
                                   last_updated_timestamp=clock.to_ms(r.updated_at),
                                   _tags=sec.load_json(r.spec).get("tags") or {}, index=index)

        page, token = _scan(s, q, start, limit, _matcher(Search, filter_string, describe))
        return {"registered_models": svc.models_out(s, page), "next_page_token": token}


def model_versions(svc, caller: Principal, filter_string: str | None, max_results: int | None,
                   order_by: list[str], page_token: str | None) -> dict:
    from mlflow.utils.search_utils import SearchModelVersionUtils as Search

    limit = _limit(max_results, VERSIONS_PAGE, VERSIONS_MAX)
    start = _offset(page_token)
    clauses = _mlflow(lambda: Search.parse_search_filter(filter_string)) if filter_string else []
    ordering = _mlflow(lambda: [Search.parse_order_by_for_search_model_versions(o) for o in order_by or []])
    if not any(key == "name" for _, key, _ in ordering):
        ordering.append(("attribute", "name", True))
    ordering.append(("attribute", "version_number", False))  # MLflow's last tie-breaker, always added
    m, v = SecurableRow, ModelVersionRow
    with svc.db.read() as s:
        sql = _Dialect(s)
        strings = {"name": (m.full_name, True), "run_id": (func.coalesce(v.run_id, ""), False),
                   "source_path": (func.coalesce(v.source, ""), False)}
        where = _mlflow(lambda: _where(Search, clauses, sql, strings, {"version_number": v.version}, v.spec))
        q = (select(*_VERSION, m.full_name.label("model_full_name")).join(m, m.id == v.model_id)
             .join(_SCHEMA, _SCHEMA.id == m.parent_id).join(_CATALOG, _CATALOG.id == _SCHEMA.parent_id)
             .where(m.kind == Kind.REGISTERED_MODEL.value, svc.access.allowed_where(caller, P.EXECUTE, _MODEL_CHAIN),
                    *where)
             .order_by(*_order(ordering, {"name": sql.text(m.full_name), "version_number": v.version,
                                          "creation_timestamp": sql.ms(v.created_at),
                                          "last_updated_timestamp": sql.ms(v.updated_at)})))

        def describe(r, index):
            return SimpleNamespace(name=r.model_full_name, version=r.version, run_id=r.run_id or "",
                                   source=r.source or "", tags=sec.load_json(r.spec).get("tags") or {},
                                   current_stage="None", creation_timestamp=clock.to_ms(r.created_at),
                                   last_updated_timestamp=clock.to_ms(r.updated_at), index=index)

        page, token = _scan(s, q, start, limit, _matcher(Search, filter_string, describe))
        ids = sorted({r.model_id for r in page})
        models = {row.id: row for i in range(0, len(ids), 1000)
                  for row in s.execute(select(*_MODEL).where(m.id.in_(ids[i:i + 1000])))}
        return {"model_versions": svc.versions_out(s, [(models[r.model_id], r) for r in page]),
                "next_page_token": token}


__all__ = ["model_versions", "registered_models"]
