"""Building a box: skipped when the installed box was built from the same definition; otherwise, under
the box's build lock, the phases in order (root file system, configuration, disk, .box, vagrant box add),
with a failed build's pieces removed."""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit import paths
from labkit.errors import HostError
from labkit.hostsetup.box.apt_sources import host_mirror_lines, line_uri
from labkit.hostsetup.box.buildlog import BuildLog, Progress
from labkit.hostsetup.box.configure import configure_rootfs
from labkit.hostsetup.box.definition import DEFAULT_BOX, BoxDefinition, definition_dir, load_definition
from labkit.hostsetup.box.disk import convert_to_qcow2, make_raw_disk
from labkit.hostsetup.box.grub import install_grub
from labkit.hostsetup.box.installed import BoxInfo, box_info, current_box, installed_versions
from labkit.hostsetup.box.old_versions import prune, prune_locked, remove_old_versions
from labkit.hostsetup.box.package import (
    add_box,
    package_box,
    partial_box_file,
    write_box_metadata,
    write_catalog,
)
from labkit.hostsetup.box.preflight import check_host, hook_dirs
from labkit.hostsetup.box.rootfs import bootstrap, stage_overlay
from labkit.hostsetup.box.version import BUILDER_VERSION, box_version, content_hash
from labkit.hostsetup.box.workdir import locked, remove_tree


def build_box(name: str = DEFAULT_BOX, *, force: bool = False, progress: Progress | None = None) -> BoxInfo:
    """Build box ``name`` (``boxes/<name>/``) and add it to labkit's VAGRANT_HOME.

    Skipped when the installed box was built from the same definition (content hash), unless ``force``.
    ``progress`` receives one short line per phase. Raises HostError (with the failing command, the tail
    of its output and the log path) or UsageError (unknown box, invalid box.yaml).
    """
    say: Progress = progress or (lambda _message: None)
    directory = definition_dir(name)
    definition = load_definition(directory)
    digest = content_hash(directory)
    workdir = paths.box_build_dir() / directory.name

    if not force:
        current = current_box(definition, digest)
        if current is not None:
            say(f"box {definition.name} v{current.version} is up to date")
            prune(definition, workdir, current.version, say)
            return current

    with locked(workdir / ".lock", say):
        if not force:  # another process may have built it while we waited
            current = current_box(definition, digest)
            if current is not None:
                say(f"box {definition.name} v{current.version} is up to date")
                prune_locked(definition, workdir, current.version, say)
                return current
        return _build_locked(directory, definition, digest, workdir, say)


def ensure_box(name: str = DEFAULT_BOX, *, progress: Progress | None = None) -> BoxInfo:
    """The current box, built first if it is missing or outdated."""
    return build_box(name, progress=progress)


@dataclass(frozen=True)
class _Build:
    """What the phases of one build share: the definition, the version being built, the host's inputs,
    the work directory (removed at the end), the log and the progress callback."""

    directory: Path
    definition: BoxDefinition
    digest: str
    built_at: dt.datetime
    version: str
    public_key: Path
    mirrors: list[str]
    hook_dirs: list[Path]
    workdir: Path
    work: Path
    log: BuildLog
    say: Progress

    @property
    def fs_uuid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"labkit-box:{self.digest}:root"))

    @property
    def disk_id(self) -> str:
        return self.digest[:8]

    @property
    def box_file(self) -> Path:
        return self.workdir / f"{self.definition.vagrant_dir_name}-{self.version}.box"

    @property
    def catalog(self) -> Path:
        return self.workdir / "catalog.json"


def _build_locked(
    directory: Path, definition: BoxDefinition, digest: str, workdir: Path, say: Progress
) -> BoxInfo:
    build = _start(directory, definition, digest, workdir, say)
    old_catalog = build.catalog.read_bytes() if build.catalog.is_file() else None
    added = False
    started = time.monotonic()
    try:
        build.log.note(
            f"building {definition.name} v{build.version} from {directory} (content hash {digest})"
        )
        rootfs = _make_rootfs(build)
        facts = _configure_rootfs(build, rootfs)
        raw = _make_disk(build, rootfs, facts)
        box_dir = _make_box_dir(build, raw, facts)
        _package(build, box_dir)
        _register(build)
        added = True
    except BaseException:  # Ctrl-C too: remove the half-built box, then re-raise
        _discard_failed_build(build, added, old_catalog)
        raise
    _finish(build, started)
    return _installed_box(build)


