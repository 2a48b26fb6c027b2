"""The box's root file system: ``mmdebstrap --mode=root`` into a directory from the host's mirror, with
the definition's overlay files put in before the packages are installed (so the kernel's initramfs is
generated once, with labkit's module list), and a cache of the .debs between builds."""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

from labkit import paths
from labkit.hostsetup.box.buildlog import BuildLog
from labkit.hostsetup.box.definition import OVERLAY_DIR, BoxDefinition
from labkit.hostsetup.box.version import definition_files
from labkit.hostsetup.box.workdir import remove_tree


def stage_overlay(directory: Path, stage: Path) -> None:
    """Copy the overlay with root ownership and sane modes (a checkout's owners and umask don't leak in)."""
    stage.mkdir(mode=0o755)
    os.chmod(stage, 0o755)
    source = directory / OVERLAY_DIR
    if not source.is_dir():
        return
    for rel in definition_files(source):
        src = source / rel
        dst = stage / rel
        for parent in reversed(dst.relative_to(stage).parents[:-1]):
            folder = stage / parent
            if not folder.exists():
                folder.mkdir(mode=0o755)
                os.chmod(folder, 0o755)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o755 if src.stat().st_mode & 0o111 else 0o644)
    for entry in [stage, *stage.rglob("*")]:
        os.lchown(entry, 0, 0)


def bootstrap(
    log: BuildLog,
    definition: BoxDefinition,
    stage: Path,
    rootfs: Path,
    work: Path,
    mirrors: Sequence[str],
    hook_dirs: Sequence[Path],
) -> None:
    """Run mmdebstrap into ``rootfs`` with the staged overlay."""
    # .debs of the previous build are reused (apt checks them against the mirror's index, so a stale
    # file is downloaded again); after the build the cache holds exactly this build's packages.
    deb_cache = paths.box_build_dir() / "debs" / f"{definition.suite}-{definition.architecture}"
    deb_cache.mkdir(parents=True, exist_ok=True)
    debs_out = work / "debs"
    debs_out.mkdir()
    cmd = _mmdebstrap_command(definition, hook_dirs, stage, rootfs, mirrors, deb_cache, debs_out)
    log.run(cmd, what="mmdebstrap", env={**os.environ, "LC_ALL": "C.UTF-8"})
    _refresh_deb_cache(deb_cache, debs_out)


def _mmdebstrap_command(
    definition: BoxDefinition,
    hook_dirs: Sequence[Path],
    stage: Path,
    rootfs: Path,
    mirrors: Sequence[str],
    deb_cache: Path,
    debs_out: Path,
) -> list[str]:
    return [
        "mmdebstrap", "--mode=root", f"--variant={definition.variant}",
        f"--architecture={definition.architecture}", f"--components={','.join(definition.components)}",
        f"--include={','.join(definition.packages)}",
        '--aptopt=APT::Install-Recommends "false"',
        '--aptopt=APT::Sandbox::User "root"',  # the work dir may be unreadable for _apt (e.g. under /root)
        "--dpkgopt=force-unsafe-io",  # no fsync: a failed build's tree is thrown away anyway
        "--dpkgopt=force-confold", "--dpkgopt=force-confdef",
        *(f"--hook-dir={d}" for d in hook_dirs),
        *(f"--dpkgopt=path-exclude={p}" for p in definition.path_exclude),
        *(f"--dpkgopt=path-include={p}" for p in definition.path_include),
        "--skip=essential/unlink",  # keep the essential .debs in the archive for the cache
        '--setup-hook=mkdir -p "$1/var/cache/apt/archives"',
        f"--setup-hook=sync-in {deb_cache} /var/cache/apt/archives/",
        # the overlay goes in before the remaining packages, e.g. the initramfs config before the kernel
        f'--essential-hook=tar -C {shlex.quote(str(stage))} -cf - . | tar -C "$1" -xf - --no-overwrite-dir',
        f"--customize-hook=sync-out /var/cache/apt/archives {debs_out}",
        definition.suite, str(rootfs), *mirrors,
    ]  # fmt: skip


def _refresh_deb_cache(cache: Path, fresh: Path) -> None:
    """Make ``cache`` hold exactly the .debs in ``fresh`` (this build's packages)."""
    wanted = {p.name for p in fresh.glob("*.deb")}
    for old in cache.glob("*.deb"):
        if old.name not in wanted:
            old.unlink()
    for deb in fresh.glob("*.deb"):
        os.replace(deb, cache / deb.name)
    remove_tree(fresh)


__all__ = ["bootstrap", "stage_overlay"]
