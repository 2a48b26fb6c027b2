"""Filling the host cache from a directory, each file verified the same way as a download: binaries matched to
the catalog by file name (files of several versions of one name go in directories named after the version), image
archives by the reference they are tagged with. Checksum files lying next to them are ignored: they are no pin.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from labkit.artifacts import images
from labkit.artifacts.catalog import Artifact, Catalog, CatalogLike, as_catalog
from labkit.artifacts.files import CHUNK, copy_file, file_sha256, hash_file, replacing, stamp
from labkit.artifacts.lockfile import LOCK_FILE_NAME, WarnFn
from labkit.artifacts.store import (
    cache_path,
    cached_path,
    expected_sha256,
    first_use_warning,
    mismatch,
    record,
    record_verified_by_sha512,
    sha256_source,
)
from labkit.errors import HostError, UsageError
from labkit.model.image_refs import Image, ImageRefError, read_archive, same_image

log = logging.getLogger("labkit.artifacts")

ImportStatus = Literal["imported", "cached", "refused", "ignored"]


@dataclass(frozen=True)
class ImportResult:
    """What an import did with one file."""

    file: Path
    status: ImportStatus
    artifact: str | None  # "name version"
    sha256: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "status": self.status,
            "artifact": self.artifact,
            "sha256": self.sha256,
            "message": self.message,
        }


# ---- binaries -----------------------------------------------------------------------------------------------


def _is_checksum_file(path: Path) -> bool:
    name = path.name
    return name.endswith((".sha256", ".sha256sum")) or name.upper().startswith(("SHA256SUMS", "SHA256SUM"))


def _copy_into_cache(src: Path, artifact: Artifact, sha256: str) -> None:
    """Copy ``src`` into the cache, hashing the bytes copied: a file that changed since it was verified is refused."""
    dest = cache_path(artifact)
    with replacing(dest) as tmp:
        digest = hashlib.sha256()
        with tmp.open("wb") as out, src.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise mismatch(artifact, sha256, digest.hexdigest(), f"{src} (changed while importing)")
    stamp(dest, sha256)


def _names_version(text: str, version: str) -> bool:
    """``v1.19.7``, ``kubernetes-1.19.7`` name 1.19.7; ``1.19.70`` and ``11.19.7`` do not."""
    return re.search(rf"(?<![\d.]){re.escape(version)}(?![\d.])", text) is not None


def _import_unknown(
    path: Path, artifact: Artifact, got: str, published: str | None, warn: WarnFn
) -> ImportResult:
    """Import a file of an artifact whose sha256 this host does not know yet: verified by the pinned sha512, else
    taken as the export's lock recorded it, else recorded at first import (none published)."""
    if artifact.sha512:
        try:
            record_verified_by_sha512(artifact, path, got, f"import of {path}")
        except HostError as refused:
            return ImportResult(path, "refused", str(artifact), got, str(refused))
        _copy_into_cache(path, artifact, got)
        return ImportResult(path, "imported", str(artifact), got, "verified against the pinned sha512")
    if published is not None:
        # a first-use artifact whose value another host recorded: the export's lock entry
        if published != got:
            error = mismatch(artifact, published, got, f"{path} (the export's lock)")
            return ImportResult(path, "refused", str(artifact), got, str(error))
        _copy_into_cache(path, artifact, got)
        how = f"import of {path}, as recorded in the export's lock"
        record(artifact, got, how)
        warn(first_use_warning(artifact, got, how))
        return ImportResult(path, "imported", str(artifact), got, "as recorded in the export's lock")
    _copy_into_cache(path, artifact, got)
    how = f"first import of {path}"
    record(artifact, got, how)
    warn(first_use_warning(artifact, got, how))
    return ImportResult(path, "imported", str(artifact), got, "recorded at first import (none published)")


