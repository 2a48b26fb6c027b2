"""One labkit command at a time per lab: an flock on the lab's .lock, released when the process ends.

Every read-modify-write of a lab's state.json happens under it (see ``Lab._locked``)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from labkit.errors import UsageError

_held = threading.local()


@contextlib.contextmanager
def lab_lock(path: Path, lab: str, action: str) -> Iterator[None]:
    """Hold the lab's lock, or raise UsageError naming its holder. Re-entrant within one thread: ``solve``
    holds it while its ``check`` and ``snapshot`` take it again, so nothing runs between them."""
    key = os.path.abspath(path)
    held: set[str] = _held.__dict__.setdefault("paths", set())
    if key in held:
        yield
        return
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
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
