"""A host cache carried to an offline host: :func:`export_dir` writes what a scenario needs (binaries, image
archives and their lock entries) to a directory, :func:`import_all` takes such a directory back, verified.

Layout of an export (``labkit artifacts export three-node DIR``)::

    DIR/artifacts.lock.json                       the lock entries of everything below
    DIR/<name>/<version>/<filename>               each binary download, as upstream names it
    DIR/images/<name>/<tag>/<name>-<tag>.tar      each image's docker-archive, tagged with its reference

On import a binary is verified by its pin, else by the exported lock's sha256 (recorded on the exporting host
from the project's checksum file or at first download). An image archive is matched by the reference it is
tagged with; it is taken only when the exported lock's entry names the catalog's digest (or, for an image with no
pin, a digest this host has not recorded differently) and the file's sha256 and image ID are the recorded ones.
The exporting host pulled it by that digest, so the chain of trust is the same as a fetch.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from labkit.artifacts import images
from labkit.artifacts.catalog import Artifact, Catalog, active_catalog
from labkit.artifacts.files import copy_file, file_sha256
from labkit.artifacts.importing import ImportResult, import_dir, import_image_archives
from labkit.artifacts.inventory import MissingArtifactsError
from labkit.artifacts.lockfile import LOCK_FILE_NAME, WarnFn
from labkit.artifacts.store import cached_path, recorded
from labkit.errors import HostError, UsageError
from labkit.model.image_refs import Image

log = logging.getLogger("labkit.artifacts.offline")

IMAGES_DIR = "images"


def _artifact_entry(artifact: Artifact) -> dict[str, Any]:
    entry = recorded(artifact)
    if entry is not None:
        return entry
    return {"filename": artifact.filename, "sha256": artifact.sha256, "url": artifact.url, "how": "pinned"}


def export_dir(
    selected: list[Artifact], chosen: list[Image], directory: Path | str, scenario: str | None = None
) -> list[Path]:
    """Copy the verified cached files of ``selected`` and ``chosen`` into ``directory`` with a lock file of
    their entries; MissingArtifactsError naming everything not cached (nothing is written then)."""
    root = Path(directory)
    missing = [a for a in selected if cached_path(a) is None]
    missing_images = images.missing(chosen)
    if missing or missing_images:
        raise MissingArtifactsError(missing, scenario, images=missing_images)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is not a directory", "give a directory to write the export to")
    written: list[Path] = []
    lock: dict[str, Any] = {"version": 1, "artifacts": {}, "images": {}}
    for artifact in selected:
        source = cached_path(artifact)
        assert source is not None
        dest = root / artifact.name / artifact.version / artifact.filename
        copy_file(source, dest)
        written.append(dest)
        lock["artifacts"][artifact.key] = _artifact_entry(artifact)
    for image in chosen:
        held = images.require(image, scenario)
        dest = root / IMAGES_DIR / image.name / image.ref.tag / held.path.name
        copy_file(held.path, dest)
        if file_sha256(dest) != held.sha256:
            raise HostError(
                f"image {image}: the copy {dest} differs from the cache", "check the disk and export again"
            )
        written.append(dest)
        lock["images"][image.key] = images.recorded(image)
    lock_path = root / LOCK_FILE_NAME
    lock_path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    written.append(lock_path)
    return written


def read_export_lock(root: Path) -> dict[str, Any]:
    """The export's lock file (empty sections when there is none)."""
    path = root / LOCK_FILE_NAME
    if not path.is_file():
        return {"artifacts": {}, "images": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"cannot read {path}: {exc}", "export again, or remove it to import by pins only"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a lock file", "export again")
    sections: dict[str, Any] = {}
    for key in ("artifacts", "images"):
        value = data.get(key)
        sections[key] = value if isinstance(value, dict) else {}
    return sections


def import_all(
    directory: Path | str, catalog: Catalog | None = None, *, warn: WarnFn | None = None
) -> list[ImportResult]:
    """Import binaries (by file name) and image archives (by the reference they carry) from ``directory``,
    each verified; see the module doc."""
    warn = warn or log.warning
    root = Path(directory)
    if not root.is_dir():
        raise UsageError(
            f"{root} is not a directory", "give the directory holding the downloaded or exported files"
        )
    cat = catalog or active_catalog()
    exported = read_export_lock(root)
    results, archives = import_image_archives(root, cat, exported["images"], warn)
    results += import_dir(root, cat, warn=warn, exported=exported["artifacts"], skip=archives)
    return results


__all__ = ["IMAGES_DIR", "export_dir", "import_all", "read_export_lock"]
