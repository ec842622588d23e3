"""Registry searches: MLflow's own filter and order_by semantics (its SearchModelUtils and
SearchModelVersionUtils) over the registered models and versions the caller may EXECUTE, paged by
offset. `name = '...'` narrows the version search to that model in the query."""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select

from lakeforge import clock
from lakeforge.catalog import securables as sec
from lakeforge.catalog.models import model_spec
from lakeforge.catalog.privileges import Kind, P
from lakeforge.catalog.store import ModelVersionRow, SecurableRow
from lakeforge.errors import InvalidParameter
from lakeforge.identity.principal import Principal

MODELS_PAGE, MODELS_MAX = 100, 1000  # MLflow's defaults for search_registered_models
VERSIONS_PAGE, VERSIONS_MAX = 10_000, 200_000  # and for search_model_versions


def _page(items: list, page_token: str | None, limit: int) -> tuple[list, str | None]:
    token = (page_token or "").strip()
    if token and not token.isdigit():
        raise InvalidParameter(f"Invalid page_token '{token[:40]}'")
    start = int(token or 0)
    return items[start:start + limit], (str(start + limit) if start + limit < len(items) else None)


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


def registered_models(svc, caller: Principal, filter_string: str | None, max_results: int | None,
                      order_by: list[str], page_token: str | None) -> dict:
    from mlflow.utils.search_utils import SearchModelUtils as Search

    limit = _limit(max_results, MODELS_PAGE, MODELS_MAX)
    with svc.db.read() as s:
        rows = s.scalars(select(SecurableRow).where(SecurableRow.kind == Kind.REGISTERED_MODEL.value)).all()
        found = [SimpleNamespace(name=r.full_name, creation_timestamp=clock.to_ms(r.created_at),
                                 last_updated_timestamp=clock.to_ms(r.updated_at),
                                 _tags=model_spec(r).get("tags") or {}, row=r)
                 for r in rows if svc.access.allowed(caller, P.EXECUTE, sec.securable_of(s, r))]
        found = _mlflow(lambda: Search.sort(Search.filter(found, filter_string), order_by))
        page, token = _page(found, page_token, limit)
        return {"registered_models": svc.models_out(s, [m.row for m in page]), "next_page_token": token}


def model_versions(svc, caller: Principal, filter_string: str | None, max_results: int | None,
                   order_by: list[str], page_token: str | None) -> dict:
    from mlflow.utils.search_utils import SearchModelVersionUtils as Search

    limit = _limit(max_results, VERSIONS_PAGE, VERSIONS_MAX)
    clauses = _mlflow(lambda: Search.parse_search_filter(filter_string)) if filter_string else []
    named = {c["value"] for c in clauses if c.get("type") == "attribute" and c.get("key") == "name"
             and c.get("comparator") == "=" and isinstance(c.get("value"), str)}
    with svc.db.read() as s:
        q = select(SecurableRow).where(SecurableRow.kind == Kind.REGISTERED_MODEL.value)
        if named:
            q = q.where(SecurableRow.full_name.in_(named))
        models = {m.id: m for m in s.scalars(q) if svc.access.allowed(caller, P.EXECUTE, sec.securable_of(s, m))}
        rows = s.scalars(select(ModelVersionRow).where(ModelVersionRow.model_id.in_(list(models)))).all() \
            if models else []
        found = [SimpleNamespace(name=models[r.model_id].full_name, version=r.version, run_id=r.run_id or "",
                                 source=r.source or "", tags=sec.load_json(r.spec).get("tags") or {},
                                 current_stage="None", creation_timestamp=clock.to_ms(r.created_at),
                                 last_updated_timestamp=clock.to_ms(r.updated_at), row=r) for r in rows]
        found = _mlflow(lambda: Search.sort(Search.filter(found, filter_string), order_by))
        page, token = _page(found, page_token, limit)
        return {"model_versions": [svc.version_out(s, models[v.row.model_id], v.row) for v in page],
                "next_page_token": token}
