"""Container images in the host cache: pulled by digest with Debian's ``skopeo`` into a ``docker-archive`` that
``kind: image`` steps upload and ``docker load`` on the nodes. A lab never pulls inside a guest.

An image is cached once per host at ``artifact_cache_dir()/images/<name>/<tag>/<name>-<tag>.tar``, tagged with
the catalog's reference (the name pods and kubelet use). Trust, in order:

- **pinned digest** (the catalog's ``digest``, from a public source it cites): skopeo pulls
  ``REGISTRY/REPO@DIGEST`` and refuses a manifest (or manifest list) whose sha256 differs;
- **first pull** (no public pin): labkit reads the manifest the tag names, pulls by its digest, records that
  digest in the lock file with a warning, and refuses any later pull or import that differs.

Either way the archive's own sha256 and its image ID (the sha256 of its config) are recorded in the lock file
(``labkit_home()/artifacts.lock.json``, section ``images``) at fetch or import, and checked before every use:
a cached archive that changed is refused, naming both sha256 values, before any node is touched.

The mirror (``--mirror``/``LABKIT_MIRROR``/scenario's ``mirror:``) maps registries as described in
:mod:`labkit.model.image_refs`.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit import paths
from labkit.artifacts.files import changed_error, file_sha256, holds, replacing
from labkit.artifacts.inventory import MissingArtifactsError
from labkit.artifacts.lockfile import IMAGES, WarnFn, lock_file
from labkit.artifacts.mirror import resolve_mirror
from labkit.errors import HostError, UsageError
from labkit.model.image_refs import (
    ArchiveInfo,
    Image,
    ImageRefError,
    Source,
    pull_source,
    read_archive,
    same_image,
)

log = logging.getLogger("labkit.artifacts.images")

SKOPEO = "skopeo"
PLATFORM = ("linux", "amd64")
"""The lab VMs' platform: the instance skopeo picks from a manifest list."""
TIMEOUT_SECONDS = 1800


# ---- cache and lock -----------------------------------------------------------------------------------------


def cache_path(image: Image) -> Path:
    """Where the image's docker-archive lives once fetched (whether or not it is there)."""
    tag = image.ref.tag
    return paths.artifact_cache_dir() / "images" / image.name / tag / f"{image.name}-{tag}.tar"


def recorded(image: Image) -> dict[str, Any] | None:
    """The lock file's entry for the image (digest, archive_sha256, image_id, how, recorded), if any."""
    return IMAGES.recorded(image.key)


def expected_digest(image: Image) -> str | None:
    """The pin, else the digest recorded at first pull, else None."""
    return IMAGES.expected(image.key, image.digest)


def digest_source(image: Image) -> str:
    pinned = f"pinned: {image.source}" if image.digest else None
    return IMAGES.source(image.key, pinned, "no public pin: recorded at first pull (trust on first use)")


def record(image: Image, digest: str, archive_sha256: str, image_id: str, how: str) -> None:
    """Write the image's lock entry; refuses a digest that differs from one recorded before."""
    entry = {
        "reference": image.reference,
        "digest": digest,
        "archive_sha256": archive_sha256,
        "image_id": image_id,
        "how": how,
    }

    def conflict(before: str) -> HostError:
        return HostError(
            f"image {image}: digest {digest} differs from {before} recorded in {lock_file()}; refused",
            "if upstream really moved the tag, delete that entry and fetch again",
        )

    IMAGES.record(image.key, entry, conflict)


@dataclass(frozen=True)
class CachedImage:
    """A verified cached archive: upload ``path`` and ``docker load`` it where ``image_id`` is absent."""

    image: Image
    path: Path
    sha256: str
    image_id: str


