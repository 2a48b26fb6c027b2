"""Files in the host cache: written next to where they go and renamed into place, so no reader ever sees half a
file, and hashed once: a file's sha256 is remembered next to it, keyed on its size and mtime."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from labkit.errors import HostError

CHUNK = 1 << 20
REFETCH_HINT = "delete it and `labkit artifacts fetch` again, or `labkit artifacts import DIR` a good copy"


@contextlib.contextmanager
def replacing(dest: Path, *, mode: int | None = 0o644, suffix: str = ".part") -> Iterator[Path]:
    """A temporary file next to ``dest`` for the block to fill: renamed onto ``dest`` (with ``mode``, when given)
    if the block ends without an error, deleted otherwise."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if mode is not None:
            tmp.chmod(mode)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (the new file keeps mkstemp's private mode)."""
    with replacing(path, mode=None, suffix=".tmp") as tmp:
        tmp.write_bytes(data)


def copy_file(src: Path, dest: Path) -> None:
    with replacing(dest) as tmp:
        shutil.copyfile(src, tmp)


def hash_file(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.sha256.json")


def file_sha256(path: Path) -> str:
    """sha256 of a cached file, remembered next to it (keyed on size and mtime) so it is hashed once."""
    stat = path.stat()
    stamp_file = _stamp_path(path)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        data = json.loads(stamp_file.read_text())
        if data["size"] == stat.st_size and data["mtime_ns"] == stat.st_mtime_ns:
            return str(data["sha256"])
    value = hash_file(path)
    stamp(path, value)
    return value


def stamp(path: Path, sha256: str) -> None:
    """Remember ``sha256`` as the hash of ``path`` as it is now."""
    stat = path.stat()
    with contextlib.suppress(OSError):
        write_atomic(
            _stamp_path(path),
            json.dumps({"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}).encode(),
        )


def remove(path: Path) -> None:
    """Delete a cached file and its remembered hash."""
    for p in (path, _stamp_path(path)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def holds(path: Path, expected: str | None) -> bool:
    """Whether ``path`` is a file with sha256 ``expected`` (never while nothing is expected yet)."""
    return expected is not None and path.is_file() and file_sha256(path) == expected


def changed_error(what: str, path: Path, got: str, expected: str, recorded_in: str = "") -> HostError:
    """The refusal of a cached file whose sha256 is no longer the one it was verified with."""
    return HostError(
        f"{what}: the cached {path} has sha256 {got}, expected {expected}{recorded_in}: "
        "refused (corrupted or replaced)",
        REFETCH_HINT,
    )
