"""Relays to trainee labs on other hosts: the class gateway reaches only this host's management networks, so a
lab on a remote host of the pool is reached through an OpenSSH client that labkit runs per remote host, one
``-L 127.0.0.1:PORT:NODE_IP:22`` per node there, through that host's sshd (labkit's own login to it: strict
host key, the URI's key, keepalives).

The gateway's line for such a trainee's key opens ``127.0.0.1:PORT`` of their own nodes only, so the per-key
restriction is the same as for a lab here; the node's host key is still checked end to end by the trainee
(the bundle's ``HostKeyAlias``). A node keeps its port across runs (``relay-HOST.json``). The relay is labkit's
process: found again by its PID file and stopped by that PID only, after checking that its command line names
this class's relay log. ``labkit class access`` starts it again when it is not running (a host restart, a lost
connection) or its ports changed.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from labkit.classroom.access_paths import AccessPaths
from labkit.classroom.bundle_text import SSH_PORT, check_ip
from labkit.errors import HostError
from labkit.hostsetup.processes import Daemon, log_tail, recorded_process, start_in_background, stop_process
from labkit.machines.libvirt_host import LibvirtHost

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 20.0
STARTED = "started"
RUNNING = "running"


def _files(paths: AccessPaths, host: str) -> tuple[Path, Path, Path]:
    """(port map, PID file, log) of the relay through ``host``."""
    return (
        paths.gateway / f"relay-{host}.json",
        paths.gateway / f"relay-{host}.pid",
        paths.gateway / f"relay-{host}.log",
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def relay_ports(paths: AccessPaths, host: str, addresses: list[str]) -> dict[str, int]:
    """A loopback port per node address on ``host``: the ones given before are kept, new ones are free now."""
    ports_file, _, _ = _files(paths, host)
    try:
        known = {str(k): int(v) for k, v in json.loads(ports_file.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        known = {}
    return {check_ip(ip): known.get(ip) or _free_port() for ip in addresses}


def running_relay(paths: AccessPaths, host: str) -> Daemon | None:
    _, pidfile, log = _files(paths, host)
    return recorded_process(f"relay to {host}", pidfile, str(log))


def ensure_relay(paths: AccessPaths, host: LibvirtHost, ports: dict[str, int]) -> str:
    """The relay through ``host`` forwarding ``ports`` (node address -> loopback port): kept when it runs
    with exactly these, else (re)started; ``started`` or ``running``."""
    ports_file, pidfile, log = _files(paths, host.name)
    running = running_relay(paths, host.name)
    try:
        same = json.loads(ports_file.read_text()) == ports
    except (OSError, ValueError):
        same = False
    if running is not None and same and _all_bound(ports):
        return RUNNING
    if running is not None:
        stop_process(running, pidfile)
    ports_file.write_text(json.dumps(ports, indent=2, sort_keys=True) + "\n")
    argv = host.ssh_login().ssh_argv()
    forwards = [f"-L{LOOPBACK}:{port}:{ip}:{SSH_PORT}" for ip, port in sorted(ports.items())]
    command = [*argv[:-1], "-N", "-E", str(log), "-o", "ExitOnForwardFailure=yes", *forwards, argv[-1]]
    seen = log.stat().st_size if log.is_file() else 0
    proc = start_in_background(command, lambda: _all_bound(ports), START_TIMEOUT)
    if proc is None:
        raise HostError(
            f"the relay to trainee labs on host {host.name} did not start: {log_tail(log, seen)}",
            f"`labkit hosts list` shows whether {host.name} answers; read {log}",
        )
    pidfile.write_text(f"{proc.pid}\n")
    return STARTED


def _all_bound(ports: dict[str, int]) -> bool:
    """Every port listening (checked without connecting: a connection would open a channel to the node)."""
    listening = _listening_ports()
    return all(port in listening for port in ports.values())


def _listening_ports() -> set[int]:
    found: set[int] = set()
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        local, state = fields[1], fields[3]
        if state == "0A" and local.startswith("0100007F:"):  # LISTEN on 127.0.0.1
            found.add(int(local.split(":")[1], 16))
    return found


def stop_relays(paths: AccessPaths) -> list[str]:
    """Stop every relay of the class (by its recorded PID only); the hosts whose relay was running."""
    stopped = []
    for pidfile in sorted(paths.gateway.glob("relay-*.pid")) if paths.gateway.is_dir() else []:
        host = pidfile.name.removeprefix("relay-").removesuffix(".pid")
        running = running_relay(paths, host)
        if running is not None:
            stop_process(running, pidfile)
            stopped.append(host)
        pidfile.unlink(missing_ok=True)
    return stopped
