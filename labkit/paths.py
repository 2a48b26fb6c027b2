"""Every path labkit uses, in one place (like containerlab's TopoPaths).

``LABKIT_HOME`` (default ``$XDG_DATA_HOME/labkit``, i.e. ``~/.local/share/labkit``) holds the labs, the
Vagrant home labkit uses, built boxes and the artifact cache. Nothing else on the host is written except
libvirt's own state, in host mode ``/run/labkit``, and for ``labkit class access`` the account
``labkit-trainee`` and sshd's ``/run/sshd``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def resource_root() -> Path:
    """Directory holding ``Vagrantfile.j2``, ``scenarios/`` and ``boxes/``.

    In a source checkout that is the repository root; in an installed wheel it is ``labkit/data``.
    """
    checkout = PACKAGE_DIR.parent
    if (checkout / "Vagrantfile.j2").is_file() and (checkout / "scenarios").is_dir():
        return checkout
    return PACKAGE_DIR / "data"


def vagrantfile_template() -> Path:
    return resource_root() / "Vagrantfile.j2"


def scenarios_dir() -> Path:
    return resource_root() / "scenarios"


def boxes_dir() -> Path:
    return resource_root() / "boxes"


def labkit_home() -> Path:
    """labkit's own directory, private to its owner (0700): it holds lab keys, and Vagrantfiles, which are Ruby
    that vagrant runs as root. Made so on first use, whatever the umask."""
    env = os.environ.get("LABKIT_HOME")
    if env:
        home = Path(env)
    else:
        xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        home = Path(xdg) / "labkit"
    _make_private(home)
    return home


def _make_private(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if directory.stat().st_mode & 0o077:
            directory.chmod(0o700)
    except OSError:
        pass  # a read-only or foreign home is reported by the command that writes there


def key_backups_dir() -> Path:
    """A copy of every lab's private key, outside the lab directory: losing that must not lock a trainer out."""
    return labkit_home() / "keys"


def vagrant_home() -> Path:
    """The VAGRANT_HOME of every vagrant call labkit makes: boxes are added once and shared by all labs."""
    return labkit_home() / "vagrant"


def box_build_dir() -> Path:
    return labkit_home() / "boxes"


def artifact_store() -> Path:
    """Where verified downloads and their lock file live: ``LABKIT_ARTIFACT_STORE`` when set (a bigger disk, a
    store shared by several homes, a test's own), else labkit's home."""
    env = os.environ.get("LABKIT_ARTIFACT_STORE")
    if env:
        store = Path(env)
        _make_private(store)
        return store
    return labkit_home()


def artifact_cache_dir() -> Path:
    return artifact_store() / "cache" / "artifacts"


def labs_dir() -> Path:
    return labkit_home() / "labs"


def host_pool_file() -> Path:
    """The pool of libvirt hosts labs may go to (``labkit hosts add``); ``local`` is never written there."""
    return labkit_home() / "hosts.json"


def second_hosts_dir() -> Path:
    """One directory per second libvirt host run on this machine (``labkit host up --name NAME``)."""
    return labkit_home() / "hosts"


def host_files_dir() -> Path:
    """What labkit knows of files it copied to other hosts: sha256 sums, each with the file's stat when summed
    (here and on each host), and a lock per host."""
    return labkit_home() / "host-files"


def host_run_dir() -> Path:
    """Host-mode state (the network namespace and the daemons labkit started); lives as long as the boot."""
    return Path(os.environ.get("LABKIT_RUN_DIR", "/run/labkit"))


@dataclass(frozen=True)
class LabPaths:
    """The files of one lab. The directory name is the lab name."""

    root: Path

    @classmethod
    def for_lab(cls, lab: str) -> LabPaths:
        return cls(labs_dir() / lab)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def vagrantfile(self) -> Path:
        return self.root / "Vagrantfile"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def ssh_key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def ssh_public_key(self) -> Path:
        return self.root / "id_ed25519.pub"

    @property
    def ssh_key_backup(self) -> Path:
        return key_backups_dir() / f"{self.name}.id_ed25519"

    @property
    def ssh_config(self) -> Path:
        return self.root / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    @property
    def vagrant_dotfile(self) -> Path:
        return self.root / ".vagrant"

    def machine_dir(self, node: str) -> Path:
        return self.vagrant_dotfile / "machines" / node / "libvirt"
