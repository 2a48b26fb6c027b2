"""The per-lab SSH key and the ssh_config that ``labkit ssh`` and fabric both use."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from labkit.errors import HostError
from labkit.machines.host_ssh import HostSsh
from labkit.paths import LabPaths

SSH_USER = "vagrant"


def ensure_lab_key(lab: LabPaths) -> str:
    """The lab's ed25519 key, made once; returns the public key line.

    The VMs accept this key only, so it is never replaced while a lab may exist: a lost ``.pub`` is derived again
    from the private key, and a lost private key (the lab directory removed or lost) is restored from the copy
    kept outside the lab directory (:attr:`LabPaths.ssh_key_backup`)."""
    if not lab.ssh_key.is_file() and lab.ssh_key_backup.is_file():
        _write_private(lab.ssh_key, lab.ssh_key_backup.read_bytes())
    if not lab.ssh_key.is_file():
        if lab.ssh_public_key.is_file():
            raise HostError(
                f"lab {lab.name}: its private key {lab.ssh_key} is gone and no copy is kept in "
                f"{lab.ssh_key_backup}; the VMs accept that key only",
                f"put the key back, or start over with `labkit destroy --name {lab.name}` and `labkit up`",
            )
        _generate(lab)
    if not lab.ssh_public_key.is_file():
        lab.ssh_public_key.write_text(_public_from_private(lab.ssh_key) + "\n")
    if not lab.ssh_key_backup.is_file():
        _write_private(lab.ssh_key_backup, lab.ssh_key.read_bytes())
    return lab.ssh_public_key.read_text().strip()


def forget_lab_key(lab: LabPaths) -> None:
    """Drop the kept copy of a destroyed lab's key."""
    lab.ssh_key_backup.unlink(missing_ok=True)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def _ssh_keygen(*args: str) -> str:
    try:
        return subprocess.run(
            ["ssh-keygen", *args], check=True, capture_output=True, text=True, timeout=60
        ).stdout
    except FileNotFoundError:
        raise HostError("ssh-keygen is not installed", "apt-get install openssh-client") from None
    except subprocess.CalledProcessError as exc:
        raise HostError(f"ssh-keygen failed: {exc.stderr.strip()}") from None


def _generate(lab: LabPaths) -> None:
    lab.root.mkdir(parents=True, exist_ok=True)
    lab.ssh_public_key.unlink(missing_ok=True)
    _ssh_keygen("-q", "-t", "ed25519", "-N", "", "-C", f"labkit-{lab.name}", "-f", str(lab.ssh_key))


def make_key_pair(key: Path, comment: str) -> str:
    """A new ed25519 key pair at ``key`` (0600) and ``key.pub``, replacing any there; returns the public line."""
    key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for old in (key, key.with_name(key.name + ".pub")):
        old.unlink(missing_ok=True)
    _ssh_keygen("-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key))
    return key.with_name(key.name + ".pub").read_text().strip()


def _public_from_private(key: Path) -> str:
    line = _ssh_keygen("-y", "-f", str(key)).strip()
    comment = f"labkit-{key.parent.name}"
    return line if len(line.split()) > 2 else f"{line} {comment}"


def jump_alias(host: str) -> str:
    """The ``Host`` name of a lab's libvirt host in its ssh_config (never a node's name: nodes have no '.')."""
    return f"labkit-host.{host}"


def ssh_config_text(lab: LabPaths, hosts: dict[str, str], jump: tuple[str, HostSsh] | None = None) -> str:
    """One Host block per node (name -> management IP). The node's host key is the one ``labkit up`` recorded
    in the lab's known_hosts, under the node's name (``HostKeyAlias``: management IPs can change); any other
    key is refused. With ``jump`` (the lab's remote host: its name and login), every node is reached through
    that host (``ProxyJump``), whose own key is checked against its known_hosts."""
    blocks = [jump[1].jump_block(jump_alias(jump[0]))] if jump else []
    for name, ip in hosts.items():
        blocks.append(
            "\n".join(
                [
                    f"Host {name}",
                    f"  HostName {ip}",
                    f"  User {SSH_USER}",
                    f"  IdentityFile {lab.ssh_key}",
                    "  IdentitiesOnly yes",
                    f"  HostKeyAlias {name}",
                    f"  UserKnownHostsFile {lab.known_hosts}",
                    "  StrictHostKeyChecking yes",
                    "  UpdateHostKeys no",
                    "  LogLevel ERROR",
                    "  ConnectTimeout 10",
                    *([f"  ProxyJump {jump_alias(jump[0])}"] if jump else []),
                ]
            )
        )
    return "\n\n".join(blocks) + "\n"


def write_ssh_config(lab: LabPaths, hosts: dict[str, str], jump: tuple[str, HostSsh] | None = None) -> Path:
    text = ssh_config_text(lab, hosts, jump)
    if not lab.ssh_config.exists() or lab.ssh_config.read_text() != text:
        tmp = lab.ssh_config.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(lab.ssh_config)
    return lab.ssh_config
