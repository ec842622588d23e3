"""Managed storage locations: where the catalog puts the data of managed objects.

Layout follows Unity Catalog: `<root>/__unitystorage/catalogs/<catalog_id>/tables/<table_id>` where
the root is the schema's storage root, else the catalog's, else the platform's storage root.
"""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

from lakeforge import clock
from lakeforge.catalog.store import SecurableRow
from lakeforge.errors import InvalidParameter

log = logging.getLogger(__name__)


# Local storage needs no cloud credential; clients still cache the answer until it expires.
CREDENTIAL_TTL = timedelta(hours=1)


def empty_credential(location: str) -> dict:
    """Temporary credentials for local file:// storage: nothing to sign, only the URL and an expiry."""
    return {"expiration_time": clock.to_ms(clock.now() + CREDENTIAL_TTL), "url": location}


def to_uri(path: Path) -> str:
    return path.resolve().as_uri()


def to_path(uri: str) -> Path:
    """A local path for a file:// URI (or a bare absolute path)."""
    if uri.startswith("file:"):
        parsed = urlparse(uri)
        return Path(unquote(parsed.path))
    if uri.startswith("/"):
        return Path(uri)
    raise InvalidParameter(f"Unsupported storage location '{uri}': only local file:// storage is configured")


def check_root(uri: str | None) -> str | None:
    """Validate a user-given storage root and normalise it to a file:// URI."""
    if not uri:
        return None
    return to_uri(to_path(uri))


class ManagedStorage:
    def __init__(self, root: Path):
        self.root = root

    def location(self, kind_dir: str, obj_id: str, catalog: SecurableRow, schema: SecurableRow | None) -> str:
        base = (schema.storage_root if schema is not None and schema.storage_root else None) or catalog.storage_root
        root = to_path(base) if base else self.root
        path = root / "__unitystorage" / "catalogs" / catalog.id / kind_dir / obj_id
        return to_uri(path)

    def remove(self, uri: str | None) -> None:
        """Delete a managed location after its catalog entry is gone (best effort, logged)."""
        if not uri:
            return
        try:
            path = to_path(uri)
            if path.exists():
                shutil.rmtree(path)
        except Exception:  # the metadata is already deleted; leftover files are only garbage
            log.warning("could not remove managed location %s", uri, exc_info=True)
