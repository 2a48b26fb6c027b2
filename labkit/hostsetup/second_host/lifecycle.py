"""``labkit host up|down --name NAME``: start and stop a second host on this machine, recorded so that ``down``
stops exactly what ``up`` started (by PID) and removes the namespace and veth it made."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import shutil
import subprocess
from dataclasses import replace

from labkit.errors import HostError
from labkit.hostsetup.hostmode import DEFAULT_NETNS, clean_up_libvirt, qemu_needs_root
from labkit.hostsetup.hoststate import host_state
from labkit.hostsetup.processes import (
    NETNS_DIR,
    Daemon,
    comm,
    netns_exists,
    ns_id,
    pids_in_netns,
    proc_stat,
    stop_process,
)
from labkit.hostsetup.second_host.addresses import in_netns, networks_in_use, pick_subnet
from labkit.hostsetup.second_host.daemons import prepare_libvirt_dirs, start_daemon, wait_for_libvirtd
from labkit.hostsetup.second_host.layout import POOL_PATH, SecondHostPaths
from labkit.hostsetup.second_host.network import connect, create_netns, disconnect
from labkit.hostsetup.second_host.record import (
    DAEMONS,
    SecondHostState,
    read_state,
    recorded_states,
    second_hosts_locked,
    write_state,
)
from labkit.hostsetup.second_host.ssh_access import host_uri, prepare_ssh
from labkit.machines.libvirt_host import ensure_storage_pool, systemd_runs

log = logging.getLogger(__name__)

TOOLS = (
    ("ip", "iproute2"),
    ("unshare", "util-linux"),
    ("nsenter", "util-linux"),
    ("virtlogd", "libvirt-daemon-system"),
    ("libvirtd", "libvirt-daemon-system"),
    ("sshd", "openssh-server"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
    ("virsh", "libvirt-clients"),
    ("virt-ssh-helper", "libvirt-daemon"),
)
LEFTOVERS = ("dnsmasq", "qemu-system-", "libvirt_leaseshe", "sshd", "virt-ssh-helper", "nc")
"""Processes libvirt and sshd leave in the host's namespace (comm names, 15 characters at most)."""
VERIFY_TIMEOUT = 30


def default_peer() -> str | None:
    """labkit's network namespace: host mode's when it is up; the machine's own (None) under systemd."""
    state = host_state()
    if state is not None and state.healthy:
        return state.netns
    if systemd_runs():
        return None
    raise HostError(
        "host mode is not up: labkit has no network namespace to link the second host to",
        hint=f"run `sudo labkit host up` first (netns {DEFAULT_NETNS}), or name one with --peer-netns",
    )


def _check_can_run(peer_netns: str | None) -> None:
    if os.geteuid() != 0:
        raise HostError(
            "a second host needs root (namespaces, libvirtd, sshd)", hint="sudo labkit host up --name …"
        )
    for tool, package in TOOLS:
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None:
            raise HostError(f"{tool} not found", hint=f"apt-get install {package}")
    if peer_netns is not None and not netns_exists(peer_netns):
        raise HostError(f"network namespace {peer_netns!r} does not exist", hint="check `ip netns list`")


def second_host_up(name: str, peer_netns: str | None) -> SecondHostState:
    """Start second host ``name``, linked to network namespace ``peer_netns`` (None: the one labkit runs in).
    Idempotent: a host up is left as it is (``already_up``); daemons that died are started again."""
    paths = SecondHostPaths.for_host(name)
    _check_can_run(peer_netns)
    with second_hosts_locked():
        state = read_state(paths)
        if state is not None:
            resumed = _resume(paths, state, peer_netns)
            if resumed is not None:
                return resumed
        state = _new_state(paths, peer_netns)
        paths.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        paths.root.chmod(0o700)  # keys and sshd's config: labkit's alone
        write_state(paths, state)  # from here on, down can undo whatever happens next
        return _start(paths, state)


def _resume(paths: SecondHostPaths, state: SecondHostState, peer_netns: str | None) -> SecondHostState | None:
    """The host as recorded, its dead daemons started again; None when the record was stale (cleaned up)."""
    if state.peer_netns != peer_netns:
        raise HostError(
            f"second host {state.name} is linked to netns {state.peer_netns or '(labkit’s own)'}, "
            f"not {peer_netns or '(labkit’s own)'}",
            hint=f"run `sudo labkit host down --name {state.name}` first",
        )
    if state.healthy:
        return replace(state, already_up=True)
    if netns_exists(state.netns) and any(d.running for d in state.daemons):
        dead = tuple(n for n in DAEMONS if (d := state.daemon(n)) is None or not d.running)
        log.info("second host %s: starting %s again", state.name, ", ".join(dead))
        state = _start_missing(paths, state)
        _verify(paths, state)
        return replace(state, restarted=dead)
    log.warning("second host %s recorded in %s is stale: cleaning it up", state.name, paths.state)
    _teardown(paths, state, force=True)
    return None