def _import_one(
    path: Path, rel: Path, candidates: list[Artifact], published: str | None, warn: WarnFn
) -> ImportResult:
    in_version_dir = [
        a for a in candidates if any(_names_version(part, a.version) for part in rel.parent.parts)
    ]
    if in_version_dir:
        candidates = in_version_dir
    got = hash_file(path)
    expectations = {a.key: expected_sha256(a) for a in candidates}
    matching = [a for a in candidates if expectations[a.key] == got]
    if matching:
        artifact = matching[0]
        if cached_path(artifact) is not None:
            return ImportResult(path, "cached", str(artifact), got, "already in the cache")
        _copy_into_cache(path, artifact, got)
        return ImportResult(path, "imported", str(artifact), got, f"verified ({sha256_source(artifact)})")
    unknown = [a for a in candidates if expectations[a.key] is None]
    if len(unknown) > 1:
        names = ", ".join(str(a) for a in unknown)
        return ImportResult(
            path,
            "refused",
            None,
            got,
            f"matches several versions ({names}): put it in a directory named after its version",
        )
    if len(unknown) == 1:
        return _import_unknown(path, unknown[0], got, published, warn)
    artifact = candidates[0]
    expected = expectations[artifact.key]
    assert expected is not None
    error = mismatch(artifact, expected, got, str(path))
    return ImportResult(path, "refused", str(artifact), got, f"{error.message} ({error.hint})")


def _exported_checksums(root: Path, files: list[Path], exported: dict[str, Any]) -> dict[Path, str]:
    """sha256 values an export's lock file gives the files laid out as ``<name>/<version>/<filename>``."""
    found: dict[Path, str] = {}
    for path in files:
        rel = path.relative_to(root).parts
        if len(rel) < 3:
            continue
        entry = exported.get(f"{rel[-3]}/{rel[-2]}")
        if isinstance(entry, dict) and entry.get("filename") == path.name and entry.get("sha256"):
            found[path] = str(entry["sha256"]).lower()
    return found


def _files_to_import(root: Path, skip: Collection[Path]) -> list[Path]:
    """Every file under ``root`` but hidden ones, those in ``skip`` and the export's lock file, sorted."""
    skipped = {Path(p) for p in skip}
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p not in skipped and p != root / LOCK_FILE_NAME
    )


def import_dir(
    directory: Path | str,
    catalog: CatalogLike = None,
    *,
    warn: WarnFn | None = None,
    exported: dict[str, Any] | None = None,
    skip: Collection[Path] = (),
) -> list[ImportResult]:
    """Fill the cache from a directory of downloaded files (searched recursively), verifying each one.

    Files are matched to catalog entries by file name. A file whose sha256 differs from the expected one
    is refused (status ``refused``, nothing cached); files the catalog does not know are ``ignored``.
    Checksum files (``NAME.sha256``, ``SHA256SUMS``) are ignored: they are no pin. ``exported`` (the
    ``artifacts`` section of the lock file ``labkit artifacts export`` writes) gives first-use artifacts the value
    the exporting host recorded. Files in ``skip`` (container
    images, imported by :func:`import_image_archives`) and the export's lock file are left out.
    """
    warn = warn or log.warning
    root = Path(directory)
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory", "give the directory holding the downloaded files")
    cat = as_catalog(catalog)
    files = _files_to_import(root, skip)
    checksums = _exported_checksums(root, files, exported or {})
    by_name: dict[str, list[Artifact]] = {}
    for artifact in cat.artifacts:
        by_name.setdefault(artifact.filename, []).append(artifact)
    results: list[ImportResult] = []
    for path in files:
        if _is_checksum_file(path):
            results.append(ImportResult(path, "ignored", None, None, "a checksum file is no pin: not used"))
            continue
        candidates = by_name.get(path.name)
        if not candidates:
            results.append(ImportResult(path, "ignored", None, None, "not in the artifact catalog"))
            continue
        try:
            results.append(_import_one(path, path.relative_to(root), candidates, checksums.get(path), warn))
        except HostError as exc:
            results.append(ImportResult(path, "refused", None, None, str(exc)))
        except OSError as exc:
            results.append(ImportResult(path, "refused", None, None, f"cannot read or copy it: {exc}"))
    return results


