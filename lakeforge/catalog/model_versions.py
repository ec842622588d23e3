"""Model versions (Unity Catalog `/models/.../versions`) and their temporary credentials.

Lifecycle (the reference server's): create gives version = max + 1, status PENDING_REGISTRATION and a
fresh storage location; the client writes the files there itself, then finalize moves the version to
READY and records a sha256 manifest of its files (see model_manifest). Write credentials are only
vended while PENDING_REGISTRATION, so a READY version is immutable.

Privileges: CREATE_MODEL on the schema or MANAGE on the model to create, write and finalize a version;
EXECUTE to read one; MANAGE to update or delete one.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from lakeforge import clock, names
from lakeforge.audit.context import note_securable
from lakeforge.catalog import securables as sec
from lakeforge.catalog.model_manifest import compute_manifest, verify_manifest
from lakeforge.catalog.models import (RegisteredModelService, aliases_of, bump_version, get_model, get_version,
                                      parse_version)
from lakeforge.catalog.privileges import P
from lakeforge.catalog.storage import to_path
from lakeforge.catalog.store import ModelAliasRow, ModelVersionRow, SecurableRow
from lakeforge.errors import InvalidParameter, InvalidState, NotFound
from lakeforge.identity.principal import Principal
from lakeforge.store import new_id

PENDING = "PENDING_REGISTRATION"
READY = "READY"
FAILED = "FAILED_REGISTRATION"
READ = "READ_MODEL_VERSION"
READ_WRITE = "READ_WRITE_MODEL_VERSION"
CREDENTIAL_LIFETIME = timedelta(hours=1)


class ModelVersionService:
    def __init__(self, models: RegisteredModelService):
        self.models = models
        self.catalog = models.catalog
        self.db = models.db

    def create(self, caller: Principal, catalog_name: str, schema_name: str, model_name: str, source: str,
               run_id: str | None = None, comment: str | None = None) -> dict:
        for value, what in ((catalog_name, "catalog_name"), (schema_name, "schema_name"), (model_name, "model_name")):
            names.check_name(value, what)
        if not isinstance(source, str) or not source:
            raise InvalidParameter("source is required")
        if run_id is not None and len(run_id) > 64:
            raise InvalidParameter("run_id must be at most 64 characters")
        full_name = names.join(catalog_name, schema_name, model_name)
        note_securable(full_name)
        with self.db.write() as s:
            model = get_model(s, full_name, lock=True)
            self.models.check_create_version(s, caller, model)
            latest = s.scalar(select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model_id == model.id))
            version = bump_version(model, latest)
            version_id = new_id()
            now = clock.now()
            row = ModelVersionRow(id=version_id, model_id=model.id, version=version, source=source,
                                  run_id=run_id or None, status=PENDING, comment=comment,
                                  storage_location=f"{model.storage_location.rstrip('/')}/versions/{version_id}",
                                  created_at=now, created_by=caller.name, updated_at=now, updated_by=caller.name)
            s.add(row)
            s.flush()
            # Inside the transaction: if the directory cannot be made, the version is not created.
            to_path(row.storage_location).mkdir(parents=True, exist_ok=True)
            return self.info(s, model, row)

    def get(self, caller: Principal, full_name: str, version: Any, include_aliases: bool = False) -> dict:
        number = parse_version(version)
        with self.db.read() as s:
            model = get_model(s, full_name)
            self.catalog.check(s, caller, P.EXECUTE, model)
            return self.info(s, model, get_version(s, model, number), include_aliases)

    def get_by_alias(self, caller: Principal, full_name: str, alias: str, include_aliases: bool = False) -> dict:
        with self.db.read() as s:
            model = get_model(s, full_name)
            self.catalog.check(s, caller, P.EXECUTE, model)
            row = s.get(ModelAliasRow, (model.id, alias))
            if row is None:
                raise NotFound(f"Alias '{alias}' of registered model '{full_name}' does not exist.")
            return self.info(s, model, get_version(s, model, row.version), include_aliases)

    def list(self, caller: Principal, full_name: str, max_results: int | None = None, page_token: str | None = None,
             include_aliases: bool = False) -> dict:
        limit = self.catalog.page_size(max_results)
        if page_token and not page_token.isdigit():
            raise InvalidParameter(f"Invalid page_token '{page_token}'")
        after = int(page_token) if page_token else 0  # the token is the last version number sent
        with self.db.read() as s:
            model = get_model(s, full_name)
            self.catalog.check(s, caller, P.EXECUTE, model)
            rows = s.scalars(select(ModelVersionRow).where(ModelVersionRow.model_id == model.id,
                                                           ModelVersionRow.version > after)
                             .order_by(ModelVersionRow.version).limit(limit + 1)).all()
            more = len(rows) > limit
            rows = rows[:limit]
            return {"model_versions": [self.info(s, model, r, include_aliases) for r in rows],
                    "next_page_token": str(rows[-1].version) if more else None}

    def update(self, caller: Principal, full_name: str, version: Any, comment: str | None = None) -> dict:
        number = parse_version(version)
        with self.db.write() as s:
            model = get_model(s, full_name)
            self.catalog.check(s, caller, P.MANAGE, model)
            row = get_version(s, model, number)
            if comment is not None:
                row.comment = comment
            row.updated_at, row.updated_by = clock.now(), caller.name
            return self.info(s, model, row)

    def delete(self, caller: Principal, full_name: str, version: Any) -> None:
        """Aliases naming the version go with it, and so do its files."""
        number = parse_version(version)
        with self.db.write() as s:
            model = get_model(s, full_name)
            self.catalog.check(s, caller, P.MANAGE, model)
            row = get_version(s, model, number)
            location = row.storage_location
            s.execute(delete(ModelAliasRow).where(ModelAliasRow.model_id == model.id, ModelAliasRow.version == number))
            s.delete(row)
        self.catalog.storage.remove(location)

    def finalize(self, caller: Principal, full_name: str, version: Any) -> dict:
        """PENDING_REGISTRATION -> READY, recording the manifest of the files written so far. Hashing
        runs outside the write transaction; the state is checked again when the result is stored."""
        number = parse_version(version)
        with self.db.read() as s:
            model = get_model(s, full_name)
            self.models.check_create_version(s, caller, model)
            row = get_version(s, model, number)
            _require_pending(row, full_name, "finalized")
            location = row.storage_location
        manifest = compute_manifest(location)
        with self.db.write() as s:
            model = get_model(s, full_name)
            row = get_version(s, model, number)
            _require_pending(row, full_name, "finalized")
            row.spec = json.dumps({**sec.load_json(row.spec), **manifest})
            row.status = READY
            row.updated_at, row.updated_by = clock.now(), caller.name
            return self.info(s, model, row)

    def verify(self, caller: Principal, full_name: str, version: Any) -> dict:
        """Re-hash a READY version's files against its manifest (raises ManifestMismatch naming the
        changed, missing or unexpected files). Needs EXECUTE, like reading the files."""
        number = parse_version(version)
        with self.db.read() as s:
            model = get_model(s, full_name)
            self.catalog.check(s, caller, P.EXECUTE, model)
            row = get_version(s, model, number)
            # Hashing inside a read transaction blocks no writer (WAL on SQLite, MVCC on PostgreSQL).
            summary = verify_manifest(row, f"{full_name}/{number}")
        return {"full_name": full_name, "version": number, "verified": True, **summary}

    def credentials(self, caller: Principal, catalog_name: str, schema_name: str, model_name: str, version: Any,
                    operation: str | None) -> dict:
        """Local file:// storage needs no cloud credential: the answer is the URL and an expiry."""
        if operation not in (READ, READ_WRITE):
            raise InvalidParameter(f"operation must be {READ} or {READ_WRITE}")
        for value, what in ((catalog_name, "catalog_name"), (schema_name, "schema_name"), (model_name, "model_name")):
            names.check_name(value, what)
        number = parse_version(version)
        full_name = names.join(catalog_name, schema_name, model_name)
        with self.db.read() as s:
            model = get_model(s, full_name)
            if operation == READ_WRITE:
                self.models.check_create_version(s, caller, model)
            else:
                self.catalog.check(s, caller, P.EXECUTE, model)
            row = get_version(s, model, number)
            if row.status not in (PENDING, READY):
                raise InvalidState(f"Model version '{full_name}/{number}' is {row.status}; no credentials are "
                                   f"issued for it")
            if operation == READ_WRITE:
                _require_pending(row, full_name, "written")
            url = row.storage_location
        return {"expiration_time": clock.to_ms(clock.now() + CREDENTIAL_LIFETIME), "url": url}

    def info(self, s: Session, model: SecurableRow, row: ModelVersionRow, include_aliases: bool = False) -> dict:
        out = {"model_name": model.name, "catalog_name": model.catalog_name, "schema_name": model.schema_name,
               "version": row.version, "source": row.source, "run_id": row.run_id, "status": row.status,
               "storage_location": row.storage_location, "comment": row.comment, "id": row.id,
               "created_at": clock.to_ms(row.created_at), "created_by": row.created_by,
               "updated_at": clock.to_ms(row.updated_at), "updated_by": row.updated_by}
        if include_aliases:
            out["aliases"] = aliases_of(s, model.id, row.version)
        return out


def _require_pending(row: ModelVersionRow, full_name: str, doing: str) -> None:
    if row.status != PENDING:
        raise InvalidState(f"Model version '{full_name}/{row.version}' is {row.status}, not {PENDING}; it cannot "
                           f"be {doing}")


__all__ = ["ModelVersionService", "PENDING", "READY", "FAILED", "READ", "READ_WRITE"]
