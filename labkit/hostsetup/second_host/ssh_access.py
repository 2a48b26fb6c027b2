"""How labkit reaches a second host: an sshd of its own (root, by key only) and the libvirt URI that uses it.

libvirt's ``qemu+ssh`` transport runs the ``ssh`` binary; of the URI's parameters it passes only ``keyfile``
(``-i``), ``no_tty`` (``BatchMode=yes``) and ``no_verify`` (``StrictHostKeyChecking=no``) to it.
``known_hosts`` and ``known_hosts_verify`` are read by the libssh and libssh2 transports only (libvirt 9.0,
``virNetSocketNewConnectSSH``). So the URI's ``command`` is a small ``ssh`` wrapper with this host's own
client config: its known_hosts with strict checking, its key, and time limits (``ConnectTimeout``,
``ServerAliveInterval``) so that a host that stops answering fails a connection instead of hanging it.
On the host side libvirt runs ``virt-ssh-helper qemu:///system`` (``nc -U`` when the helper is missing), which
finds the host's own libvirtd socket in sshd's mount namespace.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path
from urllib.parse import quote

from labkit.errors import HostError
from labkit.hostsetup.processes import run_tool
from labkit.hostsetup.second_host.layout import SecondHostPaths

CONNECT_TIMEOUT = 5
"""Seconds ssh waits for the TCP connection (a host that is down)."""
ALIVE_INTERVAL = 5
ALIVE_COUNT = 3
"""A connection whose host stopped answering ends after ALIVE_INTERVAL * ALIVE_COUNT seconds."""


def _write(path: Path, text: str, mode: int = 0o600) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(mode)


def _keygen(key: Path, comment: str) -> None:
    if key.exists() and key.with_suffix(".pub").exists():
        return
    key.unlink(missing_ok=True)
    key.with_suffix(".pub").unlink(missing_ok=True)
    key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    cmd = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)]
    run_tool(cmd, f"ssh-keygen for {key}")


def _public(key: Path) -> str:
    """``TYPE BASE64`` of a key's public half (no comment)."""
    return " ".join(key.with_suffix(".pub").read_text().split()[:2])


def sshd_config_text(paths: SecondHostPaths, address: str) -> str:
    """sshd for labkit alone: root by key only, on the host's address only; forwarding only to SSH ports (the
    VMs' sshd behind the host)."""
    return "\n".join(
        [
            "# labkit: the sshd of second host "
            + paths.name
            + " (libvirt's qemu+ssh transport reaches it here)",
            f"ListenAddress {address}:22",
            f'HostKey "{paths.host_key}"',
            f'PidFile "{paths.pidfile("sshd")}"',
            f'AuthorizedKeysFile "{paths.authorized_keys}"',
            "PermitRootLogin prohibit-password",
            "AuthenticationMethods publickey",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            # The key files are labkit's (0600, in its 0700 home); a home under /tmp, as in tests, would fail
            # sshd's check that every directory above authorized_keys is closed to others.
            "StrictModes no",
            "UseDNS no",
            # labkit reaches the VMs' SSH through this host (their management networks live here): local
            # forwarding to port 22 only; no remote forwarding, no listening, no agent, no tunnel
            "AllowTcpForwarding local",
            "PermitOpen *:22",
            "PermitListen none",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "PermitTunnel no",
            "PermitUserEnvironment no",
            "PrintMotd no",
            "LogLevel VERBOSE",
            "",
        ]
    )


def ssh_config_text(paths: SecondHostPaths) -> str:
    """The client side: this host's key and known_hosts only, never prompting, bounded in time."""
    return "\n".join(
        [
            "# labkit: how libvirt's qemu+ssh reaches second host " + paths.name,
            "Host *",
            "  User root",
            f'  IdentityFile "{paths.client_key}"',
            "  IdentitiesOnly yes",
            f'  UserKnownHostsFile "{paths.known_hosts}"',
            "  GlobalKnownHostsFile /dev/null",
            "  StrictHostKeyChecking yes",
            "  BatchMode yes",
            f"  ConnectTimeout {CONNECT_TIMEOUT}",
            f"  ServerAliveInterval {ALIVE_INTERVAL}",
            f"  ServerAliveCountMax {ALIVE_COUNT}",
            "  LogLevel ERROR",
            "",
        ]
    )


def ssh_command_text(paths: SecondHostPaths, ssh: str) -> str:
    return f'#!/bin/sh\n# labkit: ssh to second host {paths.name}\nexec {shlex.quote(ssh)} -F {shlex.quote(str(paths.ssh_config))} "$@"\n'


def host_uri(paths: SecondHostPaths, address: str) -> str:
    """The libvirt URI of the host, as ``labkit hosts add`` takes it."""
    command = quote(str(paths.ssh_command), safe="/")
    keyfile = quote(str(paths.client_key), safe="/")
    return f"qemu+ssh://root@{address}/system?command={command}&keyfile={keyfile}&no_tty=1"


def prepare_ssh(paths: SecondHostPaths, address: str) -> None:
    """Keys (made once, kept across ``down``/``up``), sshd's config, and the client files for ``address``."""
    ssh = shutil.which("ssh")
    if ssh is None:
        raise HostError("ssh not found on PATH", hint="apt-get install openssh-client")
    _keygen(paths.host_key, f"labkit second host {paths.name}")
    _keygen(paths.client_key, f"labkit to second host {paths.name}")
    _write(paths.authorized_keys, _public(paths.client_key) + f" labkit-{paths.name}\n")
    _write(paths.known_hosts, f"{address} {_public(paths.host_key)}\n")
    _write(paths.sshd_config, sshd_config_text(paths, address))
    _write(paths.ssh_config, ssh_config_text(paths))
    _write(paths.ssh_command, ssh_command_text(paths, ssh), mode=0o700)