# ---- image archives -----------------------------------------------------------------------------------------


def _find_image(catalog: Catalog, tags: tuple[str, ...]) -> Image | None:
    for image in catalog.images:
        if any(same_image(tag, image.reference) for tag in tags):
            return image
    return None


def _export_entry_refusal(image: Image, entry: Any) -> str | None:
    """Why the export's lock entry for ``image`` cannot vouch for its archive here, or None when it can."""
    if not isinstance(entry, dict) or not entry.get("digest") or not entry.get("archive_sha256"):
        return (
            f"cannot verify: no entry for {image.key} in the export's {LOCK_FILE_NAME}; export it with "
            "`labkit artifacts export` (which writes that file) or fetch it"
        )
    digest = str(entry["digest"])
    if image.digest and digest != image.digest:
        return f"exported for digest {digest}, the catalog pins {image.digest}"
    local = images.recorded(image)
    if not image.digest and local and local.get("digest") not in (None, digest):
        return f"exported for digest {digest}, this host recorded {local['digest']}"
    return None


def _import_image(path: Path, image: Image, entry: Any, warn: WarnFn) -> ImportResult:
    label = f"image {image.reference}"
    held = images.cached(image)
    if held is not None and file_sha256(path) == held.sha256:
        return ImportResult(path, "cached", label, held.sha256, "already in the cache")
    refusal = _export_entry_refusal(image, entry)
    if refusal is not None:
        return ImportResult(path, "refused", label, None, refusal)
    got = file_sha256(path)
    if got != entry["archive_sha256"]:
        message = f"sha256 {got}, the export recorded {entry['archive_sha256']}: corrupted or replaced"
        return ImportResult(path, "refused", label, got, message)
    try:
        info = read_archive(path)
    except ImageRefError as exc:
        return ImportResult(path, "refused", label, got, str(exc))
    if info.image_id != entry.get("image_id"):
        message = f"image ID {info.image_id}, the export recorded {entry.get('image_id')}"
        return ImportResult(path, "refused", label, got, message)
    dest = images.cache_path(image)
    copy_file(path, dest)
    if file_sha256(dest) != got:
        dest.unlink()
        return ImportResult(path, "refused", label, got, "changed while importing")
    digest = str(entry["digest"])
    how = f"import of {path} (exported: {entry.get('how', '?')})"
    images.record(image, digest, got, info.image_id, how)
    if not image.digest:
        warn(f"image {image}: no public digest is pinned; recorded {digest} from the export ({how})")
    return ImportResult(
        path, "imported", label, got, f"verified (digest {digest}, sha256 and image ID as exported)"
    )


def import_image_archives(
    root: Path, catalog: Catalog, exported: dict[str, Any], warn: WarnFn
) -> tuple[list[ImportResult], list[Path]]:
    """Import every docker-archive under ``root`` whose tag the catalog knows, verified by ``exported`` (the
    ``images`` section of the export's lock file); the results, and every docker-archive found."""
    results: list[ImportResult] = []
    archives: list[Path] = []
    for path in sorted(p for p in root.rglob("*.tar") if p.is_file() and not p.name.startswith(".")):
        try:
            info = read_archive(path)
        except ImageRefError:
            continue  # not a docker-archive: maybe a binary download
        archives.append(path)
        image = _find_image(catalog, info.repo_tags)
        if image is None:
            tags = ", ".join(info.repo_tags) or "no tag"
            results.append(ImportResult(path, "ignored", None, None, f"image {tags} is not in the catalog"))
            continue
        try:
            results.append(_import_image(path, image, exported.get(image.key), warn))
        except (HostError, OSError) as exc:
            results.append(ImportResult(path, "refused", f"image {image.reference}", None, str(exc)))
    return results, archives