def _start(directory: Path, definition: BoxDefinition, digest: str, workdir: Path, say: Progress) -> _Build:
    """Check the host, pick the version, clear what a killed build left, open the log and the work dir."""
    public_key = check_host()
    mirrors = host_mirror_lines(definition)
    hooks = hook_dirs(definition)
    built_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    version = box_version(digest, built_at)
    for stale in workdir.glob("build-*"):  # left by a killed build (we hold the lock)
        remove_tree(stale)
    log = BuildLog(workdir / "logs" / f"build-{version}.log")
    work = Path(tempfile.mkdtemp(prefix="build-", dir=workdir))
    return _Build(
        directory, definition, digest, built_at, version, public_key, mirrors, hooks, workdir, work, log, say
    )


def _make_rootfs(build: _Build) -> Path:
    definition = build.definition
    stage = build.work / "overlay"
    stage_overlay(build.directory, stage)
    rootfs = build.work / "rootfs"
    build.say(
        f"mmdebstrap {definition.suite} ({len(definition.packages)} packages) from {line_uri(build.mirrors[0])}"
    )
    bootstrap(build.log, definition, stage, rootfs, build.work, build.mirrors, build.hook_dirs)
    return rootfs


def _configure_rootfs(build: _Build, rootfs: Path) -> dict[str, Any]:
    build.say("configuring the image (user, SSH key, units, GRUB config)")
    public_key = build.public_key.read_text(encoding="utf-8")
    return configure_rootfs(build.log, build.definition, rootfs, public_key, build.fs_uuid)


def _make_disk(build: _Build, rootfs: Path, facts: dict[str, Any]) -> Path:
    """The raw disk with the root file system and GRUB; the root file system directory is removed."""
    definition = build.definition
    build.say(f"making a {definition.disk_size_gib} GiB disk (sfdisk, mke2fs -d, GRUB)")
    raw = make_raw_disk(build.log, definition, rootfs, build.work, build.fs_uuid, build.disk_id)
    remove_tree(rootfs)
    install_grub(build.log, definition, raw, build.work, build.fs_uuid, str(facts["grub_cfg"]))
    return raw


def _make_box_dir(build: _Build, raw: Path, facts: dict[str, Any]) -> Path:
    """The .box's contents in a directory: the qcow2 image (the raw disk is removed) and metadata."""
    build.say("compressing to qcow2")
    box_dir = build.work / "box"
    box_dir.mkdir()
    convert_to_qcow2(build.log, raw, box_dir / "box.img")
    raw.unlink()
    write_box_metadata(box_dir, build.definition, _labkit_metadata(build, facts))
    return box_dir


def _labkit_metadata(build: _Build, facts: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": build.definition.name,
        "definition": build.directory.name,
        "version": build.version,
        "content_hash": build.digest,
        "builder_version": BUILDER_VERSION,
        "built_at": build.built_at.isoformat(),
        "suite": build.definition.suite,
        "mirrors": build.mirrors,
        "fs_uuid": build.fs_uuid,
        **facts,
    }


def _package(build: _Build, box_dir: Path) -> None:
    build.say("packaging the .box")
    package_box(build.log, box_dir, build.box_file)
    remove_tree(box_dir)
    write_catalog(build.definition, build.version, build.box_file, build.catalog, build.work)


def _register(build: _Build) -> None:
    build.say(f"vagrant box add {build.definition.name} v{build.version}")
    add_box(build.log, build.catalog)


def _discard_failed_build(build: _Build, added: bool, old_catalog: bytes | None) -> None:
    """Remove the half-built box and put the previous catalog back (OSErrors of that are suppressed)."""
    build.log.note("build failed; cleaning up")
    if not added:
        with contextlib.suppress(OSError):
            build.box_file.unlink()
        with contextlib.suppress(OSError):
            partial_box_file(build.box_file).unlink()
        with contextlib.suppress(OSError):
            if old_catalog is None:
                build.catalog.unlink()
            else:
                build.catalog.write_bytes(old_catalog)
    build.log.close()
    remove_tree(build.work)


def _finish(build: _Build, started: float) -> None:
    """Remove the work directory, older versions of the box and older .box files; close the log."""
    try:
        remove_tree(build.work)
        remove_old_versions(build.log, build.definition, build.version, build.say)
        for old_box in build.workdir.glob(f"{build.definition.vagrant_dir_name}-*.box"):
            if old_box != build.box_file:
                old_box.unlink()
        build.log.note(
            f"built {build.definition.name} v{build.version} in {time.monotonic() - started:.1f} s"
        )
    finally:
        build.log.close()


def _installed_box(build: _Build) -> BoxInfo:
    for installed_name, installed_version, box_dir_path in installed_versions(build.definition.name):
        if installed_version == build.version:
            return box_info(installed_name, installed_version, box_dir_path, build.digest)
    raise HostError(
        f"vagrant box add succeeded but {build.definition.name} v{build.version} is not in "
        f"{paths.vagrant_home()}/boxes",
        f"full log: {build.log.path}",
    )


__all__ = ["build_box", "ensure_box"]
