"""The MLflow registry's domain logic on top of the catalog's registered models and versions.

Models are named `catalog.schema.model`. Access goes through the catalog's one door: CREATE_MODEL
on the schema (or MANAGE on the model) to register a version, EXECUTE to read or load, owner or
MANAGE to change aliases, tags, descriptions and to delete. MLflow tags live in the model's and the
version's spec JSON; descriptions are the catalog comments.

Registering a version copies the source's files into the version's managed storage (the source
is never moved or deleted), then finalizes it (sha256 manifest, READY). A failed copy leaves no
version behind. A registered version can be the source too (MLflow's copy_model_version). A
version registered from a run that read catalog tables records table -> model lineage. Searches
live in search.py.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lakeforge import clock, names
from lakeforge.catalog import securables as sec
from lakeforge.catalog.model_manifest import verify_manifest
from lakeforge.catalog.model_versions import READY, ModelVersionService
from lakeforge.catalog.models import (
    RegisteredModelService,
    get_model,
    get_version,
    model_spec,
    parse_version,
)
from lakeforge.catalog.privileges import Kind, P
from lakeforge.catalog.storage import to_path, to_uri
from lakeforge.catalog.store import ModelAliasRow, ModelVersionRow, SecurableRow
from lakeforge.config import Settings
from lakeforge.errors import (
    InvalidParameter,
    InvalidState,
    LakeforgeError,
    NotFound,
    ResourceDoesNotExist,
)
from lakeforge.identity.principal import Principal
from lakeforge.lineage.service import LineageService
from lakeforge.models import artifacts, schema, search
from lakeforge.models.sources import ResolvedSource, TrackingSources

log = logging.getLogger(__name__)

TAG_KEY_MAX, TAG_VALUE_MAX = 250, 5000
_REGISTERED = re.compile(r"^models:/([^/@.]+\.[^/@.]+\.[^/@.]+)/(\d+)$")


def split_name(name) -> names.FullName:
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameter("Registered model name is required")
    if name.count(".") != 2:
        raise InvalidParameter(f"Invalid registered model name '{name}': models are named by their catalog's "
                               "three-level name catalog.schema.model, e.g. main.ml.churn")
    return names.parse(name, 3, "registered model name")


def check_tag(key, value=None) -> None:
    if not isinstance(key, str) or not key or len(key) > TAG_KEY_MAX:
        raise InvalidParameter(f"Invalid tag key '{key}': 1-{TAG_KEY_MAX} characters")
    if value is not None and len(str(value)) > TAG_VALUE_MAX:
        raise InvalidParameter(f"Tag '{key}': the value is longer than {TAG_VALUE_MAX} characters")


def _with_tags(spec_text: str | None, set_: dict[str, str] | None = None, drop: str | None = None) -> str:
    spec = sec.load_json(spec_text)
    tags = dict(spec.get("tags") or {})
    tags.update(set_ or {})
    if drop is not None:
        if drop not in tags:
            raise ResourceDoesNotExist(f"Tag '{drop}' does not exist")
        tags.pop(drop)
    spec["tags"] = tags
    return json.dumps(spec)


class RegistryService:
    def __init__(self, models: RegisteredModelService, versions: ModelVersionService, lineage: LineageService,
                 settings: Settings, tracking: Callable[[], object | None] = lambda: None):
        self.models = models
        self.versions = versions
        self.catalog = models.catalog
        self.access = models.access
        self.db = models.db
        self.lineage = lineage
        self.sources = TrackingSources(settings, self.db, self.access, tracking)

    # ---- wire shapes ---------------------------------------------------------------------------
    def version_out(self, s: Session, model: SecurableRow, row: ModelVersionRow,
                    aliases: list[dict] | None = None) -> dict:
        """`aliases`: the model's aliases when already read (searches), else they are read here."""
        info = self.versions.info(s, model, row, include_aliases=aliases is None)
        if aliases is not None:
            info["aliases"] = [a for a in aliases if a["version_num"] == row.version]
        spec = sec.load_json(row.spec)
        return schema.model_version(model.full_name, info, spec.get("tags") or {},
                                    [a["alias_name"] for a in info["aliases"]], spec.get("model_id"))

    def models_out(self, s: Session, rows: list[SecurableRow]) -> list[dict]:
        """Many RegisteredModels at once (searches): owners, aliases and latest versions are read
        in one query each instead of several per model. `rows`: SecurableRows, or plain rows with
        their columns (what searches read)."""
        ids = [r.id for r in rows]
        owners = self.catalog.owner_names(s, rows)
        aliases = self._aliases(s, ids)
        newest = select(ModelVersionRow.model_id, func.max(ModelVersionRow.version).label("v")) \
            .where(ModelVersionRow.model_id.in_(ids)).group_by(ModelVersionRow.model_id).subquery()
        latest = {v.model_id: v for v in s.scalars(select(ModelVersionRow).join(
            newest, (ModelVersionRow.model_id == newest.c.model_id) & (ModelVersionRow.version == newest.c.v)))}
        out = []
        for row in rows:
            info = self.models.info(s, row, owners)
            version = latest.get(row.id)
            out.append(schema.registered_model(info, model_spec(row).get("tags") or {}, aliases.get(row.id, []),
                                               self.version_out(s, row, version, aliases.get(row.id, []))
                                               if version else None))
        return out

    def versions_out(self, s: Session, pairs: list[tuple[SecurableRow, ModelVersionRow]]) -> list[dict]:
        """Many ModelVersions at once (searches): the aliases of their models in one query. Rows
        may be plain rows with the tables' columns, as in `models_out`."""
        aliases = self._aliases(s, list({model.id for model, _ in pairs}))
        return [self.version_out(s, model, row, aliases.get(model.id, [])) for model, row in pairs]

    @staticmethod
    def _aliases(s: Session, model_ids: list[str]) -> dict[str, list[dict]]:
        """Aliases of many models, by model id, in alias order (as `aliases_of`)."""
        out: dict[str, list[dict]] = {}
        for start in range(0, len(model_ids), 1000):
            chunk = model_ids[start:start + 1000]
            for a in s.scalars(select(ModelAliasRow).where(ModelAliasRow.model_id.in_(chunk))
                               .order_by(ModelAliasRow.alias)):
                out.setdefault(a.model_id, []).append({"alias_name": a.alias, "version_num": a.version})
        return out

    def model_out(self, s: Session, row: SecurableRow) -> dict:
        info = self.models.info(s, row, include_aliases=True)
        latest = s.scalar(select(ModelVersionRow).where(ModelVersionRow.model_id == row.id)
                          .order_by(ModelVersionRow.version.desc()).limit(1))
        return schema.registered_model(info, model_spec(row).get("tags") or {}, info["aliases"],
                                       self.version_out(s, row, latest) if latest else None)

    def _readable(self, s: Session, caller: Principal, name: str) -> SecurableRow:
        split_name(name)
        row = get_model(s, name)
        self.catalog.check(s, caller, P.EXECUTE, row)
        return row

    def _managed(self, s: Session, caller: Principal, name: str) -> SecurableRow:
        split_name(name)
        row = get_model(s, name)
        self.catalog.check(s, caller, P.MANAGE, row)  # owners hold MANAGE
        return row

    # ---- registered models -----------------------------------------------------------------------
    def create_model(self, caller: Principal, name: str, tags: dict[str, str], description: str | None) -> dict:
        full = split_name(name)
        for k, v in tags.items():
            check_tag(k, v)
        self.models.create(caller, full.catalog, full.schema, full.name, description or None)
        with self.db.write() as s:
            row = get_model(s, name)
            if tags:
                row.spec = _with_tags(row.spec, tags)
            return self.model_out(s, row)

    def get_model(self, caller: Principal, name: str) -> dict:
        with self.db.read() as s:
            return self.model_out(s, self._readable(s, caller, name))

    def rename_model(self, caller: Principal, name: str, new_name: str) -> dict:
        old, new = split_name(name), split_name(new_name)
        if (old.catalog, old.schema) != (new.catalog, new.schema):
            raise InvalidParameter(f"Cannot rename '{name}' to '{new_name}': a model stays in its schema "
                                   f"({old.catalog}.{old.schema})")
        self.models.update(caller, name, new_name=new.name)
        return self.get_model(caller, new_name)

    def update_model(self, caller: Principal, name: str, description: str | None) -> dict:
        split_name(name)
        self.models.update(caller, name, comment=description if description is not None else "")
        return self.get_model(caller, name)

    def delete_model(self, caller: Principal, name: str) -> None:
        split_name(name)
        self.models.delete(caller, name)

    def search_models(self, caller: Principal, filter_string: str | None, max_results: int | None,
                      order_by: list[str], page_token: str | None) -> dict:
        return search.registered_models(self, caller, filter_string, max_results, order_by, page_token)

    def search_versions(self, caller: Principal, filter_string: str | None, max_results: int | None,
                        order_by: list[str], page_token: str | None) -> dict:
        return search.model_versions(self, caller, filter_string, max_results, order_by, page_token)

    def latest_versions(self, caller: Principal, name: str, stages: list[str]) -> dict:
        """Stages are gone from the catalog: every version is in stage "None"."""
        with self.db.read() as s:
            model = self._readable(s, caller, name)
            if stages and not any(str(x).lower() == "none" for x in stages):
                return {"model_versions": []}
            latest = s.scalar(select(ModelVersionRow).where(ModelVersionRow.model_id == model.id)
                              .order_by(ModelVersionRow.version.desc()).limit(1))
            return {"model_versions": [self.version_out(s, model, latest)] if latest else []}

    def set_model_tag(self, caller: Principal, name: str, key: str, value: str | None) -> None:
        check_tag(key, value)
        with self.db.write() as s:
            row = self._managed(s, caller, name)
            row.spec = _with_tags(row.spec, {key: "" if value is None else str(value)})
            sec.touch(row, caller)

    def delete_model_tag(self, caller: Principal, name: str, key: str) -> None:
        check_tag(key)
        with self.db.write() as s:
            row = self._managed(s, caller, name)
            row.spec = _with_tags(row.spec, drop=key)
            sec.touch(row, caller)

    def set_alias(self, caller: Principal, name: str, alias: str, version) -> None:
        split_name(name)
        self.models.set_alias(caller, name, alias, version)

    def delete_alias(self, caller: Principal, name: str, alias: str) -> None:
        split_name(name)
        self.models.delete_alias(caller, name, alias)

    def version_by_alias(self, caller: Principal, name: str, alias: str) -> dict:
        split_name(name)
        info = self.versions.get_by_alias(caller, name, alias)  # EXECUTE; 404 for an unknown alias
        return self.get_version(caller, name, info["version"])

    # ---- model versions --------------------------------------------------------------------------
    def create_version(self, caller: Principal, name: str, source: str, run_id: str | None,
                       tags: dict[str, str], description: str | None, model_id: str | None) -> dict:
        full = split_name(name)
        for k, v in tags.items():
            check_tag(k, v)
        with self.db.read() as s:  # refuse before touching the source
            self.models.check_create_version(s, caller, get_model(s, name))
        found = (self._registered_source(caller, source, run_id or None)
                 or self.sources.resolve(caller, source, run_id or None, model_id or None))
        info = self.versions.create(caller, full.catalog, full.schema, full.name, source, found.run_id,
                                    description or None)
        number = info["version"]
        try:
            artifacts.copy_files(found.path, to_path(info["storage_location"]))
            with self.db.write() as s:
                row = get_version(s, get_model(s, name), number)
                spec = sec.load_json(_with_tags(row.spec, tags))
                if found.model_id:
                    spec["model_id"] = found.model_id
                row.spec = json.dumps(spec)
            self.versions.finalize(caller, name, number)
        except BaseException:
            self._discard(name, number)
            raise
        if found.run_id:
            self._record_lineage(caller, name, number, found.run_id)
        with self.db.read() as s:
            model = get_model(s, name)
            return self.version_out(s, model, get_version(s, model, number))

    def _registered_source(self, caller: Principal, source: str, run_id: str | None) -> ResolvedSource | None:
        """`models:/<catalog.schema.model>/<version>` (MLflow's copy_model_version): the files of a
        registered version the caller may EXECUTE, checked against its manifest before copying."""
        match = _REGISTERED.match(source or "")
        if match is None:
            return None
        name, number = match.group(1), int(match.group(2))
        with self.db.read() as s:
            row = get_version(s, self._readable(s, caller, name), number)
            if row.status != READY:
                raise InvalidState(f"Model version {name}/{number} is {row.status}; only READY versions are copied")
            verify_manifest(row, f"{name}/{number}")
            return ResolvedSource(to_path(row.storage_location), run_id or row.run_id,
                                  sec.load_json(row.spec).get("model_id"))

    def _discard(self, name: str, number: int) -> None:
        """Remove a version whose registration failed (its creator may not hold MANAGE)."""
        try:
            with self.db.write() as s:
                row = get_version(s, get_model(s, name), number)
                location = row.storage_location
                s.delete(row)
            self.catalog.storage.remove(location)
        except Exception:
            log.exception("could not remove failed model version %s/%s", name, number)

    def get_version(self, caller: Principal, name: str, version) -> dict:
        number = parse_version(version)
        with self.db.read() as s:
            model = self._readable(s, caller, name)
            return self.version_out(s, model, get_version(s, model, number))

    def update_version(self, caller: Principal, name: str, version, description: str | None) -> dict:
        split_name(name)
        self.versions.update(caller, name, version, description if description is not None else "")
        return self.get_version(caller, name, version)

    def delete_version(self, caller: Principal, name: str, version) -> None:
        split_name(name)
        self.versions.delete(caller, name, version)

    def set_version_tag(self, caller: Principal, name: str, version, key: str, value: str | None) -> None:
        self._version_tags(caller, name, version, key, value, drop=False)

    def delete_version_tag(self, caller: Principal, name: str, version, key: str) -> None:
        self._version_tags(caller, name, version, key, None, drop=True)

    def _version_tags(self, caller: Principal, name: str, version, key: str, value, drop: bool) -> None:
        check_tag(key, value)
        number = parse_version(version)
        with self.db.write() as s:
            model = self._managed(s, caller, name)
            row = get_version(s, model, number)
            row.spec = (_with_tags(row.spec, drop=key) if drop
                        else _with_tags(row.spec, {key: "" if value is None else str(value)}))
            row.updated_at, row.updated_by = clock.now(), caller.name

    def download_uri(self, caller: Principal, name: str, version) -> dict:
        full = split_name(name)
        number = parse_version(version)
        with self.db.read() as s:
            get_version(s, self._readable(s, caller, name), number)
        return {"artifact_uri": artifacts.download_uri(full.catalog, full.schema, full.name, number)}

    # ---- lineage ---------------------------------------------------------------------------------
    def _record_lineage(self, caller: Principal, name: str, number: int, run_id: str) -> None:
        """table -> model edges for each catalog table the run logged as an input dataset. The
        version is registered by now: a lineage failure is logged, not returned to the client."""
        try:
            inputs = self.sources.input_tables(caller, run_id)
            tables: set[str] = set()
            with self.db.read() as s:
                for table_name, path in inputs:
                    row = self._table(s, table_name, path)
                    if row is not None and self.access.allowed(caller, P.BROWSE, sec.securable_of(s, row)):
                        tables.add(row.full_name)
            if tables:
                # Writing the version was authorized (CREATE_MODEL or MANAGE); lineage's own rule
                # (MODIFY on the target) does not fit versions, so the edges are recorded for the
                # caller with the registry's authority. Sources were checked for BROWSE above.
                recorder = dataclasses.replace(caller, is_admin=True)
                self.lineage.record(recorder, [("TABLE", t, "REGISTERED_MODEL", name) for t in sorted(tables)],
                                    "MODEL_VERSION", f"{name}/{number}")
        except LakeforgeError as e:
            log.warning("lineage for model version %s/%s not recorded: %s", name, number, e.message)

    @staticmethod
    def _table(s: Session, table_name: str | None, path: str | None) -> SecurableRow | None:
        if table_name and table_name.count(".") == 2:
            try:
                return sec.get_row(s, Kind.TABLE, table_name)
            except (NotFound, InvalidParameter):
                pass
        if path:
            try:
                candidates = {path.rstrip("/"), to_uri(to_path(path)).rstrip("/")}
            except InvalidParameter:
                return None
            return s.scalar(select(SecurableRow).where(SecurableRow.kind == Kind.TABLE.value,
                                                       SecurableRow.storage_location.in_(candidates)).limit(1))
        return None

    # ---- serving a version's files ---------------------------------------------------------------
    def _version_files(self, caller: Principal, path: str) -> tuple:
        """(storage path, manifest, rest of the path, label) for `_lakeforge_registry/c/s/m/v/...`."""
        parts = path.strip("/").split("/")
        if len(parts) < 5 or parts[0] != artifacts.PREFIX:
            raise ResourceDoesNotExist(f"Artifact path '{path}' names no model version")
        name, number = ".".join(parts[1:4]), parse_version(parts[4])
        with self.db.read() as s:
            model = self._readable(s, caller, name)
            row = get_version(s, model, number)
            if row.status != READY:
                raise InvalidState(f"Model version {name}/{number} is {row.status}; its files are not served")
            manifest = sec.load_json(row.spec).get("manifest")
            if manifest is None:
                raise InvalidState(f"Model version {name}/{number} has no manifest")
            return to_path(row.storage_location), manifest, "/".join(parts[5:]), f"{name}/{number}"

    def list_files(self, caller: Principal, path: str) -> dict:
        root, manifest, rest, what = self._version_files(caller, path)
        return {"files": artifacts.list_dir(root, manifest, rest, what)}

    def file(self, caller: Principal, path: str):
        root, manifest, rest, what = self._version_files(caller, path)
        return artifacts.verified_file(root, manifest, rest, what)

    def version_file(self, caller: Principal, name: str, version, path: str):
        """One verified file of a version by name (the web UI's `/model-versions/get-artifact`)."""
        full = split_name(name)
        number = parse_version(version)
        return self.file(caller, f"{artifacts.PREFIX}/{full.catalog}/{full.schema}/{full.name}/{number}/{path or ''}")
