"""A libvirt host as a value: where labs live. Every libvirt call of a lab goes through the host it was given.

This machine is ``local``, reached at ``qemu:///system``; in host mode its libvirtd runs in a network namespace
that labkit enters before it talks to the VMs. A remote host is the same value with a ``qemu+ssh://`` URI: it
is connected to within ``connect_timeout`` seconds or reported unreachable (:mod:`labkit.machines.reach`);
labkit also logs in to it over SSH (:mod:`labkit.machines.host_ssh`): its VMs' management networks live there,
so connections to its nodes jump through it, and commands such as ``nft`` run there.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shlex
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import HostError
from labkit.machines.host_ssh import (
    CommandResult,
    HostSsh,
    host_ssh_from_uri,
    open_host,
    run_over_ssh,
)
from labkit.machines.reach import is_remote, open_within

log = logging.getLogger(__name__)

LOCAL_URI = "qemu:///system"
DEFAULT_POOL = "default"
DEFAULT_POOL_PATH = Path("/var/lib/libvirt/images")
CLONE_NEWNET = 0x40000000
HOST_UP_HINT = "no systemd on this host: run `sudo labkit host up`"
SYSTEMD_HINT = "sudo systemctl start libvirtd"
POOL_XML = """<pool type='dir'>
  <name>{name}</name>
  <target><path>{path}</path></target>
