"""The boxes installed in labkit's VAGRANT_HOME, read from its directory layout (fast, no ruby start-up),
and the environment that points vagrant at it."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit import paths
from labkit.errors import UsageError
from labkit.hostsetup.box.definition import (
    DEFAULT_BOX,
    DEFINITION_FILE,
    BoxDefinition,
    definition_dir,
    load_definition,
)
from labkit.hostsetup.box.version import content_hash, version_matches, version_sort_key

PROVIDER = "libvirt"
LABKIT_METADATA = "labkit.json"


@dataclass(frozen=True)
class BoxInfo:
    """One installed box version (libvirt provider) in labkit's VAGRANT_HOME."""

    name: str
    version: str
    content_hash: str | None
    """Full sha256 of the definition it was built from; None for a box labkit did not build."""
    path: Path
    """The box directory: ``$VAGRANT_HOME/boxes/<name>/<version>/libvirt`` (holds ``box.img``)."""
    size: int
    """Bytes on disk of the box directory."""
    current: bool = False
    """Built from the definition as it is now (same content hash)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "content_hash": self.content_hash,
            "path": str(self.path),
            "size": self.size,
            "current": self.current,
        }


def vagrant_env() -> dict[str, str]:
    env = dict(os.environ)
    env["VAGRANT_HOME"] = str(paths.vagrant_home())
    env["VAGRANT_CHECKPOINT_DISABLE"] = "1"  # no route out: the version check would only time out
    env["VAGRANT_NO_COLOR"] = "1"
    return env


def _read_labkit_metadata(box_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((box_dir / LABKIT_METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _dir_size(path: Path) -> int:
    total = 0
    for entry in path.rglob("*"):
        with contextlib.suppress(OSError):
            if entry.is_file() and not entry.is_symlink():
                total += entry.stat().st_size
    return total


def installed_versions(box_name: str | None = None) -> list[tuple[str, str, Path]]:
    """(name, version, box dir) of every installed libvirt box, or of one box name."""
    root = paths.vagrant_home() / "boxes"
    if not root.is_dir():
        return []
    found: list[tuple[str, str, Path]] = []
    for name_dir in sorted(root.iterdir()):
        name = name_dir.name.replace("-VAGRANTSLASH-", "/")
        if box_name is not None and name != box_name:
            continue
        if not name_dir.is_dir():
            continue
        for version_dir in name_dir.iterdir():
            box_dir = version_dir / PROVIDER
            if (box_dir / "metadata.json").is_file():
                found.append((name, version_dir.name, box_dir))
    found.sort(key=lambda item: (item[0], version_sort_key(item[1])))
    return found


def _definition_hashes() -> dict[str, str]:
    """Box name -> content hash of its current definition, for every definition under boxes/."""
    root = paths.boxes_dir()
    result: dict[str, str] = {}
    if not root.is_dir():
        return result
    for yaml_path in sorted(root.glob(f"*/{DEFINITION_FILE}")):
        try:
            definition = load_definition(yaml_path.parent)
        except UsageError:
            continue
        result[definition.name] = content_hash(yaml_path.parent)
    return result


def box_info(name: str, version: str, box_dir: Path, current_hash: str | None) -> BoxInfo:
    meta = _read_labkit_metadata(box_dir)
    digest = meta.get("content_hash")
    digest = digest if isinstance(digest, str) else None
    return BoxInfo(
        name=name,
        version=version,
        content_hash=digest,
        path=box_dir,
        size=_dir_size(box_dir),
        current=digest is not None and digest == current_hash,
    )


def list_boxes() -> list[BoxInfo]:
    """Every libvirt box installed in labkit's VAGRANT_HOME, oldest version first per name."""
    hashes = _definition_hashes()
    return [box_info(n, v, d, hashes.get(n)) for n, v, d in installed_versions()]


def current_box(definition: BoxDefinition, digest: str) -> BoxInfo | None:
    """The newest installed version built from the definition with content hash ``digest``, if any."""
    for name, version, box_dir in reversed(installed_versions(definition.name)):
        if not (box_dir / "box.img").is_file():
            continue
        meta = _read_labkit_metadata(box_dir)
        if meta.get("content_hash") == digest and version_matches(version, digest):
            return box_info(name, version, box_dir, digest)
    return None


def box_is_current(name: str = DEFAULT_BOX) -> bool:
    """True when the box is installed, built from its definition as it is now."""
    directory = definition_dir(name)
    return current_box(load_definition(directory), content_hash(directory)) is not None


__all__ = [
    "LABKIT_METADATA",
    "PROVIDER",
    "BoxInfo",
    "box_info",
    "box_is_current",
    "current_box",
    "installed_versions",
    "list_boxes",
    "vagrant_env",
]
