"""Per-model virtualenvs: a model whose requirements differ from the server's runs its workers in a
virtualenv built by uv from the `requirements.txt` MLflow saved next to `MLmodel`.

Environments are cached under `cache_root/<sha256 of the requirements and the Python version>` and
shared by every model with the same requirements. A build happens in a temporary directory that is
renamed into place only once the worker module imports there, so a crash never leaves a half-built
environment in the cache; a lock file keeps two servers from building the same one at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import lakeforge
from lakeforge.errors import FailedPrecondition

log = logging.getLogger(__name__)

# What the worker itself imports beyond the model's own requirements (uvloop is optional, faster).
WORKER_REQUIREMENTS = ("orjson>=3.10", "uvloop>=0.19; sys_platform != 'win32'")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def ensure_environment(model_dir: Path, cache_root: Path, timeout_s: float = 600) -> Path:
    """The python executable of the model's environment, built first if it is not cached yet."""
    model_dir, cache_root = Path(model_dir), Path(cache_root)
    requirements = environment_requirements(model_dir)
    key = environment_key(requirements)
    env = cache_root / key
    python = env / "bin" / "python"
    if python.exists():
        return python
    cache_root.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    with _locked(cache_root / f"{key}.lock", deadline):
        if python.exists():  # another server built it while we waited for the lock
            return python
        for stale in cache_root.glob(f".build-{key}-*"):  # what a crashed build left
            shutil.rmtree(stale, ignore_errors=True)
        build = cache_root / f".build-{key}-{uuid.uuid4().hex[:8]}"
        try:
            _build(build, requirements, deadline)
            os.rename(build, env)  # atomic: the cache holds whole environments only
        finally:
            shutil.rmtree(build, ignore_errors=True)
    log.info("built the model environment %s for %s", env, model_dir)
    return python


def environment_requirements(model_dir: Path) -> list[str]:
    """The model's requirements, normalized (no comments, no blanks, sorted, unique), plus what the
    worker needs."""
    path = Path(model_dir) / "requirements.txt"
    if not path.is_file():
        raise FailedPrecondition(f"The model at {model_dir} has no requirements.txt to build its environment from")
    lines = set()
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line:
            lines.add(" ".join(line.split()))
    names = {_name(line) for line in lines}
    if not names & {"mlflow", "mlflow-skinny"}:
        lines.add("mlflow")  # the worker loads the model with mlflow.pyfunc
    lines.update(r for r in WORKER_REQUIREMENTS if _name(r) not in names)
    return sorted(lines)


def environment_key(requirements: list[str]) -> str:
    text = "\n".join([f"python {platform.python_version()} {sys.implementation.cache_tag}", *requirements])
    return hashlib.sha256(text.encode()).hexdigest()


def _name(requirement: str) -> str:
    m = _NAME.match(requirement)
    return re.sub(r"[-_.]+", "-", m.group(1)).lower() if m else requirement


def _uv() -> str:
    uv = shutil.which("uv") or str(Path(sys.prefix) / "bin" / "uv")
    if not os.access(uv, os.X_OK):
        raise FailedPrecondition("uv is needed to build model environments but was not found on PATH")
    return uv


def _build(env: Path, requirements: list[str], deadline: float) -> None:
    uv = _uv()
    _run([uv, "venv", "--quiet", "--relocatable", "--python", sys.executable, str(env)], deadline, "creating the venv")
    reqs = env / "lakeforge-requirements.txt"
    reqs.write_text("\n".join(requirements) + "\n")
    _run([uv, "pip", "install", "--quiet", "--python", str(env / "bin" / "python"), "-r", str(reqs)], deadline,
         "installing the model's requirements")
    # The worker's own code comes from this lakeforge, without its (server) dependencies: a link to
    # the package in a directory of its own, put on sys.path by a relative .pth (the env moves).
    source = env / "lakeforge-src"
    source.mkdir()
    (source / "lakeforge").symlink_to(Path(lakeforge.__file__).resolve().parent, target_is_directory=True)
    site = _run([str(env / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                deadline, "locating site-packages").strip()
    (Path(site) / "lakeforge-worker.pth").write_text(os.path.relpath(source, site) + "\n")
    _run([str(env / "bin" / "python"), "-c", "import lakeforge.serving.worker"], deadline,
         "importing the model worker in the new environment", cwd=env)


def _run(args: list[str], deadline: float, doing: str, cwd: Path | None = None) -> str:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FailedPrecondition(f"Building the model environment timed out before {doing}")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=remaining, env=env, cwd=cwd,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise FailedPrecondition(f"Building the model environment timed out while {doing}") from None
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise FailedPrecondition(f"Building the model environment failed while {doing}: {tail}")
    return done.stdout


class _locked:
    """An exclusive lock file held across processes, waited for until the deadline."""

    def __init__(self, path: Path, deadline: float):
        self.path, self.deadline = path, deadline

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() >= self.deadline:
                    os.close(self.fd)
                    raise FailedPrecondition("Timed out waiting for another process building the same "
                                             "model environment") from None
                time.sleep(0.2)

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