</pool>
"""


@dataclass(frozen=True)
class Netns:
    """The network namespace labkit enters before it talks to a host: host mode's, where this machine's VM
    networks live and where the links to remote hosts start; and the file that records it."""

    name: str
    path: Path
    recorded_in: Path


@dataclass
class LibvirtHost:
    """One libvirt host: its name for users, its URI, the storage pool for VM disks, and (in host mode) the
    network namespace labkit enters to reach the VMs. ``connect`` keeps one connection; ``open`` makes a new
    one (a connection per thread where libvirt calls run in parallel)."""

    name: str = "local"
    uri: str = LOCAL_URI
    pool: str = DEFAULT_POOL
    pool_path: Path = DEFAULT_POOL_PATH
    netns: Netns | None = None
    connect_timeout: float = 20.0
    """Seconds a remote host has to answer a new connection."""
    ssh: HostSsh | None = None
    """How labkit logs in to a remote host itself; None: from its URI (see :meth:`ssh_login`)."""
    _conn: Any = field(default=None, init=False, repr=False, compare=False)
    _gateway: Any = field(default=None, init=False, repr=False, compare=False)
    _gateway_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    @property
    def remote(self) -> bool:
        """True for a host reached over the network (``qemu+ssh://HOST/system``)."""
        return is_remote(self.uri)

    @property
    def host_mode(self) -> bool:
        """True when labkit runs this host's libvirtd itself, in a network namespace."""
        return self.netns is not None

    def enter(self) -> str | None:
        """Move this process into the host's network namespace (host mode); its name, or None."""
        if self.netns is None:
            return None
        if not self.netns.path.exists():
            raise HostError(
                f"host mode is recorded in {self.netns.recorded_in} but network namespace "
                f"{self.netns.name!r} is gone",
                hint="run `sudo labkit host down && sudo labkit host up`",
            )
        enter_netns(self.netns.name, self.netns.path)
        return self.netns.name

    def open(self) -> Any:
        """A new libvirt connection to this host (after entering its namespace); a remote host that does not
        answer within ``connect_timeout`` raises HostError "host NAME is unreachable: why"."""
        self.enter()
        if self.remote:
            return open_within(self.uri, self.connect_timeout, self.name)
        return libvirt_connect(self.uri)

    def connect(self) -> Any:
        """This host's shared libvirt connection, opened again if it died. A remote one is asked once first:
        without an event loop libvirt learns that the far side went away (its libvirtd restarted, the SSH
        link dropped) only when a call fails, and that call would be the caller's."""
        if self._conn is None or not _alive(self._conn) or (self.remote and not _answers(self._conn)):
            self._conn = self.open()
        return self._conn

    def ensure_pool(self) -> Any:
        """The storage pool VM disks go in, defined, started and autostarted if it was not."""
        return ensure_storage_pool(self.connect(), self.pool, self.pool_path)

    def ssh_login(self) -> HostSsh:
        """How labkit logs in to this remote host over SSH."""
        if not self.remote:
            raise HostError(f"host {self.name} is this machine: labkit does not log in to it over SSH")
        return self.ssh or host_ssh_from_uri(self.uri)

    def gateway(self) -> Any:
        """The SSH connection to this remote host that connections to its nodes go through (fabric's
        ``gateway``): one per host, shared by threads, opened again when it died; HostError within the login's
        ``connect_timeout`` when the host does not answer."""
        with self._gateway_lock:
            if self._gateway is None or not self._gateway.is_connected:
                self.enter()
                self._gateway = open_host(self.ssh_login(), self.name)
            return self._gateway

    def run(self, argv: list[str], stdin: str | None = None, timeout: float = 30.0) -> CommandResult:
        """``argv`` run on this host, fed ``stdin``, within ``timeout`` seconds: here (after entering its
        namespace), or over SSH on a remote host. A missing program exits 127, as in a shell."""
        if self.remote:
            return run_over_ssh(self.gateway(), shlex.join(argv), self.name, stdin, timeout)
        self.enter()
        program = shutil.which(argv[0]) or shutil.which(argv[0], path="/usr/sbin:/sbin")
        if program is None:
            return CommandResult(127, "", f"{argv[0]}: not found")
        try:
            done = subprocess.run(
                [program, *argv[1:]],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise HostError(f"{' '.join(argv)} did not finish within {timeout:.0f} s") from None
        return CommandResult(done.returncode, done.stdout, done.stderr)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                log.debug("closing the libvirt connection to %s failed", self.name, exc_info=True)
            self._conn = None
        with self._gateway_lock:
            if self._gateway is not None:
                self._gateway.close()
                self._gateway = None


def _answers(conn: Any) -> bool:
    try:
        conn.getLibVersion()
        return True
    except Exception:
        return False


def _alive(conn: Any) -> bool:
    try:
        return bool(conn.isAlive())
    except Exception:
        return False


def _ns_id(path: Path | str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def enter_netns(name: str, path: Path) -> None:
    """setns(2) into the network namespace at ``path``. It switches only the *calling thread*: call it from the
    main thread before any other thread starts; threads and subprocesses created later inherit it. Idempotent.
    /sys/class/net still shows the host's interfaces (sysfs is bound to where it was mounted): use ``ip``."""
    if _ns_id(path) == _ns_id("/proc/self/ns/net"):
        return
    if threading.current_thread() is not threading.main_thread():
        raise HostError("entering a network namespace must happen on the main thread")
    others = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
    if others:
        log.warning("entering netns %s while other threads run (they stay outside): %s", name, others)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise HostError(
                f"cannot enter network namespace {name!r}: {os.strerror(err)}",
                hint="labkit needs root in host mode: run it with sudo",
            )
    finally:
        os.close(fd)
    log.debug("entered network namespace %s", name)


def silence_libvirt_errors() -> None:
    import libvirt

    def _ignore(_ctx: object, _err: object) -> None:
        return None

    # libvirt prints every error to stderr by default, even those we catch and explain.
    libvirt.registerErrorHandler(_ignore, None)


def systemd_runs() -> bool:
    return Path("/run/systemd/system").is_dir()


def libvirt_connect(uri: str = LOCAL_URI) -> Any:
    """Open a libvirt connection, or raise HostError saying how to get libvirtd running."""
    import libvirt

    silence_libvirt_errors()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        msg = exc.get_error_message() or str(exc)
        if "ermission denied" in msg:
            hint = "run labkit as root, or add your user to the libvirt group (`sudo adduser $USER libvirt`)"
        elif systemd_runs():
            hint = SYSTEMD_HINT
        else:
            hint = HOST_UP_HINT
        raise HostError(f"cannot reach libvirtd at {uri}: {msg}", hint=hint) from exc


def ensure_storage_pool(
    conn: Any, name: str = DEFAULT_POOL, path: Path = DEFAULT_POOL_PATH, make_dir: bool = True
) -> Any:
    """Make sure the dir pool ``name`` exists, is active and autostarts (vagrant-libvirt's volumes go there).

    Returns the virStoragePool. Leaves an existing pool's definition as it is. ``make_dir`` False: ``path``
    is a path of the libvirtd's own file system view (another mount namespace), made by the caller.
    """
    import libvirt

    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        if make_dir:
            path.mkdir(parents=True, exist_ok=True)
        try:
            pool = conn.storagePoolDefineXML(POOL_XML.format(name=name, path=path), 0)
        except libvirt.libvirtError as exc:
            raise HostError(
                f"cannot define storage pool {name!r}: {exc.get_error_message()}",
                hint=f"virsh pool-define-as {name} dir --target {path}",
            ) from exc
        log.info("defined storage pool %s at %s", name, path)
    try:
        if not pool.isActive():
            pool.create(0)
        if not pool.autostart():
            pool.setAutostart(1)
    except libvirt.libvirtError as exc:
        raise HostError(
            f"cannot start storage pool {name!r}: {exc.get_error_message()}",
            hint=f"virsh pool-start {name} && virsh pool-autostart {name}",
        ) from exc
    return pool
