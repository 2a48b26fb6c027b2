"""The lock file (``artifact_store()/artifacts.lock.json``): what this host recorded for each artifact (section
``artifacts``: its sha256) and each image (section ``images``: its digest, archive sha256 and image ID), with how
and when. Several labkit processes may fetch at once, so every change is a read-modify-write under an flock.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit import paths
from labkit.artifacts.files import write_atomic
from labkit.errors import HostError

LOCK_FILE_NAME = "artifacts.lock.json"

WarnFn = Callable[[str], None]
"""Receives the warning given when a value is recorded on first use (nothing published to check it against)."""

_thread_lock = threading.Lock()


def lock_file() -> Path:
    return paths.artifact_store() / LOCK_FILE_NAME


def _read_lock(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": 1, "artifacts": {}}
    except (OSError, ValueError) as exc:
        raise HostError(
            f"cannot read the artifact lock file {path}: {exc}",
            "fix or delete it (deleting forgets the sha256 recorded at first download)",
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("artifacts"), dict):
        raise HostError(f"the artifact lock file {path} is malformed", "fix or delete it")
    return data


def lock_data() -> dict[str, Any]:
    """The whole lock file (``artifacts`` and ``images`` sections), read-only."""
    return _read_lock(lock_file())


@contextlib.contextmanager
def editing_lock() -> Iterator[dict[str, Any]]:
    """Read-modify-write the lock file under an flock: the block changes the dict it is given."""
    path = lock_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _thread_lock, open(path.with_name(path.name + ".lock"), "a+") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        try:
            data = _read_lock(path)
            yield data
            write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
        finally:
            fcntl.flock(guard, fcntl.LOCK_UN)


@dataclass(frozen=True)
class LockSection:
    """One section of the lock file. Each entry, under its key, holds the value a file is checked against
    (``field``) when the catalog pins none, and how and when it was recorded."""

    name: str
    field: str

    def recorded(self, key: str) -> dict[str, Any] | None:
        """The entry for ``key``, if any."""
        entry = lock_data().get(self.name, {}).get(key)
        return entry if isinstance(entry, dict) else None

    def expected(self, key: str, pin: str) -> str | None:
        """The pin, else the value recorded on this host, else None (not known yet)."""
        if pin:
            return pin
        entry = self.recorded(key)
        return str(entry[self.field]) if entry and entry.get(self.field) else None

    def source(self, key: str, pinned: str | None, unrecorded: str) -> str:
        """Where the expected value comes from: ``pinned`` (a description of the pin, None without one), else
        the entry's how and when, else ``unrecorded``."""
        if pinned:
            return pinned
        entry = self.recorded(key)
        if entry:
            return f"recorded {entry.get('recorded', '?')} ({entry.get('how', '?')})"
        return unrecorded

    def record(self, key: str, entry: dict[str, Any], conflict: Callable[[str], HostError]) -> None:
        """Write ``entry`` (with the time) under ``key``; raises ``conflict(value recorded before)`` instead
        when this host recorded another value for it."""
        with editing_lock() as data:
            section = data.setdefault(self.name, {})
            before = section.get(key)
            if isinstance(before, dict) and before.get(self.field) not in (None, entry[self.field]):
                raise conflict(str(before[self.field]))
            section[key] = {
                **entry,
                "recorded": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }


ARTIFACTS = LockSection("artifacts", "sha256")
IMAGES = LockSection("images", "digest")
