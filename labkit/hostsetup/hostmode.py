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
import logging
import os
import pwd
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from labkit.errors import HostError
from labkit.hostsetup.hoststate import HostState, host_state, locked_state, state_file, write_state
from labkit.hostsetup.processes import (
    PIDFILES,
    Daemon,
    comm,
    daemon_from_pidfile,
    find_libvirtd,
    netns_exists,
    ns_id,
    pids_in_netns,
    proc_stat,
    run_daemonizing,
    run_tool,
    stop_process,
    wait_until,
)
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

QEMU_CONF = Path("/etc/libvirt/qemu.conf")
DEV_KVM = Path("/dev/kvm")
LIBVIRT_SOCKETS = (Path("/run/libvirt/libvirt-sock"), Path("/run/libvirt/virtqemud-sock"))
# Daemons whose presence means "libvirt is already managed by someone else" (monolithic or modular).

START_TIMEOUT = 60.0


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


def qemu_conf_as_root(text: str) -> str:
    """qemu.conf's text with QEMU run as root (see :func:`qemu_needs_root`)."""
    lines = [ln for ln in text.splitlines() if not re.match(r"\s*(user|group)\s*=", ln)]
    lines += [
        "",
        "# labkit host mode: /dev/kvm is not usable by the QEMU user here (no udev), so run QEMU as root.",
        "# Only the libvirtd labkit started sees this file (bind mount in its private mount namespace).",
        'user = "root"',
        'group = "root"',
        "",
    ]
    return "\n".join(lines)


