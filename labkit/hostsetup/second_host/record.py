"""What ``labkit host up --name NAME`` started, recorded in the host's ``host.json``: ``down`` stops exactly that,
by PID, and removes the namespace and veth it made."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from labkit.errors import HostError
from labkit.hostsetup.processes import NETNS_DIR, Daemon
from labkit.hostsetup.second_host.layout import SecondHostPaths
from labkit.paths import second_hosts_dir
from labkit.state import write_json

STATE_VERSION = 1
DAEMONS = ("virtlogd", "libvirtd", "sshd")
"""In start order; stopped in the reverse order."""


@dataclass(frozen=True)
class SecondHostState:
    """A second host as recorded. ``peer_netns`` is the network namespace labkit reaches it from; None is the
    namespace labkit itself was started in (the machine's own, on a workstation)."""

    name: str
    netns: str
    peer_netns: str | None
    subnet: str
    created_netns: bool
    daemons: tuple[Daemon, ...] = ()
    started_at: str = ""
    qemu_as_root: bool = False
    already_up: bool = field(default=False, compare=False)
    restarted: tuple[str, ...] = field(default=(), compare=False)
    """Set by an ``up`` that found some daemons dead and started them again: their names."""

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def address(self) -> str:
        """The host's address: where its sshd listens."""
        return str(self.network[2])

    @property
    def peer_address(self) -> str:
        return str(self.network[1])

    def daemon(self, name: str) -> Daemon | None:
        return next((d for d in self.daemons if d.name == name), None)

    def with_daemon(self, daemon: Daemon) -> SecondHostState:
        others = tuple(d for d in self.daemons if d.name != daemon.name)
        return replace(self, daemons=(*others, daemon))

    @property
    def healthy(self) -> bool:
        """Every daemon runs and the network namespace exists."""
        running = all((d := self.daemon(n)) is not None and d.running for n in DAEMONS)
        return running and (NETNS_DIR / self.netns).exists()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("already_up")
        data.pop("restarted")
        data["daemons"] = [asdict(d) for d in self.daemons]
        return {"version": STATE_VERSION, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SecondHostState:
        peer = data.get("peer_netns")
        return cls(
            name=str(data["name"]),
            netns=str(data["netns"]),
            peer_netns=None if peer is None else str(peer),
            subnet=str(ipaddress.IPv4Network(data["subnet"])),
            created_netns=bool(data["created_netns"]),
            daemons=tuple(
                Daemon(str(d["name"]), int(d["pid"]), int(d["start_ticks"])) for d in data.get("daemons", [])
            ),
            started_at=str(data.get("started_at", "")),
            qemu_as_root=bool(data.get("qemu_as_root", False)),
        )


def read_state(paths: SecondHostPaths) -> SecondHostState | None:
    """The recorded state, or None when the host is not up."""
    try:
        data = json.loads(paths.state.read_text())
        return SecondHostState.from_json(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HostError(
            f"{paths.state} is unreadable: {exc}",
            hint=f"stop what it started by hand (see its pids), then remove {paths.state}",
        ) from exc


def write_state(paths: SecondHostPaths, state: SecondHostState) -> None:
    write_json(paths.state, state.to_json())


def recorded_states() -> list[SecondHostState]:
    """Every second host recorded on this machine (up or stale), unreadable records skipped."""
    found = []
    root = second_hosts_dir()
    for path in sorted(root.glob("*/host.json")) if root.is_dir() else []:
        with contextlib.suppress(HostError):
            state = read_state(SecondHostPaths(path.parent))
            if state is not None:
                found.append(state)
    return found


@contextlib.contextmanager
def second_hosts_locked() -> Iterator[None]:
    """One ``host up|down --name`` at a time on this machine: they pick subnets from one range."""
    root = second_hosts_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
