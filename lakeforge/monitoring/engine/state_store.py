"""A monitor's private state directory: window states, the files they were folded from, the watermark.

Layout: `manifest.pkl` names everything current: the watermark (the Delta version last read), a
fingerprint of the configuration the states were computed under, each current data file of the
monitored table with its commit version and the windows it touched, and one state file per window
(`w-<uuid>.pkl`, a dict group key -> GroupState, never rewritten in place). A refresh writes the state
files of the windows it changed under new names, then replaces the manifest (write a temporary file,
fsync, os.replace): that is the commit, and the last step of a refresh. Files no manifest names (left by
an earlier refresh, or by one that failed before its commit) are deleted after the next commit.
The files are pickles written and read only by the engine, in a directory no one else writes.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lakeforge.errors import ResourceConflict

FORMAT = 2
MANIFEST = "manifest.pkl"
LOCK = "refresh.lock"

WindowKey = tuple[str, int]           # (granularity, window start in epoch microseconds)
GroupKey = tuple[str | None, str | None, str | None]  # (slice_key, slice_value, model id)


@dataclass
class FileEntry:
    version: int                      # commit version that added the file (the fold order, with the path)
    windows: frozenset                # WindowKeys the file has rows in


@dataclass
class Manifest:
    fingerprint: str
    source_version: int
    files: dict[str, FileEntry] = field(default_factory=dict)
    windows: dict[WindowKey, str] = field(default_factory=dict)   # window -> state file name
    baseline: tuple[str, str] | None = None   # (baseline cache key, state file name)
    snapshot: tuple[int, str] | None = None   # the last snapshot: (window start, state file name)
    tables: tuple = (None, None)              # versions of the profile and drift tables this state wrote
    format: int = FORMAT


class StateStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._written: list[str] = []

    @contextmanager
    def lock(self):
        """One refresh at a time per monitor: a second one fails at once instead of racing the first."""
        with (self.root / LOCK).open("a") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ResourceConflict("Another refresh of this monitor is running") from None
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def manifest(self) -> Manifest | None:
        path = self.root / MANIFEST
        if not path.exists():
            return None
        with path.open("rb") as f:
            manifest = pickle.load(f)
        return manifest if getattr(manifest, "format", None) == FORMAT else None

    def load(self, name: str):
        with (self.root / name).open("rb") as f:
            return pickle.load(f)

    def save(self, obj) -> str:
        """Write an immutable state file under a new name; it counts once a committed manifest names it."""
        name = f"w-{uuid.uuid4().hex}.pkl"
        with (self.root / name).open("wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        self._written.append(name)
        return name

    def commit(self, manifest: Manifest) -> None:
        for name in self._written:  # the state files reach the disk before the manifest that names them
            _fsync(self.root / name)
        tmp = self.root / f".manifest-{uuid.uuid4().hex}.tmp"
        with tmp.open("wb") as f:
            pickle.dump(manifest, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / MANIFEST)
        self._written.clear()
        self._collect(manifest)

    def discard(self) -> None:
        """Remove the state files this refresh wrote (it failed or was cancelled)."""
        for name in self._written:
            (self.root / name).unlink(missing_ok=True)
        self._written.clear()

    def _collect(self, manifest: Manifest) -> None:
        live = set(manifest.windows.values())
        live.update(name for _, name in filter(None, [manifest.baseline, manifest.snapshot]))
        for path in self.root.iterdir():
            if path.name != MANIFEST and path.name not in live and path.suffix in (".pkl", ".tmp"):
                path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
