"""One labkit command at a time per lab: an flock on the lab's .lock, released when the process ends."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from labkit.errors import UsageError


@contextlib.contextmanager
def lab_lock(path: Path, lab: str, action: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UsageError(
                f"lab {lab} is busy: {holder}",
                f"wait for it to finish, then run `labkit {action}` again",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"labkit {action} (pid {os.getpid()})\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
