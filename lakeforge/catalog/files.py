"""Files in volumes: `/Volumes/<catalog>/<schema>/<volume>/<path>` mapped onto the volume's directory.

Every path is checked twice: by its text (no '..', '.', empty or absolute parts) and, once resolved
on disk, by where it really lands (a symlink must not lead out of the volume). Uploads are written
to a hidden temporary file next to the target and renamed into place, so readers never see half a
file and a failed upload leaves nothing behind.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lakeforge.catalog.privileges import P
from lakeforge.errors import (
    AlreadyExists,
    InvalidParameter,
    InvalidState,
    NotFound,
)
from lakeforge.identity.principal import Principal

if TYPE_CHECKING:
    from lakeforge.catalog.volumes import VolumeService

UPLOAD_PREFIX = ".lf-upload-"
MAX_PAGE = 1000


@dataclass(frozen=True)
class VolumePath:
    volume: str  # catalog.schema.volume
    parts: tuple[str, ...]  # inside the volume

    @property
    def wire(self) -> str:
        return "/Volumes/" + "/".join([*self.volume.split("."), *self.parts])


def parse_path(path: str) -> VolumePath:
    """The path of a files API URL (already percent-decoded), e.g. `Volumes/c/s/v/dir/file.csv`."""
    shown = "/" + path.lstrip("/")
    if not path.startswith("Volumes/"):
        raise InvalidParameter(f"Path '{shown}' is not a volume path: expected "
                               "/Volumes/<catalog>/<schema>/<volume>/...")
    parts = path.split("/")[1:]
    if parts[-1] == "":  # a trailing slash names the same directory
        parts.pop()
    if len(parts) < 3 or not all(parts[:3]):
        raise InvalidParameter(f"Path '{shown}' does not name a volume: expected /Volumes/<catalog>/<schema>/<volume>")
    inner = parts[3:]
    if any(p in ("", ".", "..") or "\x00" in p for p in inner):
        raise InvalidParameter(f"Path '{shown}' must not contain '.', '..' or empty segments")
    return VolumePath(".".join(parts[:3]), tuple(inner))


@dataclass(frozen=True)
class FileStat:
    path: Path
    stat: os.stat_result


class Upload:
    """One upload in progress: bytes go to a temporary file; `commit` renames it into place."""

    def __init__(self, target: Path, overwrite: bool, made_dirs: list[Path], wire: str):
        self.target = target
        self.overwrite = overwrite
        self.made_dirs = made_dirs
        self.wire = wire
        fd, name = tempfile.mkstemp(prefix=UPLOAD_PREFIX, dir=target.parent)
        self.tmp = Path(name)
        self.file = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def commit(self) -> None:
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.chmod(self.tmp, 0o644)
            if self.target.is_dir():
                raise AlreadyExists(f"'{self.wire}' is a directory")
            if self.overwrite:
                os.replace(self.tmp, self.target)
            else:
                self._link_new()
        except BaseException:
            self.abort()
            raise

    def _link_new(self) -> None:
        # A hard link fails if the name exists, so two racing uploads cannot both win.
        try:
            os.link(self.tmp, self.target)
        except FileExistsError:
            raise AlreadyExists(f"File '{self.wire}' already exists") from None
        except OSError:  # file systems without hard links
            if self.target.exists():
                raise AlreadyExists(f"File '{self.wire}' already exists") from None
            os.replace(self.tmp, self.target)
            return
        self.tmp.unlink()

    def abort(self) -> None:
        """Remove the temporary file and any directory this upload created (best effort)."""
        try:
            self.file.close()
        except OSError:
            pass
        self.tmp.unlink(missing_ok=True)
        for d in reversed(self.made_dirs):
            try:
                d.rmdir()
            except OSError:
                break


class VolumeFiles:
    def __init__(self, volumes: VolumeService):
        self.volumes = volumes

    def _locate(self, caller: Principal, path: str, privilege: P) -> tuple[VolumePath, Path, Path]:
        """(parsed path, volume root, target on disk), after the access check on the volume."""
        vp = parse_path(path)
        root = Path(os.path.realpath(self.volumes.volume_root(caller, vp.volume, privilege)))
        if not root.is_dir():
            raise NotFound(f"The directory of volume '{vp.volume}' does not exist")
        target = Path(os.path.realpath(root.joinpath(*vp.parts)))
        if target != root and root not in target.parents:
            raise InvalidParameter(f"Path '{vp.wire}' leads outside its volume")
        return vp, root, target

    # ---- files ---------------------------------------------------------------------------------
    def check_upload(self, caller: Principal, path: str, overwrite: bool = True) -> tuple[VolumePath, Path, Path]:
        vp, root, target = self._locate(caller, path, P.WRITE_VOLUME)
        if not vp.parts:
            raise InvalidParameter(f"Path '{vp.wire}' is the volume itself; name a file inside it")
        if vp.parts[-1].startswith(UPLOAD_PREFIX):
            raise InvalidParameter(f"File names starting with '{UPLOAD_PREFIX}' are reserved for uploads in progress")
        if target.is_dir():
            raise AlreadyExists(f"'{vp.wire}' is a directory")
        if not overwrite and target.exists():
            raise AlreadyExists(f"File '{vp.wire}' already exists")
        return vp, root, target

    def open_upload(self, caller: Principal, path: str, overwrite: bool = True) -> Upload:
        vp, root, target = self.check_upload(caller, path, overwrite)
        made = _make_dirs(root, target.parent, vp)
        try:
            return Upload(target, overwrite, made, vp.wire)
        except BaseException:
            for d in reversed(made):
                d.rmdir()
            raise

    def stat_file(self, caller: Principal, path: str) -> FileStat:
        vp, _, target = self._locate(caller, path, P.READ_VOLUME)
        if target.is_dir():
            raise NotFound(f"'{vp.wire}' is a directory, not a file")
        try:
            return FileStat(target, target.stat())
        except FileNotFoundError:
            raise NotFound(f"File '{vp.wire}' does not exist") from None

    def delete_file(self, caller: Principal, path: str) -> None:
        vp, _, target = self._locate(caller, path, P.WRITE_VOLUME)
        if target.is_dir():
            raise InvalidParameter(f"'{vp.wire}' is a directory; delete it through /api/2.0/fs/directories")
        try:
            target.unlink()
        except FileNotFoundError:
            raise NotFound(f"File '{vp.wire}' does not exist") from None

    # ---- directories ---------------------------------------------------------------------------
    def create_directory(self, caller: Principal, path: str) -> None:
        vp, root, target = self._locate(caller, path, P.WRITE_VOLUME)
        _make_dirs(root, target, vp)

    def check_directory(self, caller: Principal, path: str) -> None:
        vp, _, target = self._locate(caller, path, P.READ_VOLUME)
        if not target.is_dir():
            raise NotFound(f"Directory '{vp.wire}' does not exist")

    def list_directory(self, caller: Principal, path: str, page_size: int | None = None,
                       page_token: str | None = None) -> dict:
        vp, root, target = self._locate(caller, path, P.READ_VOLUME)
        if page_size is not None and page_size < 0:
            raise InvalidParameter("page_size must be greater than or equal to 0")
        limit = min(page_size or MAX_PAGE, MAX_PAGE)
        if not target.is_dir():
            raise NotFound(f"Directory '{vp.wire}' does not exist")
        with os.scandir(target) as it:
            entries = sorted((e for e in it if not e.name.startswith(UPLOAD_PREFIX)
                              and (not page_token or e.name > page_token)), key=lambda e: e.name)
        contents = []
        for entry in entries:
            item = _entry(entry, vp, root)
            if item is None:
                continue
            if len(contents) == limit:
                return {"contents": contents, "next_page_token": contents[-1]["name"]}
            contents.append(item)
        return {"contents": contents}

    def delete_directory(self, caller: Principal, path: str) -> None:
        vp, _, target = self._locate(caller, path, P.WRITE_VOLUME)
        if not vp.parts:
            raise InvalidParameter(f"'{vp.wire}' is the root of the volume; delete the volume instead")
        if not target.is_dir():
            raise NotFound(f"Directory '{vp.wire}' does not exist")
        try:
            target.rmdir()
        except OSError:
            raise InvalidState(f"Directory '{vp.wire}' is not empty; delete its contents first") from None


def _make_dirs(root: Path, directory: Path, vp: VolumePath) -> list[Path]:
    """mkdir -p inside the volume; returns the directories it created, outermost first."""
    made: list[Path] = []
    node = root
    for part in directory.relative_to(root).parts:
        node = node / part
        if node.is_dir():
            continue
        if node.exists():
            raise AlreadyExists(f"'{vp.wire}' cannot be created: a file is in the way at "
                                f"'/{node.relative_to(root)}' inside the volume")
        try:
            node.mkdir()
        except FileExistsError:  # created concurrently
            if not node.is_dir():
                raise AlreadyExists(f"A file is in the way at '/{node.relative_to(root)}' inside the volume") from None
            continue
        made.append(node)
    return made


def _entry(entry: os.DirEntry, vp: VolumePath, root: Path) -> dict | None:
    """A DirectoryEntry; symlinks leading out of the volume are left out."""
    if entry.is_symlink():
        real = Path(os.path.realpath(entry.path))
        if real != root and root not in real.parents:
            return None
    try:
        is_dir = entry.is_dir()
        st = entry.stat()
    except OSError:  # vanished or dangling
        return None
    wire = f"{vp.wire}/{entry.name}"
    if is_dir:
        return {"path": wire + "/", "is_directory": True, "name": entry.name}
    return {"path": wire, "is_directory": False, "file_size": st.st_size,
            "last_modified": int(st.st_mtime * 1000), "name": entry.name}


__all__ = [
    "FileStat",
    "Upload",
    "VolumeFiles",
    "parse_path",
]
