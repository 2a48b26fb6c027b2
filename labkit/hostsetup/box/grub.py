"""GRUB for the box's BIOS boot: the boot menu, and ``core.img`` (``grub-mkimage -O i386-pc``, every
module built in) written after the MBR with ``boot.img``'s code in it."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from labkit.errors import HostError
from labkit.hostsetup.box.buildlog import BuildLog
from labkit.hostsetup.box.definition import BoxDefinition
from labkit.hostsetup.box.disk import PARTITION_OFFSET

GRUB_PC_DIR = Path("/usr/lib/grub/i386-pc")
GRUB_KERNEL_COMMANDS = frozenset({"set", "unset", "ls", "insmod"})  # built into GRUB's kernel


def grub_missing_commands(
    configs: Sequence[str], modules: Sequence[str], command_lst: str, moddep_lst: str
) -> list[str]:
    """Commands used by GRUB ``configs`` that no module in ``modules`` (or their dependencies) provides.

    ``command_lst`` and ``moddep_lst`` are GRUB's ``command.lst`` and ``moddep.lst`` (pure: for tests).
    """
    provider: dict[str, str] = {}
    for line in command_lst.splitlines():
        command, sep, module = line.partition(":")
        if sep:
            provider[command.strip().lstrip("*")] = module.strip()
    deps: dict[str, list[str]] = {}
    for line in moddep_lst.splitlines():
        module, sep, needed = line.partition(":")
        if sep:
            deps[module.strip()] = needed.split()
    closure: set[str] = set()
    pending = list(modules)
    while pending:
        module = pending.pop()
        if module not in closure:
            closure.add(module)
            pending += deps.get(module, [])
    missing: list[str] = []
    for text in configs:
        for raw in text.splitlines():
            words = raw.strip().split()
            if not words or words[0].startswith("#") or words[0] in ("}", "{"):
                continue
            command = words[0]
            if command in GRUB_KERNEL_COMMANDS or provider.get(command) in closure or command in missing:
                continue
            missing.append(command)
    return missing


def grub_serial_setup() -> str:
    return "serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\n"


def boot_menu(kernel: str, cmdline: str) -> str:
    """The image's ``/boot/grub/grub.cfg``: one entry, no wait."""
    return (
        "# written by labkit's box builder; GRUB's modules are built into core.img\n"
        + grub_serial_setup()
        + "set default=0\n"
        + "set timeout=0\n"
        + f"menuentry 'Debian GNU/Linux ({kernel})' {{\n"
        + f"\tlinux /boot/vmlinuz-{kernel} {cmdline}\n"
        + f"\tinitrd /boot/initrd.img-{kernel}\n"
        + "}\n"
    )


def install_grub(
    log: BuildLog, definition: BoxDefinition, raw: Path, work: Path, fs_uuid: str, grub_cfg: str
) -> None:
    early = work / "grub-early.cfg"
    early_text = _early_config(fs_uuid)
    early.write_text(early_text, encoding="utf-8")
    _check_built_in_modules(definition, [early_text, grub_cfg])
    core = work / "core.img"
    _make_core_image(log, definition, early, core)
    _write_boot_code(log, core, raw)
    if shutil.which("grub-fstest"):  # GRUB's own ext4 reader must be able to read the file system
        log.run(
            ["grub-fstest", str(raw), "cat", "(loop0,msdos1)/boot/grub/grub.cfg"],
            what="check that GRUB reads the root file system",
            capture=True,
        )


def _early_config(fs_uuid: str) -> str:
    # Built into core.img: serial first (so any failure shows on the serial console), then find the root
    # file system by UUID; the first partition of the boot disk is the fallback.
    return (
        grub_serial_setup()
        + "set root=(hd0,msdos1)\n"
        + f"search --no-floppy --fs-uuid --set=root {fs_uuid}\n"
        + "set prefix=($root)/boot/grub\n"
    )


def _check_built_in_modules(definition: BoxDefinition, configs: Sequence[str]) -> None:
    missing = grub_missing_commands(
        configs,
        definition.grub_modules,
        (GRUB_PC_DIR / "command.lst").read_text(encoding="utf-8"),
        (GRUB_PC_DIR / "moddep.lst").read_text(encoding="utf-8"),
    )
    if missing:
        raise HostError(
            f"GRUB commands {', '.join(missing)} are in none of the modules built into core.img",
            f"add their modules (see {GRUB_PC_DIR}/command.lst) to grub_modules in box.yaml",
        )


def _make_core_image(log: BuildLog, definition: BoxDefinition, early: Path, core: Path) -> None:
    log.run(
        [
            "grub-mkimage",
            "--format",
            "i386-pc",
            "--output",
            str(core),
            "--config",
            str(early),
            "--prefix",
            "/boot/grub",
            "--directory",
            str(GRUB_PC_DIR),
            *definition.grub_modules,
        ],
        what="build GRUB's core.img",
    )
    limit = PARTITION_OFFSET - 512
    if core.stat().st_size > limit:
        raise HostError(
            f"GRUB core.img is {core.stat().st_size} bytes; only {limit} fit before the partition",
            "build fewer GRUB modules into it (grub_modules in box.yaml)",
        )


def _write_boot_code(log: BuildLog, core: Path, raw: Path) -> None:
    # core.img right after the MBR (boot.img loads sector 1, which loads the rest); boot.img's code into
    # the MBR, keeping the partition table sfdisk wrote (bytes 440-511).
    log.run(
        ["dd", f"if={core}", f"of={raw}", "bs=512", "seek=1", "conv=notrunc", "status=none"],
        what="write GRUB's core.img",
    )
    log.run(
        [
            "dd",
            f"if={GRUB_PC_DIR / 'boot.img'}",
            f"of={raw}",
            "bs=440",
            "count=1",
            "conv=notrunc",
            "status=none",
        ],
        what="write GRUB's boot.img",
    )


__all__ = [
    "GRUB_KERNEL_COMMANDS",
    "GRUB_PC_DIR",
    "boot_menu",
    "grub_missing_commands",
    "grub_serial_setup",
    "install_grub",
]
