"""Where a second host on this machine keeps its files: all under ``$LABKIT_HOME/hosts/NAME/``.

Its libvirtd sees five of those directories in place of libvirt's own (bind mounts in its private mount
namespace), so it shares no socket, pid file, definition, dnsmasq lease or log with the machine's libvirtd.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from labkit.errors import UsageError
from labkit.paths import second_hosts_dir

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,11}$")
"""A second host's name: its veth on labkit's side is ``lk-NAME``, and interface names stop at 15 bytes."""

PRIVATE_DIRS = (
    ("etc", Path("/etc/libvirt")),
    ("run", Path("/run/libvirt")),
    ("lib", Path("/var/lib/libvirt")),
    ("cache", Path("/var/cache/libvirt")),
    ("log", Path("/var/log/libvirt")),
)
"""(directory of the host, the libvirt directory it replaces in the host's mount namespace)."""

POOL_PATH = Path("/var/lib/libvirt/images")
"""The storage pool's directory as the second host's libvirtd sees it (``lib/images`` on this machine)."""


def check_second_host_name(name: str) -> str:
    if name == "local" or not NAME_RE.match(name):
        raise UsageError(
            f"{name!r} cannot name a second host",
            hint="use 1-12 lowercase letters, digits or '-', starting with a letter, and not 'local'",
        )
    return name


@dataclass(frozen=True)
class SecondHostPaths:
    """The files of one second host. The directory's name is the host's name."""

    root: Path

    @classmethod
    def for_host(cls, name: str) -> SecondHostPaths:
        return cls(second_hosts_dir() / check_second_host_name(name))

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def netns(self) -> str:
        return f"labkit-{self.name}"

    @property
    def peer_veth(self) -> str:
        """The veth end in labkit's network namespace."""
        return f"lk-{self.name}"

    @property
    def state(self) -> Path:
        return self.root / "host.json"

    @property
    def last_subnet(self) -> Path:
        """The subnet of the last ``up``, taken again when free: the URI in the pool stays right."""
        return self.root / "subnet"

    def private(self, sub: str) -> Path:
        return self.root / sub

    def mounts(self) -> list[tuple[Path, Path]]:
        """(source on this machine, libvirt directory it is mounted over) for the host's mount namespace."""
        return [(self.root / sub, target) for sub, target in PRIVATE_DIRS]

    @property
    def socket(self) -> Path:
        """libvirtd's socket, as seen from this machine's mount namespace."""
        return self.root / "run" / "libvirt-sock"

    @property
    def socket_uri(self) -> str:
        """libvirtd reached through its socket file, from this machine (no SSH, any network namespace)."""
        return f"qemu:///system?socket={quote(str(self.socket), safe='/')}"

    @property
    def libvirtd_binary(self) -> Path:
        """A link to libvirtd under another name: ``ps`` tells it from the machine's libvirtd, and host mode's
        "is a libvirtd already running?" check does not mistake it for one labkit did not start."""
        return self.root / "bin" / "labkit-libvirtd"

    def pidfile(self, daemon: str) -> Path:
        return self.root / f"{daemon}.pid"

    def log(self, daemon: str) -> Path:
        return self.root / f"{daemon}.log"

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def host_key(self) -> Path:
        return self.ssh_dir / "ssh_host_ed25519_key"

    @property
    def client_key(self) -> Path:
        """The key labkit logs in with (root, by key only); its public half is the host's only authorized key."""
        return self.ssh_dir / "id_ed25519"

    @property
    def authorized_keys(self) -> Path:
        return self.ssh_dir / "authorized_keys"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def sshd_config(self) -> Path:
        return self.ssh_dir / "sshd_config"

    @property
    def ssh_config(self) -> Path:
        return self.ssh_dir / "ssh_config"

    @property
    def ssh_command(self) -> Path:
        """``ssh`` with this host's client settings: the ``command`` of its libvirt URI."""
        return self.ssh_dir / "ssh"
