"""Configuring the bootstrapped image from the host: the box user with Vagrant's key and sudo, systemd
units, per-clone identity left to first boot, /etc files, the GRUB menu; and the facts for labkit.json."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from labkit.errors import HostError
from labkit.hostsetup.box.buildlog import BuildLog
from labkit.hostsetup.box.definition import BoxDefinition, UserSpec
from labkit.hostsetup.box.grub import boot_menu

# Leftovers of the build that only cost space.
BUILD_LEFTOVERS = (
    "var/cache/apt/*.bin",
    "var/lib/apt/lists/*",
    "var/log/*.log",
    "var/log/apt/*",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "tmp/*",
    "var/tmp/*",
    "root/.bash_history",
)


def configure_rootfs(
    log: BuildLog, definition: BoxDefinition, rootfs: Path, public_key: str, fs_uuid: str
) -> dict[str, Any]:
    """Configure the image from the host; returns facts for labkit.json (kernel, packages)."""
    _add_user(log, definition.user, rootfs, public_key)
    _set_unit_states(log, definition, rootfs)
    _leave_identity_to_first_boot(rootfs)
    _write_etc_files(definition, rootfs, fs_uuid)
    kernel = _only_kernel(log, rootfs)
    cmdline = f"root=UUID={fs_uuid} ro {definition.kernel_cmdline}".strip()
    grub_cfg = boot_menu(kernel, cmdline)
    _write(rootfs / "boot/grub/grub.cfg", grub_cfg)
    packages = _package_versions(log, rootfs)
    _remove_leftovers(rootfs)
    return {"kernel": kernel, "kernel_cmdline": cmdline, "grub_cfg": grub_cfg, "packages": packages}


def _chroot(log: BuildLog, rootfs: Path, *cmd: str, what: str, capture: bool = False) -> str:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}
    return log.run(["chroot", str(rootfs), *cmd], what=what, env=env, capture=capture)


def _passwd_ids(rootfs: Path, user: str) -> tuple[int, int, str]:
    for line in (rootfs / "etc/passwd").read_text(encoding="utf-8").splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3]), fields[5]
    raise HostError(f"user {user} missing from the image after useradd")


def _write(path: Path, text: str, mode: int = 0o644, owner: tuple[int, int] = (0, 0)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():  # never write through a link out of the image
        path.unlink()
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    os.chown(path, *owner)


def _add_user(log: BuildLog, user: UserSpec, rootfs: Path, public_key: str) -> None:
    """The box user: Vagrant's key in authorized_keys, sudo without password."""
    _chroot(
        log,
        rootfs,
        "useradd",
        "--create-home",
        "--user-group",
        "--shell",
        user.shell,
        user.name,
        what="create the box user",
    )
    # "*": no password login, but not "locked" ("!"), which some sshd configurations refuse for keys too
    _chroot(log, rootfs, "usermod", "--password", "*", user.name, what="set the box user's password")
    uid, gid, home = _passwd_ids(rootfs, user.name)
    ssh_dir = rootfs / home.lstrip("/") / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    os.chown(ssh_dir, uid, gid)
    _write(ssh_dir / "authorized_keys", public_key.strip() + "\n", 0o600, (uid, gid))
    sudoers = Path("etc/sudoers.d") / user.name.replace(".", "_")
    _write(rootfs / sudoers, f"{user.name} ALL=(ALL) NOPASSWD: ALL\n", 0o440)
    _chroot(log, rootfs, "visudo", "--check", "--file", f"/{sudoers}", what="check the sudoers drop-in")


def _set_unit_states(log: BuildLog, definition: BoxDefinition, rootfs: Path) -> None:
    if definition.enable_units:
        _chroot(log, rootfs, "systemctl", "enable", *definition.enable_units, what="enable units")
    if definition.disable_units:
        _chroot(log, rootfs, "systemctl", "disable", *definition.disable_units, what="disable units")
    if definition.mask_units:
        _chroot(log, rootfs, "systemctl", "mask", *definition.mask_units, what="mask units")


def _leave_identity_to_first_boot(rootfs: Path) -> None:
    # Host keys are made at first boot (ed25519 only): clones must not share them.
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    # Empty machine-id: systemd makes a new one at first boot, so clones differ.
    _write(rootfs / "etc/machine-id", "", 0o444)
    dbus_id = rootfs / "var/lib/dbus/machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
        dbus_id.symlink_to("/etc/machine-id")


def _write_etc_files(definition: BoxDefinition, rootfs: Path, fs_uuid: str) -> None:
    """hostname, hosts, resolv.conf and fstab."""
    _write(rootfs / "etc/hostname", f"{definition.hostname}\n")
    _write(
        rootfs / "etc/hosts",
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{definition.hostname}\n\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    )
    # mmdebstrap leaves the build host's resolver here. Guests have no route out and no resolver
    # daemon: the lab writes its own resolv.conf (e.g. the management network's gateway).
    _write(
        rootfs / "etc/resolv.conf", "# no resolver in the labkit box (no route out); a lab writes its own\n"
    )
    _write(rootfs / "etc/fstab", f"UUID={fs_uuid}\t/\text4\terrors=remount-ro\t0\t1\n")


def _only_kernel(log: BuildLog, rootfs: Path) -> str:
    """The version of the image's one kernel, which must have its initrd."""
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise HostError(
            f"expected one kernel in the image, found {[k.name for k in kernels]}", f"full log: {log.path}"
        )
    kernel = kernels[0].name.removeprefix("vmlinuz-")
    if not (rootfs / "boot" / f"initrd.img-{kernel}").is_file():
        raise HostError(f"the image has no initrd.img-{kernel}", f"full log: {log.path}")
    return kernel


def _package_versions(log: BuildLog, rootfs: Path) -> dict[str, str]:
    listing = _chroot(
        log,
        rootfs,
        "dpkg-query",
        "--show",
        "--showformat",
        "${Package}\t${Version}\n",
        what="list installed packages",
        capture=True,
    )
    return dict(line.split("\t", 1) for line in listing.splitlines() if "\t" in line)


def _remove_leftovers(rootfs: Path) -> None:
    for pattern in BUILD_LEFTOVERS:
        for entry in rootfs.glob(pattern):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.name != "lock":
                entry.unlink()


__all__ = ["BUILD_LEFTOVERS", "configure_rootfs"]
