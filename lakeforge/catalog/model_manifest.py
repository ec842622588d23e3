"""Integrity of model version files: a sha256 manifest recorded at finalize and checked on load.

A READY model version is immutable (no write credentials after finalize), so any difference between
its files and the manifest means the files were changed behind the catalog's back. Whoever loads a
model for serving or evaluation calls `verify_manifest` first.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lakeforge.catalog.storage import to_path
from lakeforge.catalog.store import ModelVersionRow
from lakeforge.errors import FailedPrecondition, InvalidState

ALGORITHM = "sha256"
_CHUNK = 1024 * 1024
_SHOWN = 5  # file names listed per kind of problem in an error message


class ManifestMismatch(FailedPrecondition):
    """The files of a finalized model version differ from the manifest recorded at finalize."""

    def __init__(self, what: str, modified: list[str], missing: list[str], extra: list[str]):
        parts = [f"{label}: {', '.join(names[:_SHOWN])}{' ...' if len(names) > _SHOWN else ''}"
                 for label, names in (("modified", modified), ("missing", missing), ("unexpected", extra))
                 if names]
        super().__init__(f"Model version {what} failed its integrity check ({'; '.join(parts)})",
                         details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                   "reason": "MODEL_VERSION_MANIFEST_MISMATCH", "domain": "lakeforge",
                                   "metadata": {"modified": ",".join(modified), "missing": ",".join(missing),
                                                "unexpected": ",".join(extra)}}])
        self.modified, self.missing, self.extra = modified, missing, extra


def _hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# Files MLflow's client writes into a model directory when it loads a registered version from a
# local path (a note of which registered model it came from); they are not part of the model.
CLIENT_NOTES = {"registered_model_meta"}


def _files(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        return {}
    return {rel: p for p in sorted(root.rglob("*"))
            if p.is_file() and (rel := p.relative_to(root).as_posix()) not in CLIENT_NOTES}


def compute_manifest(storage_location: str) -> dict:
    """Hash every file under a version's storage location; the result goes into the version's spec."""
    files = _files(to_path(storage_location))
    manifest = {rel: _hash(p) for rel, p in files.items()}
    size = sum(p.stat().st_size for p in files.values())
    return {"manifest": manifest, "manifest_algorithm": ALGORITHM, "file_count": len(manifest), "size_bytes": size}


def verify_manifest(version: ModelVersionRow, what: str | None = None) -> dict:
    """Re-hash a finalized version's files; raise ManifestMismatch naming every changed, missing or
    unexpected file. Returns the recorded summary (file_count, size_bytes) when all files match."""
    what = what or f"{version.model_id}/{version.version}"
    spec = json.loads(version.spec) if version.spec else {}
    if "manifest" not in spec:
        raise InvalidState(f"Model version {what} has no manifest: it is not finalized (status {version.status})")
    recorded: dict[str, str] = spec["manifest"]
    files = _files(to_path(version.storage_location))
    missing = sorted(set(recorded) - set(files))
    extra = sorted(set(files) - set(recorded))
    modified = sorted(rel for rel in set(recorded) & set(files) if _hash(files[rel]) != recorded[rel])
    if missing or extra or modified:
        raise ManifestMismatch(what, modified, missing, extra)
    return {"file_count": spec.get("file_count", len(recorded)), "size_bytes": spec.get("size_bytes")}


__all__ = ["ManifestMismatch", "compute_manifest", "verify_manifest"]
