"""Older versions of a box: removed after a build (with their libvirt volumes) unless a Vagrant machine
still uses them, and pruned later once no machine does."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from labkit import paths
from labkit.hostsetup.box.buildlog import BuildLog, Progress
from labkit.hostsetup.box.definition import BoxDefinition
from labkit.hostsetup.box.installed import PROVIDER, installed_versions, vagrant_env
from labkit.hostsetup.box.pool_volumes import delete_pool_volumes
from labkit.hostsetup.box.workdir import locked


def versions_in_use(box_name: str) -> set[str]:
    """Versions of a box that Vagrant machines (in labkit's VAGRANT_HOME's machine index) still use."""
    index = paths.vagrant_home() / "data" / "machine-index" / "index"
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    used: set[str] = set()
    machines = data.get("machines") if isinstance(data, dict) else None
    for entry in (machines or {}).values():
        if not isinstance(entry, dict):
            continue
        box = (entry.get("extra_data") or {}).get("box") or {}
        vagrantfile_dir = entry.get("vagrantfile_path")
        if (
            box.get("name") == box_name
            and box.get("provider") == PROVIDER
            and (not vagrantfile_dir or Path(str(vagrantfile_dir)).is_dir())
        ):
            used.add(str(box.get("version")))
    return used


def remove_old_versions(log: BuildLog, definition: BoxDefinition, keep: str, progress: Progress) -> None:
    box_root = paths.vagrant_home() / "boxes" / definition.vagrant_dir_name
    _remove_empty_version_dirs(box_root)
    old = [version for _, version, _ in installed_versions(definition.name) if version != keep]
    if not old:
        return
    in_use = versions_in_use(definition.name)
    removed: list[str] = []
    for version in old:
        if version in in_use:
            progress(f"kept {definition.name} v{version}: a Vagrant machine still uses it")
            continue
        progress(f"removing {definition.name} v{version}")
        log.run(
            ["vagrant", "box", "remove", definition.name, "--provider", PROVIDER, "--box-version", version],
            what=f"remove old box version {version}",
            env=vagrant_env(),
            timeout=300,
        )
        removed.append(version)
    _remove_empty_version_dirs(box_root)
    delete_pool_volumes(log, definition, removed, progress)


def _remove_empty_version_dirs(box_root: Path) -> None:
    """`vagrant box remove` leaves the emptied version directory behind."""
    if box_root.is_dir():
        for version_dir in box_root.iterdir():
            with contextlib.suppress(OSError):
                if version_dir.is_dir() and not version_dir.is_symlink():
                    version_dir.rmdir()  # only succeeds when empty


def prune(definition: BoxDefinition, workdir: Path, keep: str, say: Progress) -> None:
    """Remove older versions that were still in use at the last build and no longer are (cheap if none)."""
    if _nothing_to_prune(definition, keep):
        return
    with locked(workdir / ".lock", say):
        prune_locked(definition, workdir, keep, say)


def prune_locked(definition: BoxDefinition, workdir: Path, keep: str, say: Progress) -> None:
    """:func:`prune` for a caller that holds the build lock."""
    if _nothing_to_prune(definition, keep):
        return
    log = BuildLog(workdir / "logs" / "prune.log")
    try:
        remove_old_versions(log, definition, keep, say)
    finally:
        log.close()


def _nothing_to_prune(definition: BoxDefinition, keep: str) -> bool:
    in_use = versions_in_use(definition.name)
    return all(v == keep or v in in_use for _, v, _ in installed_versions(definition.name))


__all__ = ["prune", "prune_locked", "remove_old_versions", "versions_in_use"]
