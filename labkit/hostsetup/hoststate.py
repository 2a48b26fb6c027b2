"""What host mode started, recorded in host.json under a lock: read by every later command to find the
network namespace and the daemons it must stop."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import HostError
from labkit.hostsetup.processes import NETNS_DIR, Daemon
from labkit.paths import host_run_dir

STATE_VERSION = 1


@dataclass(frozen=True)
class HostState:
    """What host mode started, as recorded in host.json.

    ``already_up`` is True in the value of a ``host_up`` that found host mode up and started nothing.
    """

    netns: str
    created_netns: bool
    daemons: tuple[Daemon, ...] = ()
    started_at: str = ""
    qemu_as_root: bool = False
    already_up: bool = field(default=False, compare=False)
    restarted: int | None = field(default=None, compare=False)
    """Set by a ``host_up`` that found libvirtd dead in a live namespace and started it again: the number of
    running VMs it took back."""

    def daemon(self, name: str) -> Daemon | None:
        return next((d for d in self.daemons if d.name == name), None)

    @property
    def libvirtd_pid(self) -> int | None:
        d = self.daemon("libvirtd")
        return d.pid if d else None

    @property
    def virtlogd_pid(self) -> int | None:
        d = self.daemon("virtlogd")
        return d.pid if d else None

    @property
    def netns_path(self) -> Path:
        return NETNS_DIR / self.netns

    @property
    def healthy(self) -> bool:
        """libvirtd still runs and the namespace still exists."""
        d = self.daemon("libvirtd")
        return d is not None and d.running and self.netns_path.exists()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("already_up")
        data.pop("restarted")
        data["daemons"] = [asdict(d) for d in self.daemons]
        return {"version": STATE_VERSION, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostState:
        return cls(
            netns=str(data["netns"]),
            created_netns=bool(data["created_netns"]),
            daemons=tuple(
                Daemon(str(d["name"]), int(d["pid"]), int(d["start_ticks"])) for d in data.get("daemons", [])
            ),
            started_at=str(data.get("started_at", "")),
            qemu_as_root=bool(data.get("qemu_as_root", False)),
        )


# --------------------------------------------------------------------------------------------- state file


def state_file() -> Path:
    return host_run_dir() / "host.json"


def host_state() -> HostState | None:
    """The recorded host-mode state, or None when host mode is not up (see ``HostState.healthy``)."""
    path = state_file()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise HostError(
            f"cannot read {path}: {exc}", hint=f"remove {path} if no labkit libvirtd runs"
        ) from exc
    try:
        return HostState.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise HostError(
            f"{path} is malformed: {exc}", hint=f"remove {path} if no labkit libvirtd runs"
        ) from exc


def write_state(state: HostState) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".host.", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(state.to_json(), f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C too: no temporary file left behind; the error itself goes on unchanged
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked_state() -> Iterator[None]:
    """Serialise host up/down between processes."""
    run_dir = host_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "host.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
