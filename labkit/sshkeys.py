"""The per-lab SSH key and the ssh_config that ``labkit ssh`` and fabric both use."""

from __future__ import annotations

import subprocess
from pathlib import Path

from labkit.errors import HostError
from labkit.paths import LabPaths

SSH_USER = "vagrant"


def ensure_lab_key(lab: LabPaths) -> str:
    """Generate the lab's ed25519 key once; return the public key line."""
    if not lab.ssh_key.is_file() or not lab.ssh_public_key.is_file():
        lab.root.mkdir(parents=True, exist_ok=True)
        lab.ssh_key.unlink(missing_ok=True)
        lab.ssh_public_key.unlink(missing_ok=True)
        try:
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    f"labkit-{lab.name}",
                    "-f",
                    str(lab.ssh_key),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
        except FileNotFoundError:
            raise HostError("ssh-keygen is not installed", "apt-get install openssh-client") from None
        except subprocess.CalledProcessError as exc:
            raise HostError(f"ssh-keygen failed: {exc.stderr.strip()}") from None
    return lab.ssh_public_key.read_text().strip()


def ssh_config_text(lab: LabPaths, hosts: dict[str, str]) -> str:
    """One Host block per node (name -> management IP). Host keys change with every new VM: not recorded."""
    blocks = []
    for name, ip in hosts.items():
        blocks.append(
            "\n".join(
                [
                    f"Host {name}",
                    f"  HostName {ip}",
                    f"  User {SSH_USER}",
                    f"  IdentityFile {lab.ssh_key}",
                    "  IdentitiesOnly yes",
                    "  StrictHostKeyChecking no",
                    "  UserKnownHostsFile /dev/null",
                    "  LogLevel ERROR",
                    "  ConnectTimeout 10",
                ]
            )
        )
    return "\n\n".join(blocks) + "\n"


def write_ssh_config(lab: LabPaths, hosts: dict[str, str]) -> Path:
    text = ssh_config_text(lab, hosts)
    if not lab.ssh_config.exists() or lab.ssh_config.read_text() != text:
        tmp = lab.ssh_config.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(lab.ssh_config)
    return lab.ssh_config
