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
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from labkit import artifacts
from labkit.artifacts import (
    LOCK_FILE_NAME,
    Artifact,
    Catalog,
    ImportResult,
    MissingArtifactsError,
    WarnFn,
    file_sha256,
    images,
)
from labkit.errors import HostError, UsageError
from labkit.model.image_refs import Image, ImageRefError, read_archive, same_image

log = logging.getLogger("labkit.artifacts.offline")

IMAGES_DIR = "images"


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _artifact_entry(artifact: Artifact) -> dict[str, Any]:
    entry = artifacts.recorded(artifact)
    if entry is not None:
        return entry
    return {"filename": artifact.filename, "sha256": artifact.sha256, "url": artifact.url, "how": "pinned"}


def export_dir(
    selected: list[Artifact], chosen: list[Image], directory: Path | str, scenario: str | None = None
) -> list[Path]:
    """Copy the verified cached files of ``selected`` and ``chosen`` into ``directory`` with a lock file of
    their entries; MissingArtifactsError naming everything not cached (nothing is written then)."""
    root = Path(directory)
    missing = [a for a in selected if artifacts.cached_path(a) is None]
    missing_images = images.missing(chosen)
    if missing or missing_images:
        raise MissingArtifactsError(missing, scenario, images=missing_images)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is not a directory", "give a directory to write the export to")
    written: list[Path] = []
    lock: dict[str, Any] = {"version": 1, "artifacts": {}, "images": {}}
    for artifact in selected:
        source = artifacts.cached_path(artifact)
        assert source is not None
        dest = root / artifact.name / artifact.version / artifact.filename
        _copy(source, dest)
        written.append(dest)
        lock["artifacts"][artifact.key] = _artifact_entry(artifact)
    for image in chosen:
        held = images.require(image, scenario)
        dest = root / IMAGES_DIR / image.name / image.ref.tag / held.path.name
        _copy(held.path, dest)
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


def _find_image(catalog: Catalog, tags: tuple[str, ...]) -> Image | None:
    for image in catalog.images:
        if any(same_image(tag, image.reference) for tag in tags):
            return image
    return None


def _import_image(path: Path, image: Image, entry: Any, warn: WarnFn) -> ImportResult:
    label = f"image {image.reference}"
    local = images.recorded(image)
    if images.cached(image) is not None:
        held = images.cached(image)
        assert held is not None
        if file_sha256(path) == held.sha256:
            return ImportResult(path, "cached", label, held.sha256, "already in the cache")
    if not isinstance(entry, dict) or not entry.get("digest") or not entry.get("archive_sha256"):
        return ImportResult(
            path,
            "refused",
            label,
            None,
            f"cannot verify: no entry for {image.key} in the export's {LOCK_FILE_NAME}; export it with "
            "`labkit artifacts export` (which writes that file) or fetch it",
        )
    digest = str(entry["digest"])
    if image.digest and digest != image.digest:
        return ImportResult(
            path, "refused", label, None, f"exported for digest {digest}, the catalog pins {image.digest}"
        )
    if not image.digest and local and local.get("digest") not in (None, digest):
        return ImportResult(
            path,
            "refused",
            label,
            None,
            f"exported for digest {digest}, this host recorded {local['digest']}",
        )
    got = file_sha256(path)
    if got != entry["archive_sha256"]:
        return ImportResult(
            path,
            "refused",
            label,
            got,
            f"sha256 {got}, the export recorded {entry['archive_sha256']}: corrupted or replaced",
        )
    try:
        info = read_archive(path)
    except ImageRefError as exc:
        return ImportResult(path, "refused", label, got, str(exc))
    if info.image_id != entry.get("image_id"):
        return ImportResult(
            path,
            "refused",
            label,
            got,
            f"image ID {info.image_id}, the export recorded {entry.get('image_id')}",
        )
    dest = images.cache_path(image)
    _copy(path, dest)
    if file_sha256(dest) != got:
        dest.unlink()
        return ImportResult(path, "refused", label, got, "changed while importing")
    how = f"import of {path} (exported: {entry.get('how', '?')})"
    images.record(image, digest, got, info.image_id, how)
    if not image.digest:
        warn(f"image {image}: no public digest is pinned; recorded {digest} from the export ({how})")
    return ImportResult(
        path, "imported", label, got, f"verified (digest {digest}, sha256 and image ID as exported)"
    )


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
    cat = catalog or artifacts.active_catalog()
    exported = read_export_lock(root)
    results: list[ImportResult] = []
    image_files: list[Path] = []
    for path in sorted(p for p in root.rglob("*.tar") if p.is_file() and not p.name.startswith(".")):
        try:
            info = read_archive(path)
        except ImageRefError:
            continue  # not a docker-archive: maybe a binary download
        image_files.append(path)
        image = _find_image(cat, info.repo_tags)
        if image is None:
            tags = ", ".join(info.repo_tags) or "no tag"
            results.append(ImportResult(path, "ignored", None, None, f"image {tags} is not in the catalog"))
            continue
        try:
            results.append(_import_image(path, image, exported["images"].get(image.key), warn))
        except (HostError, OSError) as exc:
            results.append(ImportResult(path, "refused", f"image {image.reference}", None, str(exc)))
    results += artifacts.import_dir(root, cat, warn=warn, exported=exported["artifacts"], skip=image_files)
    return results


__all__ = ["IMAGES_DIR", "export_dir", "import_all", "read_export_lock"]
