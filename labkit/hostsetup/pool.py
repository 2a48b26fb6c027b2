"""The pool of libvirt hosts labs may go to: ``$LABKIT_HOME/hosts.json``, written by ``labkit hosts add|remove``.

``local`` (this machine, ``qemu:///system``) is always in the pool and never written to the file. Every other
host is reached over SSH, at a ``qemu+ssh://USER@HOST/system`` URI, the form both libvirt-python and
vagrant-libvirt speak.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from labkit.errors import HostError, UsageError
from labkit.hostsetup.hostmode import local_host
from labkit.hostsetup.second_host.layout import SecondHostPaths
from labkit.machines.host_ssh import HostSsh, host_ssh_from_uri
from labkit.machines.libvirt_host import LibvirtHost, Netns
from labkit.model.scenario import SLUG_RE
from labkit.paths import host_pool_file, labs_dir
from labkit.state import write_json

LOCAL = "local"
LOCAL_URI = "qemu:///system"
POOL_VERSION = 1


@dataclass(frozen=True)
class PoolHost:
    """A host of the pool: its name for users, its libvirt URI, and at most how many labs go there."""

    name: str
    uri: str
    max_labs: int | None = None

    @property
    def local(self) -> bool:
        return self.name == LOCAL


def check_host_name(name: str) -> str:
    if not SLUG_RE.match(name):
        raise UsageError(f"{name!r} is not a valid host name", hint="use lowercase letters, digits and '-'")
    return name


def check_host_uri(uri: str) -> str:
    """A remote host's URI must be ``qemu+ssh://[USER@]HOST[:PORT]/system[?PARAMS]``; else say the fix."""
    parts = urlsplit(uri)
    example = "qemu+ssh://root@HOST/system"
    if parts.scheme == "qemu" and not parts.hostname:
        raise UsageError(
            f"{uri!r} is this machine's libvirt", hint="it is the host `local`, always in the pool"
        )
    if parts.scheme != "qemu+ssh":
        raise UsageError(
            f"{uri!r}: labkit reaches other hosts over SSH only (not {parts.scheme or 'a bare address'})",
            hint=f"give a URI like {example}",
        )
    if not parts.hostname:
        raise UsageError(f"{uri!r} names no host", hint=f"give a URI like {example}")
    if parts.path != "/system":
        raise UsageError(
            f"{uri!r} is not a system libvirtd (path {parts.path or 'missing'})",
            hint=f"end the path with /system, as in {example}",
        )
    return uri