def _write_qemu_conf_overlay() -> Path:
    """A copy of qemu.conf with QEMU run as root, bind-mounted over the real one for our libvirtd only."""
    path = host_run_dir() / "qemu.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(qemu_conf_as_root(QEMU_CONF.read_text()))
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
    returncode, text = run_daemonizing(cmd, host_run_dir() / (name + ".log"), START_TIMEOUT)
    # -d returns once the daemon is initialised; the pidfile is written by then, but do not rely on it.
    wait_until(lambda: daemon_from_pidfile(name) is not None, 10.0)
    daemon = daemon_from_pidfile(name)
    if daemon is None:
        raise HostError(
            f"{name} -d did not start (exit {returncode}): {text or 'no output'}",
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
    with locked_state():
        state = host_state()
        if state is not None:
            resumed = _resume_recorded(state, netns)
            if resumed is not None:
                return resumed
        _check_can_host()
        state = _new_state(netns)
        write_state(state)  # from here on, host_down can undo whatever happens next
        return _start_libvirt(state)


def _resume_recorded(state: HostState, netns: str) -> HostState | None:
    """Host mode as recorded: still up, or libvirtd restarted in its namespace; None when the record was
    stale (then it is cleaned up) and host mode must start afresh."""
    if state.healthy:
        if state.netns != netns:
            raise HostError(
                f"host mode is already up in network namespace {state.netns!r}, not {netns!r}",
                hint="run `sudo labkit host down` first",
            )
        return replace(state, already_up=True)
    if state.netns_path.exists():  # its VMs may run there, whatever namespace was asked for now
        if state.netns != netns:
            log.warning("host mode's namespace is %s (recorded), not %s: using it", state.netns, netns)
        return _restart(state)
    log.warning("host mode recorded in %s is stale: cleaning it up", state_file())
    _teardown(state, force=True)
    return None


def _new_state(netns: str) -> HostState:
    """The state of a host mode about to start in ``netns``, created here if missing."""
    created = False
    if not netns_exists(netns):
        run_tool(["ip", "netns", "add", netns], f"ip netns add {netns}")
        created = True
    return HostState(
        netns=netns,
        created_netns=created,
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def _start_libvirt(state: HostState) -> HostState:
    """Start virtlogd (unless one runs) and libvirtd in the recorded namespace, each recorded once started.
    On any failure, Ctrl-C too, undo what was started; the original error goes on."""
    try:
        run_tool(["ip", "netns", "exec", state.netns, "ip", "link", "set", "lo", "up"], "bringing up lo")
        if daemon_from_pidfile("virtlogd") is None:
            state = replace(state, daemons=(*state.daemons, _start_daemon("virtlogd", state)))
            write_state(state)
        else:
            log.info("reusing the virtlogd already running")
        _forget_autostart()
        overlay = None
        if qemu_needs_root():
            overlay = _write_qemu_conf_overlay()
            state = replace(state, qemu_as_root=True)
        libvirtd = _start_daemon("libvirtd", state, overlay)
        state = replace(state, daemons=(*state.daemons, libvirtd))
        write_state(state)
        conn = _wait_for_libvirtd(libvirtd, START_TIMEOUT)
        try:
            ensure_storage_pool(conn)
        finally:
            conn.close()
    except BaseException:
        try:
            _teardown(state, force=True)
        except Exception as cleanup:  # broad on purpose: a failed clean-up must not hide why host up failed
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
    if (virtlogd is None or not virtlogd.running) and daemon_from_pidfile("virtlogd") is None:
        daemons["virtlogd"] = _start_daemon("virtlogd", state)
    overlay = _write_qemu_conf_overlay() if state.qemu_as_root else None
    daemons["libvirtd"] = _start_daemon("libvirtd", state, overlay)
    state = replace(state, daemons=tuple(daemons[n] for n in ("virtlogd", "libvirtd") if n in daemons))
    write_state(state)
    conn = _wait_for_libvirtd(daemons["libvirtd"], START_TIMEOUT)
    try:
        ensure_storage_pool(conn)
        running = len(conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE))
    finally:
        conn.close()
    return replace(state, restarted=running)


def clean_up_libvirt(force: bool, uri: str = DEFAULT_URI, down: str = "labkit host down") -> None:
    """Destroy running domains (only with ``force``) and active networks before libvirtd stops.

    Otherwise libvirt keeps their state in /run/libvirt and, at the next start in a *new* namespace, believes
    the bridges and dnsmasq of the deleted one are still there. ``down`` is the command that stops this host.
    """
    import libvirt

    try:
        conn = libvirt_connect(uri)
    except HostError as exc:
        log.warning("cannot clean up libvirt before stopping it: %s", exc)
        return
    try:
        domains = conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        if domains and not force:
            names = ", ".join(sorted(d.name() for d in domains))
            raise HostError(
                f"{len(domains)} VM(s) still running under host mode: {names}",
                hint=f"destroy the labs first (`labkit destroy`), or `sudo {down} --force`",
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
        clean_up_libvirt(force)
    ns = ns_id(state.netns_path) if state.netns_path.exists() else None
    for name in ("libvirtd", "virtlogd"):  # libvirtd first: it talks to virtlogd
        d = state.daemon(name)
        if d is not None:
            stop_process(d, PIDFILES[name])
    if ns is not None:
        for pid in pids_in_netns(ns):
            command = comm(pid)
            stat = proc_stat(pid)
            if stat is None:
                continue
            if command.startswith(_LEFTOVERS):
                log.info("stopping leftover %s (pid %d) in netns %s", command, pid, state.netns)
                stop_process(Daemon(command, pid, stat[1]), None, timeout=10.0)
            else:
                log.warning("process %d (%s) still runs in netns %s; leaving it", pid, command, state.netns)
    if state.created_netns and netns_exists(state.netns):
        run_tool(["ip", "netns", "delete", state.netns], f"ip netns delete {state.netns}")
    with contextlib.suppress(FileNotFoundError):
        (host_run_dir() / "qemu.conf").unlink()
    with contextlib.suppress(FileNotFoundError):
        state_file().unlink()


def host_down(force: bool = False) -> None:
    """Stop what ``host_up`` started (by PID), delete the namespace if it created it, forget the state.

    Active libvirt networks are stopped first; running VMs make it refuse unless ``force`` (which destroys
    them). Safe when host mode is not up.
    """
    with locked_state():
        state = host_state()
        if state is not None:
            _teardown(state, force=force)