def _new_state(paths: SecondHostPaths, peer_netns: str | None) -> SecondHostState:
    if netns_exists(paths.netns):
        raise HostError(
            f"network namespace {paths.netns} exists but labkit has no record of it",
            hint=f"delete it if nothing uses it (`ip netns delete {paths.netns}`), then run this again",
        )
    taken = networks_in_use(peer_netns)
    taken += [s.network for s in recorded_states() if s.name != paths.name]
    preferred = None
    if paths.last_subnet.exists():
        try:
            preferred = ipaddress.IPv4Network(paths.last_subnet.read_text().strip())
        except ValueError:
            preferred = None
    subnet = pick_subnet(taken, preferred)
    return SecondHostState(
        name=paths.name,
        netns=paths.netns,
        peer_netns=peer_netns,
        subnet=str(subnet),
        created_netns=True,
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        qemu_as_root=qemu_needs_root(),
    )


def _start(paths: SecondHostPaths, state: SecondHostState) -> SecondHostState:
    """Namespace, veth, files, daemons, and a check of the URI from labkit's side. On any failure, Ctrl-C
    too, undo everything; the original error goes on."""
    try:
        create_netns(state.netns)
        connect(state, paths.peer_veth)
        paths.last_subnet.write_text(state.subnet + "\n")
        prepare_libvirt_dirs(paths, state.qemu_as_root)
        prepare_ssh(paths, state.address)
        state = _start_missing(paths, state)
        _verify(paths, state)
    except BaseException:
        try:
            _teardown(paths, read_state(paths) or state, force=True)
        except Exception as cleanup:  # broad on purpose: a failed clean-up must not hide why up failed
            log.warning("cleaning up after the failed up failed too: %s: %s", type(cleanup).__name__, cleanup)
        raise
    return state


def _start_missing(paths: SecondHostPaths, state: SecondHostState) -> SecondHostState:
    """Start every daemon that does not run, in order, each recorded as soon as it runs."""
    for name in DAEMONS:
        known = state.daemon(name)
        if known is not None and known.running:
            continue
        daemon = start_daemon(state, paths, name)
        state = state.with_daemon(daemon)
        write_state(paths, state)
        if name == "libvirtd":
            conn = wait_for_libvirtd(paths, daemon)
            try:
                ensure_storage_pool(conn, path=POOL_PATH, make_dir=False)
                # libvirt probes every QEMU binary at the first capabilities call (~10 s here, cached in the
                # host's cache/ after): pay it now, not in the first `hosts list` (whose deadline is 10 s).
                conn.getCapabilities()
            finally:
                conn.close()
    return state


def _verify(paths: SecondHostPaths, state: SecondHostState) -> None:
    """The URI works from labkit's side: ssh, the host key, the key login, virt-ssh-helper, libvirtd."""
    uri = host_uri(paths, state.address)
    cmd = in_netns(state.peer_netns, ["virsh", "-c", uri, "uri"])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=VERIFY_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise HostError(
            f"{uri} did not answer within {VERIFY_TIMEOUT} s", hint=f"read {paths.log('sshd')}"
        ) from exc
    if proc.returncode != 0:
        why = " ".join((proc.stderr or proc.stdout).split())
        raise HostError(
            f"cannot reach second host {state.name} at {uri}: {why}", hint=f"read {paths.log('sshd')}"
        )


def _stop_leftovers(ns: tuple[int, int], netns: str) -> None:
    for pid in pids_in_netns(ns):
        command = comm(pid)
        stat = proc_stat(pid)
        if stat is None:
            continue
        if command.startswith(LEFTOVERS):
            log.info("stopping leftover %s (pid %d) in netns %s", command, pid, netns)
            stop_process(Daemon(command, pid, stat[1]), None, timeout=10.0)
        else:
            log.warning("process %d (%s) still runs in netns %s; leaving it", pid, command, netns)


def _teardown(paths: SecondHostPaths, state: SecondHostState, force: bool) -> None:
    libvirtd = state.daemon("libvirtd")
    if libvirtd is not None and libvirtd.running:
        clean_up_libvirt(force, paths.socket_uri, down=f"labkit host down --name {state.name}")
    netns_path = NETNS_DIR / state.netns
    ns = ns_id(netns_path) if netns_path.exists() else None
    for name in reversed(DAEMONS):  # sshd first (no new connections), virtlogd last (libvirtd talks to it)
        daemon = state.daemon(name)
        if daemon is not None:
            stop_process(daemon, paths.pidfile(name))
    if ns is not None:
        _stop_leftovers(ns, state.netns)
    disconnect(state, paths.peer_veth)
    paths.state.unlink(missing_ok=True)


def second_host_down(name: str, force: bool = False) -> SecondHostState | None:
    """Stop what ``second_host_up`` started, remove its veth and namespace, forget the record; the record
    that was, or None when the host was not up. Running VMs make it refuse unless ``force``."""
    paths = SecondHostPaths.for_host(name)
    with second_hosts_locked():
        state = read_state(paths)
        if state is not None:
            _teardown(paths, state, force=force)
        return state


def second_host_status(name: str) -> SecondHostState | None:
    return read_state(SecondHostPaths.for_host(name))


def second_host_uri(state: SecondHostState) -> str:
    """The URI to give ``labkit hosts add``."""
    return host_uri(SecondHostPaths.for_host(state.name), state.address)