def _check_entry(image: Image, entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if entry is None or not entry.get("archive_sha256") or not entry.get("image_id"):
        return None
    if image.digest and entry.get("digest") != image.digest:
        return None  # recorded for another digest (the catalog's pin changed): fetch again
    return entry


def cached(image: Image) -> CachedImage | None:
    """The cached archive when it is there and is what the lock file recorded; None otherwise."""
    path = cache_path(image)
    entry = _check_entry(image, recorded(image))
    if entry is None or not holds(path, str(entry["archive_sha256"])):
        return None
    return CachedImage(image, path, str(entry["archive_sha256"]), str(entry["image_id"]))


def require(image: Image, scenario: str | None = None) -> CachedImage:
    """The verified cached archive, or an error before any node is touched: MissingArtifactsError when it was
    never fetched, HostError naming both sha256 values when the cached file changed."""
    path = cache_path(image)
    entry = _check_entry(image, recorded(image))
    if entry is None or not path.is_file():
        raise MissingArtifactsError([], scenario, images=[image])
    got = file_sha256(path)
    if got != entry["archive_sha256"]:
        raise changed_error(
            f"image {image}", path, got, entry["archive_sha256"], f" (recorded in {lock_file()})"
        )
    return CachedImage(image, path, got, str(entry["image_id"]))


# ---- skopeo -------------------------------------------------------------------------------------------------


def _skopeo(args: list[str], what: str, hint: str) -> subprocess.CompletedProcess[bytes]:
    if shutil.which(SKOPEO) is None:
        raise HostError(f"{what}: skopeo is not installed", "apt-get install -y skopeo")
    command = [SKOPEO, "--override-os", PLATFORM[0], "--override-arch", PLATFORM[1], *args]
    try:
        done = subprocess.run(command, capture_output=True, timeout=TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise HostError(f"{what}: skopeo did not finish in {TIMEOUT_SECONDS} s", hint) from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise HostError(f"{what} failed: {lines[-1] if lines else f'exit {done.returncode}'}", hint)
    return done


def _hint(image: Image, mirror: str | None, source: str) -> str:
    where = (
        f"the mirror must serve {source.removeprefix('docker://')}; "
        if mirror
        else "check the network or proxy, or set --mirror / LABKIT_MIRROR; "
    )
    return f"{where}or export the images on a host that has them and run `labkit artifacts import DIR`"


def _tls(source_tls: bool) -> list[str]:
    return [] if source_tls else ["--src-tls-verify=false"]


def _first_use_digest(image: Image, mirror: str | None) -> str:
    """The digest the tag names now (sha256 of its raw manifest or manifest list)."""
    source = pull_source(image.ref, None, mirror)
    args = [
        "inspect",
        "--raw",
        *(["--tls-verify=false"] if not source.tls_verify else []),
        source.transport_ref,
    ]
    done = _skopeo(args, f"reading the manifest of {image}", _hint(image, mirror, source.transport_ref))
    return "sha256:" + hashlib.sha256(done.stdout).hexdigest()


def fetch(image: Image, mirror: str | None = None, *, warn: WarnFn | None = None) -> CachedImage:
    """Make ``image`` present in the host cache, pulled by digest and verified; returns it.

    ``mirror``: a base URL (see :mod:`labkit.model.image_refs`); None means ``$LABKIT_MIRROR``, ``""`` upstream. A
    digest recorded at first pull is reported to ``warn`` (default: the ``labkit.artifacts.images`` logger).
    """
    warn = warn or log.warning
    found = cached(image)
    if found is not None:
        return found
    base = resolve_mirror(mirror)
    digest = expected_digest(image)
    first_use = digest is None
    if digest is None:
        digest = _first_use_digest(image, base)
    try:
        source = pull_source(image.ref, digest, base)
    except ImageRefError as exc:
        raise UsageError(str(exc), "give an http:// or https:// mirror, or import the images") from None
    dest = cache_path(image)
    info = _pull(image, source, base, dest)
    archive_sha = file_sha256(dest)
    how = f"{'first pull' if first_use else 'pull by digest'} from {source.transport_ref}"
    record(image, digest, archive_sha, info.image_id, how)
    if first_use:
        warn(
            f"image {image}: no public digest is pinned; recorded {digest} ({how}) in {lock_file()}. "
            "Compare it with a trusted source; a later pull or import that differs is refused."
        )
    return CachedImage(image, dest, archive_sha, info.image_id)


def _pull(image: Image, source: Source, mirror: str | None, dest: Path) -> ArchiveInfo:
    """Copy the image with skopeo into a docker-archive at ``dest`` tagged with its reference; its tags and ID."""
    with replacing(dest) as tmp:
        tmp.unlink()  # skopeo creates the archive itself
        _skopeo(
            [
                "copy",
                "--quiet",
                "--retry-times",
                "2",
                *_tls(source.tls_verify),
                source.transport_ref,
                f"docker-archive:{tmp}:{image.reference}",
            ],
            f"pulling {image} ({source.transport_ref})",
            _hint(image, mirror, source.transport_ref),
        )
        return _archive_info(image, tmp)


def _archive_info(image: Image, path: Path) -> ArchiveInfo:
    """The archive's tags and image ID; HostError unless it carries the image's reference."""
    try:
        info = read_archive(path)
    except ImageRefError as exc:
        raise HostError(f"image {image}: {exc}", "fetch it again") from None
    if not any(same_image(tag, image.reference) for tag in info.repo_tags):
        raise HostError(
            f"image {image}: the archive {path} is tagged {', '.join(info.repo_tags) or 'with nothing'}, "
            f"not {image.reference}",
            "fetch it again with `labkit artifacts fetch`",
        )
    return info


# ---- what a scenario needs ----------------------------------------------------------------------------------


def missing(images: list[Image]) -> list[Image]:
    return [i for i in images if cached(i) is None]


@dataclass(frozen=True)
class ImageStatus:
    image: Image
    cached: CachedImage | None
    digest: str | None
    source: str

    def to_json(self) -> dict[str, Any]:
        entry = recorded(self.image) or {}
        return {
            "name": self.image.name,
            "reference": self.image.reference,
            "digest": self.digest,
            "digest_source": self.source,
            "cached": self.cached is not None,
            "path": str(self.cached.path) if self.cached else None,
            "archive_sha256": entry.get("archive_sha256"),
            "image_id": entry.get("image_id"),
        }


def status(images: list[Image]) -> list[ImageStatus]:
    return [ImageStatus(i, cached(i), expected_digest(i), digest_source(i)) for i in images]


__all__ = [
    "CachedImage",
    "ImageStatus",
    "cache_path",
    "cached",
    "digest_source",
    "expected_digest",
    "fetch",
    "missing",
    "record",
    "recorded",
    "require",
    "status",
]
