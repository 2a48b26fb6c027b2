"""Host mode: libvirtd without systemd, inside a private network namespace (CI machines, containers).

``host_up`` creates a network namespace, starts ``virtlogd`` and ``libvirtd`` inside it and records what
it started in ``host_run_dir()/host.json``; ``host_down`` stops exactly that. Every bridge, dnsmasq and
iptables rule libvirt makes then lives in the namespace and the host's own network is never touched. Later
labkit commands call :func:`enter_host_namespace` first so their vagrant, libvirt and SSH work runs in the
same namespace.

libvirt's UNIX socket (``/run/libvirt/libvirt-sock``) is a path, not an address, so libvirt connections work
from inside and outside the namespace alike; only IP traffic (SSH to the VMs) needs the namespace.

On a workstation libvirtd runs under systemd and none of this is needed: ``host_up`` refuses there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from labkit.errors import HostError
from labkit.machines.libvirt_host import (
    SYSTEMD_HINT,
    LibvirtHost,
    Netns,
    ensure_storage_pool,
    libvirt_connect,
    silence_libvirt_errors,
    systemd_runs,
)
from labkit.paths import host_run_dir

log = logging.getLogger(__name__)

DEFAULT_NETNS = "labkit"
DEFAULT_URI = "qemu:///system"
POOL_NAME = "default"
POOL_PATH = Path("/var/lib/libvirt/images")

NETNS_DIR = Path("/run/netns")
QEMU_CONF = Path("/etc/libvirt/qemu.conf")
DEV_KVM = Path("/dev/kvm")
LIBVIRT_SOCKETS = (Path("/run/libvirt/libvirt-sock"), Path("/run/libvirt/virtqemud-sock"))
PIDFILES = {"libvirtd": Path("/run/libvirtd.pid"), "virtlogd": Path("/run/virtlogd.pid")}
# Daemons whose presence means "libvirt is already managed by someone else" (monolithic or modular).
LIBVIRT_DAEMONS = ("libvirtd", "virtqemud")

STATE_VERSION = 1
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Daemon:
    """A process host mode started. ``start_ticks`` (field 22 of /proc/PID/stat) guards against PID reuse."""

    name: str
    pid: int
    start_ticks: int

    @property
    def running(self) -> bool:
        """True while the process lives; a zombie (exited, never reaped: PID 1 here does not reap) is not."""
        stat = _proc_stat(self.pid)
        return stat is not None and stat[0] not in ("Z", "X") and stat[1] == self.start_ticks


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


def _write_state(state: HostState) -> None:
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
def _locked() -> Iterator[None]:
    """Serialise host up/down between processes."""
    run_dir = host_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "host.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# --------------------------------------------------------------------------------------------- processes


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process, or None if there is no such process."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()  # comm may contain spaces and parentheses
    return fields[0], int(fields[19])  # fields 3 (state) and 22 (starttime) of proc(5)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _live_pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            pid = int(entry.name)
            stat = _proc_stat(pid)
            if stat is not None and stat[0] not in ("Z", "X"):
                yield pid


def find_libvirtd() -> int | None:
    """PID of a running libvirtd (or modular virtqemud), whoever started it."""
    for pid in _live_pids():
        if _comm(pid) in LIBVIRT_DAEMONS:
            return pid
    return None


def _daemon_from_pidfile(name: str) -> Daemon | None:
    try:
        pid = int(PIDFILES[name].read_text().strip())
    except (OSError, ValueError):
        return None
    stat = _proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X") or _comm(pid) != name:
        return None
    return Daemon(name, pid, stat[1])


def _wait(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _stop_process(daemon: Daemon, pidfile: Path | None, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, wait until it exited (gone or zombie), SIGKILL after ``timeout``; then drop a stale pidfile."""
    was_running = daemon.running
    if was_running:
        log.debug("stopping %s (pid %d)", daemon.name, daemon.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon.pid, signal.SIGTERM)
        if not _wait(lambda: not daemon.running, timeout):
            log.warning(
                "%s (pid %d) ignored SIGTERM for %.0f s: killing it", daemon.name, daemon.pid, timeout
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(daemon.pid, signal.SIGKILL)
            if not _wait(lambda: not daemon.running, 10.0):
                raise HostError(
                    f"{daemon.name} (pid {daemon.pid}) survived SIGKILL", hint="check `ps` for it"
                )
    if pidfile is not None:
        # A clean exit removes the pidfile; after SIGKILL (or a crash) it stays behind.
        if was_running:
            _wait(lambda: not pidfile.exists(), 2.0)
        with contextlib.suppress(OSError, ValueError):
            if int(pidfile.read_text().strip()) == daemon.pid:
                pidfile.unlink()


def _run(cmd: list[str], what: str, timeout: float = 60.0) -> None:
    """Run a command with its output in a temporary file (a daemon keeping a pipe open cannot hang us)."""
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=timeout, cwd="/", check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HostError(f"{what} failed: {exc}") from exc
        if proc.returncode != 0:
            out.seek(0)
            text = out.read().decode(errors="replace").strip()
            raise HostError(f"{what} failed (exit {proc.returncode}): {text or 'no output'}")


# --------------------------------------------------------------------------------------------- namespaces


def _ns_id(path: Path | str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def _pids_in_netns(ns: tuple[int, int]) -> list[int]:
    """Live processes (other than this one) whose network namespace is ``ns``."""
    found = []
    me = os.getpid()
    for pid in _live_pids():
        if pid == me:
            continue
        with contextlib.suppress(OSError):
            if _ns_id(f"/proc/{pid}/ns/net") == ns:
                found.append(pid)
    return found


def local_host() -> LibvirtHost:
    """This machine as a libvirt host: in host mode, with the network namespace labkit's libvirtd runs in."""
    state = host_state()
    netns = Netns(state.netns, state.netns_path, state_file()) if state is not None else None
    return LibvirtHost(name="local", uri=DEFAULT_URI, pool=POOL_NAME, pool_path=POOL_PATH, netns=netns)


def enter_host_namespace() -> str | None:
    """Move this process into host mode's network namespace; returns its name, or None if host mode is off.
    From the main thread, before any other thread starts (see :func:`labkit.machines.libvirt_host.enter_netns`).
    """
    return local_host().enter()


def _wait_for_libvirtd(daemon: Daemon, timeout: float) -> Any:
    """Wait for the socket and a connection that answers; fail early if the daemon died."""
    import libvirt

    silence_libvirt_errors()
    deadline = time.monotonic() + timeout
    last = "socket /run/libvirt/libvirt-sock not there yet"
    while time.monotonic() < deadline:
        if not daemon.running:
            raise HostError(
                f"libvirtd (pid {daemon.pid}) exited during start-up",
                hint=f"read {host_run_dir() / 'libvirtd.log'}",
            )
        if LIBVIRT_SOCKETS[0].exists():
            try:
                conn = libvirt.open(DEFAULT_URI)
                conn.getLibVersion()
                return conn
            except libvirt.libvirtError as exc:
                last = exc.get_error_message() or str(exc)
        time.sleep(0.05)
    raise HostError(
        f"libvirtd did not answer within {timeout:.0f} s: {last}",
        hint=f"read {host_run_dir() / 'libvirtd.log'}",
    )


# --------------------------------------------------------------------------------------------- up / down


def _qemu_user(conf: Path = QEMU_CONF) -> str:
    """The user libvirt runs QEMU as (qemu.conf ``user``; Debian's default is libvirt-qemu)."""
    with contextlib.suppress(OSError):
        for line in conf.read_text().splitlines():
            m = re.match(r'\s*user\s*=\s*"([^"]+)"', line)
            if m:
                return m.group(1)
    return "libvirt-qemu"


def _user_can_rw(path: Path, user: str) -> bool | None:
    """Whether ``user`` may read and write ``path`` by its mode bits; None if the user does not exist."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return None
    st = path.stat()
    if pw.pw_uid == 0:
        return True
    if pw.pw_uid == st.st_uid:
        bits = st.st_mode >> 6
    elif st.st_gid in os.getgrouplist(user, pw.pw_gid):
        bits = st.st_mode >> 3
    else:
        bits = st.st_mode
    return bits & 0o6 == 0o6


def qemu_needs_root(dev_kvm: Path = DEV_KVM, conf: Path = QEMU_CONF) -> bool:
    """True when libvirt would re-probe QEMU's capabilities on nearly every API call.

    Without udev, /dev/kvm stays ``0600 root:root``. libvirt probes QEMU as root (it opens /dev/kvm, then
    drops privileges) and records "KVM enabled", but then finds /dev/kvm not usable by the QEMU user, declares
    its cache invalid and probes again (~4 s a probe; one domain start took 37-40 s, measured). Running QEMU
    as root makes both views agree: the cache holds and a domain starts in under a second.
    """
    if not dev_kvm.exists() or not conf.exists():
        return False
    user = _qemu_user(conf)
    return user != "root" and _user_can_rw(dev_kvm, user) is False


def _write_qemu_conf_overlay() -> Path:
    """A copy of qemu.conf with QEMU run as root, bind-mounted over the real one for our libvirtd only."""
    lines = [ln for ln in QEMU_CONF.read_text().splitlines() if not re.match(r"\s*(user|group)\s*=", ln)]
    lines += [
        "",
        "# labkit host mode: /dev/kvm is not usable by the QEMU user here (no udev), so run QEMU as root.",
        "# Only the libvirtd labkit started sees this file (bind mount in its private mount namespace).",
        'user = "root"',
        'group = "root"',
        "",
    ]
    path = host_run_dir() / "qemu.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines))
    return path


def _check_can_host() -> None:
    if os.geteuid() != 0:
        raise HostError("host mode needs root (it creates a network namespace)", hint="sudo labkit host up")
    for binary, package in (("ip", "iproute2"), ("virtlogd", "libvirt-daemon-system")):
        if shutil.which(binary) is None:
            raise HostError(f"{binary} not found on PATH", hint=f"apt-get install {package}")
    if shutil.which("libvirtd") is None:
        raise HostError("libvirtd not found on PATH", hint="apt-get install libvirt-daemon-system")
    if systemd_runs():
        raise HostError("this host runs systemd: host mode is not needed here", hint=SYSTEMD_HINT)
    pid = find_libvirtd()
    if pid is not None:
        raise HostError(
            f"libvirtd is already running (pid {pid}) and labkit did not start it: host mode is not needed here",
            hint="use that libvirtd as it is; run labkit commands without `labkit host up`",
        )


def _start_daemon(name: str, state: HostState, qemu_conf: Path | None = None) -> Daemon:
    """Start ``name -d`` in the namespace and return it as read from its pidfile.

    ``ip netns exec`` gives the daemon a private mount namespace (to remount /sys), so ``qemu_conf`` can be
    bind-mounted over /etc/libvirt/qemu.conf there without the host seeing it.
    """
    cmd = ["ip", "netns", "exec", state.netns, name, "-d"]
    if qemu_conf is not None:
        script = f'mount --bind "$1" {QEMU_CONF} && exec {name} -d'
        cmd = ["ip", "netns", "exec", state.netns, "sh", "-c", script, "sh", str(qemu_conf)]
    env = dict(os.environ)
    # Without systemd libvirt logs to stderr, which -d sends to /dev/null: keep warnings and errors in a file.
    env["LIBVIRT_LOG_OUTPUTS"] = f"3:file:{host_run_dir() / (name + '.log')}"
    with tempfile.TemporaryFile() as out:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            cwd="/",
            timeout=START_TIMEOUT,
            check=False,
        )
        out.seek(0)
        text = out.read().decode(errors="replace").strip()
    # -d returns once the daemon is initialised; the pidfile is written by then, but do not rely on it.
    _wait(lambda: _daemon_from_pidfile(name) is not None, 10.0)
    daemon = _daemon_from_pidfile(name)
    if daemon is None:
        raise HostError(
            f"{name} -d did not start (exit {proc.returncode}): {text or 'no output'}",
            hint=f"read {host_run_dir() / (name + '.log')}",
        )
    return daemon


def _forget_autostart() -> None:
    """Let libvirt autostart networks, pools and domains again, as at boot.

    libvirt autostarts only once per boot (marker files in /run/libvirt/*/autostarted), but each host mode is
    a fresh namespace in which ``host_down`` stopped every network: for libvirt it is a new boot.
    """
    for marker in Path("/run/libvirt").glob("*/autostarted"):
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()


def host_up(netns: str = DEFAULT_NETNS) -> HostState:
    """Start libvirtd in network namespace ``netns`` (created if missing) and record it; idempotent.

    Returns the state; ``already_up`` is True when host mode was already up (nothing was started).
    """
    with _locked():
        state = host_state()
        if state is not None:
            if state.healthy:
                if state.netns != netns:
                    raise HostError(
                        f"host mode is already up in network namespace {state.netns!r}, not {netns!r}",
                        hint="run `sudo labkit host down` first",
                    )
                return replace(state, already_up=True)
            if state.netns_path.exists():  # its VMs may run there, whatever namespace was asked for now
                if state.netns != netns:
                    log.warning(
                        "host mode's namespace is %s (recorded), not %s: using it", state.netns, netns
                    )
                return _restart(state)
            log.warning("host mode recorded in %s is stale: cleaning it up", state_file())
            _teardown(state, force=True)
        _check_can_host()

        created = False
        if not _netns_exists(netns):
            _run(["ip", "netns", "add", netns], f"ip netns add {netns}")
            created = True
        state = HostState(
            netns=netns,
            created_netns=created,
            started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        _write_state(state)  # from here on, host_down can undo whatever happens next
        try:
            _run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"], "bringing up lo")
            if _daemon_from_pidfile("virtlogd") is None:
                state = replace(state, daemons=(*state.daemons, _start_daemon("virtlogd", state)))
                _write_state(state)
            else:
                log.info("reusing the virtlogd already running")
            _forget_autostart()
            overlay = None
            if qemu_needs_root():
                overlay = _write_qemu_conf_overlay()
                state = replace(state, qemu_as_root=True)
            libvirtd = _start_daemon("libvirtd", state, overlay)
            state = replace(state, daemons=(*state.daemons, libvirtd))
            _write_state(state)
            conn = _wait_for_libvirtd(libvirtd, START_TIMEOUT)
            try:
                ensure_storage_pool(conn)
            finally:
                conn.close()
        except BaseException:  # any failure, Ctrl-C too: undo what was started; the original error goes on
            try:
                _teardown(state, force=True)
            except (
                Exception
            ) as cleanup:  # broad on purpose: a failed clean-up must not hide why host up failed
                log.warning(
                    "cleaning up after the failed host up failed too: %s: %s", type(cleanup).__name__, cleanup
                )
            raise
        return state


def _restart(state: HostState) -> HostState:
    """libvirtd died (crash, kill) but its namespace lives, and with it the VMs' QEMU processes, bridges and
    dnsmasq: start libvirtd (and virtlogd if it died too) again in that namespace. On start libvirtd reconnects
    to the domains it finds running, so no VM is stopped and none loses its memory."""
    import libvirt

    _check_can_host()  # another libvirtd running now would be told apart here
    log.warning("libvirtd of host mode is not running: starting it again in netns %s", state.netns)
    daemons = {d.name: d for d in state.daemons}
    virtlogd = daemons.get("virtlogd")
    if (virtlogd is None or not virtlogd.running) and _daemon_from_pidfile("virtlogd") is None:
        daemons["virtlogd"] = _start_daemon("virtlogd", state)
    overlay = _write_qemu_conf_overlay() if state.qemu_as_root else None
    daemons["libvirtd"] = _start_daemon("libvirtd", state, overlay)
    state = replace(state, daemons=tuple(daemons[n] for n in ("virtlogd", "libvirtd") if n in daemons))
    _write_state(state)
    conn = _wait_for_libvirtd(daemons["libvirtd"], START_TIMEOUT)
    try:
        ensure_storage_pool(conn)
        running = len(conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE))
    finally:
        conn.close()
    return replace(state, restarted=running)


def _cleanup_libvirt(force: bool) -> None:
    """Destroy running domains (only with ``force``) and active networks before libvirtd stops.

    Otherwise libvirt keeps their state in /run/libvirt and, at the next start in a *new* namespace, believes
    the bridges and dnsmasq of the deleted one are still there.
    """
    import libvirt

    try:
        conn = libvirt_connect()
    except HostError as exc:
        log.warning("cannot clean up libvirt before stopping it: %s", exc)
        return
    try:
        domains = conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        if domains and not force:
            names = ", ".join(sorted(d.name() for d in domains))
            raise HostError(
                f"{len(domains)} VM(s) still running under host mode: {names}",
                hint="destroy the labs first (`labkit destroy`), or `sudo labkit host down --force`",
            )
        for dom in domains:
            log.info("destroying domain %s", dom.name())
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()
        for net in conn.listAllNetworks(libvirt.VIR_CONNECT_LIST_NETWORKS_ACTIVE):
            log.info("stopping network %s", net.name())
            with contextlib.suppress(libvirt.libvirtError):
                net.destroy()
    finally:
        conn.close()


# Processes libvirt leaves in the namespace that must not outlive it.
_LEFTOVERS = ("dnsmasq", "qemu-system-", "libvirt_leaseshelper")


def _teardown(state: HostState, force: bool) -> None:
    libvirtd = state.daemon("libvirtd")
    if libvirtd is not None and libvirtd.running:
        _cleanup_libvirt(force)
    ns = _ns_id(state.netns_path) if state.netns_path.exists() else None
    for name in ("libvirtd", "virtlogd"):  # libvirtd first: it talks to virtlogd
        d = state.daemon(name)
        if d is not None:
            _stop_process(d, PIDFILES[name])
    if ns is not None:
        for pid in _pids_in_netns(ns):
            comm = _comm(pid)
            stat = _proc_stat(pid)
            if stat is None:
                continue
            if comm.startswith(_LEFTOVERS):
                log.info("stopping leftover %s (pid %d) in netns %s", comm, pid, state.netns)
                _stop_process(Daemon(comm, pid, stat[1]), None, timeout=10.0)
            else:
                log.warning("process %d (%s) still runs in netns %s; leaving it", pid, comm, state.netns)
    if state.created_netns and _netns_exists(state.netns):
        _run(["ip", "netns", "delete", state.netns], f"ip netns delete {state.netns}")
    with contextlib.suppress(FileNotFoundError):
        (host_run_dir() / "qemu.conf").unlink()
    with contextlib.suppress(FileNotFoundError):
        state_file().unlink()


def host_down(force: bool = False) -> None:
    """Stop what ``host_up`` started (by PID), delete the namespace if it created it, forget the state.

    Active libvirt networks are stopped first; running VMs make it refuse unless ``force`` (which destroys
    them). Safe when host mode is not up.
    """
    with _locked():
        state = host_state()
        if state is not None:
            _teardown(state, force=force)
