"""What a box build needs from the host before it starts: root, the tools, GRUB's BIOS files, Vagrant's
insecure public key and the mmdebstrap hook directories the definition names."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from labkit.errors import HostError
from labkit.hostsetup.box.definition import BoxDefinition
from labkit.hostsetup.box.grub import GRUB_PC_DIR
from labkit.machines.vagrant_keys import insecure_public_key

MMDEBSTRAP_HOOKS_DIR = Path("/usr/share/mmdebstrap/hooks")
VAGRANT_PUBLIC_KEY_GLOB = "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub"
HOST_TOOLS: Mapping[str, str] = {
    "mmdebstrap": "mmdebstrap",
    "sfdisk": "fdisk",
    "mke2fs": "e2fsprogs",
    "grub-mkimage": "grub-common",
    "qemu-img": "qemu-utils",
    "tar": "tar",
    "dd": "coreutils",
    "chroot": "coreutils",
    "vagrant": "vagrant",
}


def check_host() -> Path:
    """Check the host; return Vagrant's insecure public key."""
    if os.geteuid() != 0:
        raise HostError(
            "building a box needs root (mmdebstrap --mode=root, chroot)", "run `sudo labkit box build`"
        )
    missing = [f"{tool} (apt package {pkg})" for tool, pkg in HOST_TOOLS.items() if not shutil.which(tool)]
    if not (GRUB_PC_DIR / "boot.img").is_file():
        missing.append(f"{GRUB_PC_DIR}/boot.img (apt package grub-pc-bin)")
    if missing:
        packages = sorted({m.split("apt package ")[1].rstrip(")") for m in missing})
        raise HostError(
            f"box build needs: {', '.join(missing)}",
            f"apt-get install --no-install-recommends {' '.join(packages)}",
        )
    key = insecure_public_key()
    if key is None:
        raise HostError(
            f"Vagrant's insecure public key not found ({VAGRANT_PUBLIC_KEY_GLOB} or /opt/vagrant)",
            "install Debian's vagrant package: apt-get install vagrant",
        )
    return key


def hook_dirs(definition: BoxDefinition) -> list[Path]:
    dirs = [MMDEBSTRAP_HOOKS_DIR / name for name in definition.mmdebstrap_hooks]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        raise HostError(
            f"mmdebstrap hook directory missing: {', '.join(missing)}",
            "install a newer mmdebstrap (Debian 12's 1.3 has them) or drop mmdebstrap_hooks in box.yaml",
        )
    return dirs


__all__ = ["HOST_TOOLS", "MMDEBSTRAP_HOOKS_DIR", "VAGRANT_PUBLIC_KEY_GLOB", "check_host", "hook_dirs"]