def _read() -> list[PoolHost]:
    path = host_pool_file()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the host pool {path}: {exc}", hint=f"fix or remove {path}") from exc
    try:
        return [PoolHost(str(h["name"]), str(h["uri"]), _max_labs(h.get("max_labs"))) for h in data["hosts"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"the host pool {path} is malformed: {exc}", hint=f"fix or remove {path}") from exc


def _max_labs(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"max_labs {value!r} is not a number")
    return value


def _write(hosts: list[PoolHost]) -> None:
    data: dict[str, Any] = {"version": POOL_VERSION, "hosts": [asdict(h) for h in hosts]}
    write_json(host_pool_file(), data)


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    path = host_pool_file().with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def pool_hosts() -> list[PoolHost]:
    """Every host of the pool, ``local`` first."""
    return [PoolHost(LOCAL, LOCAL_URI), *_read()]


def pool_host(name: str) -> PoolHost:
    for host in pool_hosts():
        if host.name == name:
            return host
    raise UsageError(f"no host {name!r} in the pool", hint="see `labkit hosts list`")


_remote_hosts: dict[tuple[str, str, Netns | None, HostSsh], LibvirtHost] = {}
_remote_hosts_lock = threading.Lock()


@atexit.register
def _close_remote_hosts() -> None:
    """Close them while Python still runs: a libvirt connection collected at interpreter exit prints a
    traceback (its module is half torn down by then)."""
    with _remote_hosts_lock:
        for host in _remote_hosts.values():
            host.close()


def libvirt_host(host: PoolHost | str) -> LibvirtHost:
    """A host of the pool (or its name) as a libvirt host: ``local`` with host mode's namespace when it is
    up; a remote one with its SSH login, reached from that same namespace. A remote host is one value per
    process: every lab there shares its libvirt connection and its SSH connection (a web server loads a lab
    per request)."""
    local = local_host()
    if host == LOCAL or (isinstance(host, PoolHost) and host.local):
        return local
    found = pool_host(host) if isinstance(host, str) else host
    ssh = host_ssh_from_uri(found.uri, known_hosts=second_host_known_hosts(found.uri))
    key = (found.name, found.uri, local.netns, ssh)
    with _remote_hosts_lock:
        if key not in _remote_hosts:
            _remote_hosts[key] = LibvirtHost(name=found.name, uri=found.uri, netns=local.netns, ssh=ssh)
        return _remote_hosts[key]


def lab_host(lab: str, host: str) -> LibvirtHost:
    """The host lab ``lab`` lives on, by the name its state records; one line with the fix when the pool
    does not have it."""
    if host != LOCAL and host not in {h.name for h in pool_hosts()}:
        raise HostError(
            f"lab {lab} lives on host {host}, which is not in the pool",
            hint=f"add it again with `labkit hosts add {host} URI` (see `labkit hosts list`)",
        )
    return libvirt_host(host)


def second_host_known_hosts(uri: str) -> Path | None:
    """The known_hosts of a second host on this machine, when ``uri``'s ``command`` is its ssh wrapper:
    libvirt's ssh reads it through the wrapper's config, labkit's own SSH from here."""
    command = parse_qs(urlsplit(uri).query).get("command", [""])[0]
    if not command:
        return None
    root = Path(command).parent.parent
    paths = SecondHostPaths(root)
    if paths.ssh_command != Path(command) or not paths.known_hosts.is_file():
        return None
    return paths.known_hosts


def add_host(name: str, uri: str, max_labs: int | None = None) -> PoolHost:
    """Add a host to the pool (checked, not contacted: see ``labkit hosts add``)."""
    check_host_name(name)
    if name == LOCAL:
        raise UsageError(
            "`local` is this machine and always in the pool", hint="give the new host another name"
        )
    check_host_uri(uri)
    if max_labs is not None and max_labs < 1:
        raise UsageError(f"--max-labs {max_labs}: a host takes at least one lab", hint="give 1 or more")
    host = PoolHost(name, uri, max_labs)
    with _locked():
        hosts = _read()
        for other in hosts:
            if other.name == name:
                raise UsageError(
                    f"host {name} is already in the pool ({other.uri})",
                    hint=f"`labkit hosts remove {name}` first to change it",
                )
            if other.uri == uri:
                raise UsageError(f"{uri} is already in the pool as {other.name}", hint="one name per host")
        _write([*hosts, host])
    return host


def labs_on(name: str) -> list[str]:
    """Labs whose state says they live on host ``name`` (a state without a host: ``local``)."""
    root = labs_dir()
    found = []
    for state in sorted(root.glob("*/state.json")) if root.is_dir() else []:
        try:
            data = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("host", LOCAL) == name:
            found.append(state.parent.name)
    return found


def remove_host(name: str) -> PoolHost:
    """Remove a host from the pool; refused for ``local`` and while labs live there."""
    if name == LOCAL:
        raise UsageError("`local` is this machine and cannot leave the pool")
    with _locked():
        hosts = _read()
        host = next((h for h in hosts if h.name == name), None)
        if host is None:
            raise UsageError(f"no host {name!r} in the pool", hint="see `labkit hosts list`")
        labs = labs_on(name)
        if labs:
            raise UsageError(
                f"host {name} still has {len(labs)} lab(s): {', '.join(labs)}",
                hint="destroy them first (`labkit destroy LAB`)",
            )
        _write([h for h in hosts if h.name != name])
    return host
