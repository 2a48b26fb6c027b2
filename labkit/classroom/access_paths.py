"""The files of a class's trainee access, under ``$LABKIT_HOME/classes/CLASS.access/`` (mode 0700): the class
gateway's sshd files in ``gateway/``, and each trainee's bundle in ``trainees/<trainee>/``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labkit.classroom.record import classes_dir


@dataclass(frozen=True)
class AccessPaths:
    root: Path

    @classmethod
    def for_class(cls, class_name: str) -> AccessPaths:
        return cls(classes_dir() / f"{class_name}.access")

    @property
    def class_name(self) -> str:
        return self.root.name.removesuffix(".access")

    @property
    def gateway(self) -> Path:
        return self.root / "gateway"

    @property
    def sshd_config(self) -> Path:
        return self.gateway / "sshd_config"

    @property
    def host_key(self) -> Path:
        return self.gateway / "ssh_host_ed25519_key"

    @property
    def host_public_key(self) -> Path:
        return self.gateway / "ssh_host_ed25519_key.pub"

    @property
    def authorized_keys(self) -> Path:
        return self.gateway / "authorized_keys"

    @property
    def pidfile(self) -> Path:
        return self.gateway / "sshd.pid"

    @property
    def log(self) -> Path:
        return self.gateway / "sshd.log"

    @property
    def trainees(self) -> Path:
        return self.root / "trainees"

    def bundle(self, trainee: str) -> Path:
        return self.trainees / trainee

    def tarball(self, trainee: str) -> Path:
        return self.trainees / f"labkit-{self.class_name}-{trainee}.tar.gz"
