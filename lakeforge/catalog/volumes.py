"""Volumes: governed directories of files. A MANAGED volume is a directory the catalog allocates in
managed storage and deletes with the volume; an EXTERNAL volume registers an existing directory and
never deletes its files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from lakeforge import names
from lakeforge.audit.context import note_securable
from lakeforge.catalog import securables as sec
from lakeforge.catalog.access import METASTORE
from lakeforge.catalog.files import VolumeFiles
from lakeforge.catalog.privileges import Kind, P
from lakeforge.catalog.service import CatalogService
from lakeforge.catalog.storage import to_path
from lakeforge.catalog.store import SecurableRow
from lakeforge.catalog.tables import check_external_location, choice
from lakeforge.errors import InvalidParameter
from lakeforge.identity.principal import Principal
from lakeforge.store import new_id

log = logging.getLogger(__name__)

VOLUME_TYPES = ("MANAGED", "EXTERNAL")
# WRITE_VOLUME credentials can read too, so they take both privileges.
VOLUME_OPERATIONS = {"READ_VOLUME": (P.READ_VOLUME,), "WRITE_VOLUME": (P.READ_VOLUME, P.WRITE_VOLUME)}


class VolumeService:
    def __init__(self, catalog: CatalogService, home: Path | None = None):
        self.catalog = catalog
        self.db = catalog.db
        self.access = catalog.access
        self.storage = catalog.storage
        self.protected = (home,) if home else ()
        self.files = VolumeFiles(self)

    def create_volume(self, caller: Principal, catalog_name: str, schema_name: str, name: str,
                      volume_type: str | None, storage_location: str | None = None,
                      comment: str | None = None) -> dict:
        full_name = str(names.parse(f"{catalog_name}.{schema_name}.{name}", 3, "volume name"))
        note_securable(full_name)
        volume_type = choice(volume_type, VOLUME_TYPES, "volume_type")
        created = None  # a managed directory this call made, removed again if the commit fails
        try:
            with self.db.write() as s:
                schema_row = sec.get_parent_row(s, Kind.VOLUME, catalog_name, schema_name)
                self.catalog.check(s, caller, P.CREATE_VOLUME, schema_row)
                volume_id = new_id()
                if volume_type == "EXTERNAL":
                    # Serving arbitrary server directories is a metastore-level right until external
                    # locations exist.
                    self.access.authorize(caller, P.MANAGE, METASTORE)
                    location, path = check_external_location(s, self.storage, storage_location, self.protected)
                    if not path.is_dir():
                        raise InvalidParameter(f"Storage location '{location}' is not an existing directory")
                else:
                    if storage_location:
                        raise InvalidParameter("A MANAGED volume takes no storage_location; it is allocated in "
                                               "managed storage")
                    location = self.storage.location("volumes", volume_id, s.get(SecurableRow, schema_row.parent_id),
                                                     schema_row)
                row = sec.create_row(s, Kind.VOLUME, name, schema_row, caller, comment=comment,
                                     storage_location=location, row_id=volume_id,
                                     spec={"volume_type": volume_type, "managed": volume_type == "MANAGED"})
                if volume_type == "MANAGED":
                    created = location
                    to_path(location).mkdir(parents=True)
                info = self.volume_info(s, row)
        except BaseException:
            self.storage.remove(created)
            raise
        return info

    def get_volume(self, caller: Principal, full_name: str) -> dict:
        with self.db.read() as s:
            row = sec.get_row(s, Kind.VOLUME, full_name)
            self.catalog.check(s, caller, P.BROWSE, row)
            return self.volume_info(s, row)

    def list_volumes(self, caller: Principal, catalog_name: str, schema_name: str, max_results: int | None = None,
                     page_token: str | None = None) -> dict:
        with self.db.read() as s:
            schema_row = sec.get_parent_row(s, Kind.VOLUME, catalog_name, schema_name)
            self.catalog.check(s, caller, P.USE_SCHEMA, schema_row)
            page = sec.list_rows(s, Kind.VOLUME, schema_row.id, page_token, self.catalog.page_size(max_results),
                                 self.catalog.visible(s, caller))
            owners = self.catalog.owner_names(s, page.rows)
            return {"volumes": [self.volume_info(s, r, owners) for r in page.rows],
                    "next_page_token": page.next_page_token}

    def update_volume(self, caller: Principal, full_name: str, new_name: str | None = None,
                      comment: str | None = None, owner: str | None = None) -> dict:
        with self.db.write() as s:
            row = sec.get_row(s, Kind.VOLUME, full_name)
            self.catalog.check(s, caller, P.MANAGE, row)
            # Managed directories are named by id, so a rename moves no files.
            self.catalog.apply_update(s, caller, row, new_name=new_name, comment=comment, owner=owner)
            return self.volume_info(s, row)

    def delete_volume(self, caller: Principal, full_name: str) -> None:
        self.catalog.delete(caller, Kind.VOLUME, full_name)

    def volume_credentials(self, caller: Principal, volume_id: str | None, operation: str | None) -> dict:
        operation = choice(operation, tuple(VOLUME_OPERATIONS), "operation")
        return self.catalog.temporary_credentials(caller, Kind.VOLUME, volume_id, VOLUME_OPERATIONS[operation])

    def volume_root(self, caller: Principal, full_name: str, privilege: P) -> Path:
        """The directory of a volume the caller holds `privilege` on (for the files API)."""
        note_securable(full_name)
        with self.db.read() as s:
            row = sec.get_row(s, Kind.VOLUME, full_name)
            self.catalog.check(s, caller, privilege, row)
            return to_path(row.storage_location)

    def volume_info(self, s: Session, row: SecurableRow, owners: dict | None = None) -> dict[str, Any]:
        owners = owners if owners is not None else self.catalog.owner_names(s, [row])
        spec = sec.load_json(row.spec)
        info = {"name": row.name, "catalog_name": row.catalog_name, "schema_name": row.schema_name,
                "full_name": row.full_name, "volume_id": row.id, "volume_type": spec.get("volume_type", "MANAGED"),
                "storage_location": row.storage_location, **sec.common_fields(row, owners.get(row.owner_id))}
        info.pop("properties", None)  # volumes have no properties in the spec
        return info


__all__ = ["VolumeService"]
