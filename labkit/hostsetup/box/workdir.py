"""A box's build directory: one build at a time (a file lock), and safe removal of work trees
(mmdebstrap mounts /proc, /sys and /dev inside the root file system while it runs: never delete a tree
that still has something mounted below it)."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from labkit.errors import HostError
from labkit.hostsetup.box.buildlog import Progress


def _mounts_below(path: Path) -> list[Path]:
    prefix = str(path.resolve())
    found: list[Path] = []
    try:
        lines = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 5:
            continue
        mount_point = fields[4].encode().decode("unicode_escape")
        if mount_point == prefix or mount_point.startswith(prefix + "/"):
            found.append(Path(mount_point))
    return found


def remove_tree(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        return
    for mount_point in sorted(_mounts_below(path), key=lambda p: len(p.parts), reverse=True):
        subprocess.run(["umount", "--lazy", str(mount_point)], check=False, capture_output=True)
    left = _mounts_below(path)
    if left:
        raise HostError(
            f"refusing to delete {path}: {left[0]} is still mounted",
            f"umount it (umount --lazy {left[0]}) and run the build again",
        )
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def locked(lock_path: Path, progress: Progress) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("waiting for another build of this box to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


__all__ = ["locked", "remove_tree"]
