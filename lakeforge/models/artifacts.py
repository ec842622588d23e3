"""A model version's files: copied into its catalog-managed storage at registration, served back
to MLflow's client (as proxied `mlflow-artifacts:/_lakeforge_registry/...` artifacts) only when
they match the sha256 manifest recorded at finalize.

The copy never moves or deletes the source. Links are refused, so a copy cannot pull in files
from outside the source directory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from lakeforge.catalog.model_manifest import ALGORITHM
from lakeforge.errors import InvalidParameter, InvalidState, ResourceDoesNotExist

PREFIX = "_lakeforge_registry"  # mlflow-artifacts:/_lakeforge_registry/<catalog>/<schema>/<model>/<version>
_CHUNK = 1024 * 1024


def download_uri(catalog: str, schema: str, model: str, version: int) -> str:
    return f"mlflow-artifacts:/{PREFIX}/{catalog}/{schema}/{model}/{version}"


def copy_files(source: Path, target: Path) -> int:
    """Copy a model directory (or one file) into `target`; returns the number of files copied."""
    target.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():
        raise InvalidParameter(f"Source '{source.name}' is a link; the registry copies regular files only")
    if source.is_file():
        shutil.copy2(source, target / source.name)
        return 1
    count = 0
    for dirpath, dirnames, filenames in os.walk(source):
        here = Path(dirpath)
        rel = here.relative_to(source)
        for name in dirnames:
            if (here / name).is_symlink():
                raise InvalidParameter(f"Source entry '{(rel / name).as_posix()}' is a link; refused")
            (target / rel / name).mkdir(exist_ok=True)
        for name in filenames:
            src = here / name
            if src.is_symlink() or not src.is_file():
                raise InvalidParameter(f"Source entry '{(rel / name).as_posix()}' is a link or special file; the "
                                       "registry copies regular files only")
            shutil.copy2(src, target / rel / name)
            count += 1
    if count == 0:
        raise InvalidParameter(f"Source '{source}' holds no files")
    return count


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _safe_rel(rel: str) -> str:
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidParameter(f"Invalid artifact path '{rel}'")
    return "/".join(parts)


def _tampered(what: str, rel: str, how: str) -> InvalidState:
    return InvalidState(f"Model version {what} failed its integrity check: file '{rel}' {how} since the "
                        f"version was registered (tampered); it is not served")


def list_dir(root: Path, manifest: dict[str, str], rel: str, what: str) -> list[dict]:
    """Direct children of `rel` as MLflow's artifact list answers them; a file lists nothing. The
    names are checked against the manifest: a missing or unexpected file is refused."""
    rel = _safe_rel(rel)
    prefix = f"{rel}/" if rel else ""
    if rel in manifest:
        return []
    expected_files = {k[len(prefix):] for k in manifest if k.startswith(prefix)}
    if not expected_files:
        raise ResourceDoesNotExist(f"Artifact '{rel}' of model version {what} does not exist")
    want = {n.split("/", 1)[0]: "/" in n for n in expected_files}
    base = root / rel if rel else root
    have = {p.name: p for p in base.iterdir()} if base.is_dir() else {}
    if not rel:
        have.pop("registered_model_meta", None)  # a note MLflow's client may write; not a model file
    for name in sorted(set(want) - set(have)):
        raise _tampered(what, prefix + name, "is missing")
    for name in sorted(set(have) - set(want)):
        raise _tampered(what, prefix + name, "was added")
    out = []
    for name, is_dir in sorted(want.items()):
        path = have[name]
        if path.is_symlink() or path.is_dir() != is_dir:
            raise _tampered(what, prefix + name, "changed kind")
        entry = {"path": name, "is_dir": is_dir}
        if not is_dir:
            entry["file_size"] = path.stat().st_size
        out.append(entry)
    return out


def verified_file(root: Path, manifest: dict[str, str], rel: str, what: str) -> Path:
    """The local path of one file, after its sha256 matched the manifest."""
    rel = _safe_rel(rel)
    if rel not in manifest:
        raise ResourceDoesNotExist(f"Artifact '{rel}' of model version {what} does not exist")
    path = root / rel
    if path.is_symlink() or not path.is_file():
        raise _tampered(what, rel, "is missing")
    if sha256(path) != manifest[rel]:
        raise _tampered(what, rel, f"changed ({ALGORITHM} differs from the manifest)")
    return path
