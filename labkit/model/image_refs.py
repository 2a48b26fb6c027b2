"""Container image references, digests, the registry mirror mapping and docker-archive manifests: pure logic,
no I/O beyond reading an archive's ``manifest.json`` and config.

A reference is written as the course writes it (``busybox:1.28``, ``registry.k8s.io/pause:3.2``); Docker's
normalization gives its registry and repository: a first path component with a ``.`` or ``:`` (or
``localhost``) is a registry host, otherwise the image is on Docker Hub (``docker.io``), under ``library/`` when
it has a single component. So ``busybox:1.28`` is ``docker.io/library/busybox:1.28``.

**Mirror.** The artifact mirror (``--mirror``/``LABKIT_MIRROR``) serves images too, as a registry (Debian's
``docker-registry``, a pull-through cache...) reachable at the mirror's host. The upstream registry host stays
the first component of the repository, as it stays the first path segment for downloads, so one mirror serves
every upstream registry::

    registry.k8s.io/pause@sha256:927d...        (mirror http://10.0.0.1:5000)
      -> docker://10.0.0.1:5000/registry.k8s.io/pause@sha256:927d...
    busybox@sha256:141c...                      (mirror http://10.0.0.1:5000/labkit)
      -> docker://10.0.0.1:5000/labkit/docker.io/library/busybox@sha256:141c...

An ``http://`` mirror is reached without TLS (skopeo's ``--src-tls-verify=false``). Pulls are by digest, so the
mirror cannot substitute content either way.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, field_validator

DOCKER_HUB = "docker.io"
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MAX_MANIFEST_BYTES = 1 << 20


class ImageRefError(ValueError):
    """A reference, digest or archive that does not parse; the message says what is wrong."""


@dataclass(frozen=True)
class ImageRef:
    """A tagged image reference, normalized: ``registry`` / ``repository`` : ``tag``."""

    registry: str
    repository: str
    tag: str

    @property
    def name(self) -> str:
        """``registry/repository`` (what a digest is appended to)."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"

    def at(self, digest: str) -> str:
        return f"{self.name}@{check_digest(digest)}"


def check_digest(value: str) -> str:
    """``sha256:<64 hex>``, lowercase; ImageRefError otherwise."""
    text = value.strip().lower()
    if not DIGEST_RE.match(text):
        raise ImageRefError(f"{value!r} is not a digest (sha256: and 64 hex digits)")
    return text


def parse_reference(text: str) -> ImageRef:
    """``busybox:1.28`` -> docker.io/library/busybox:1.28. A tag is required; a digest is refused (the catalog
    keeps the digest in its own field)."""
    value = text.strip()
    if "@" in value:
        raise ImageRefError(f"{text!r} carries a digest: write the tag in the reference and the digest apart")
    slash = value.rfind("/")
    colon = value.rfind(":")
    if colon <= slash:
        raise ImageRefError(f"{text!r} has no tag: write it like busybox:1.28")
    path, tag = value[:colon], value[colon + 1 :]
    if not _TAG_RE.match(tag):
        raise ImageRefError(f"{text!r}: {tag!r} is not a valid tag")
    parts = path.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, components = parts[0], parts[1:]
    else:
        registry, components = DOCKER_HUB, parts
        if len(components) == 1:
            components = ["library", *components]
    if not components or not all(_COMPONENT_RE.match(c) for c in components):
        raise ImageRefError(
            f"{text!r}: {'/'.join(components)!r} is not a valid repository (lowercase, '/', '.', '_', '-')"
        )
    return ImageRef(registry, "/".join(components), tag)


def same_image(a: str, b: str) -> bool:
    """Whether two references name the same tagged image (``busybox:1.28`` == ``docker.io/library/busybox:1.28``)."""
    try:
        return parse_reference(a) == parse_reference(b)
    except ImageRefError:
        return False


class Image(BaseModel):
    """A catalog image: the reference pods use, the digest it is pulled by, and where that digest comes from.
    ``digest`` is empty when no public pin was found: the digest is then recorded at first pull (with a
    warning) in the host's lock file, as for a download with no published checksum."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="short id (pause, coredns...): the cache directory and `kind: image` args")
    reference: str = Field(
        description="tagged reference, as pods and kubelet name it; the archive carries it"
    )
    digest: str = ""
    source: str = Field(min_length=1, description="where the digest comes from")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _COMPONENT_RE.match(value):
            raise ValueError(f"{value!r} is not a valid image name (lowercase, digits, '.', '_', '-')")
        return value

    @field_validator("reference")
    @classmethod
    def _reference(cls, value: str) -> str:
        try:
            parse_reference(value)
        except ImageRefError as exc:
            raise ValueError(str(exc)) from None
        return value.strip()

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: str) -> str:
        if not value.strip():
            return ""
        try:
            return check_digest(value)
        except ImageRefError as exc:
            raise ValueError(str(exc)) from None

    @property
    def ref(self) -> ImageRef:
        return parse_reference(self.reference)

    @property
    def key(self) -> str:
        """The image's id in the lock file: its normalized reference."""
        return str(self.ref)

    @property
    def pinned(self) -> bool:
        return bool(self.digest)

    def __str__(self) -> str:
        return self.reference


# ---- mirror -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where skopeo pulls from: a ``docker://`` transport reference and whether TLS is verified."""

    transport_ref: str
    tls_verify: bool


def pull_source(ref: ImageRef, digest: str | None, mirror: str | None) -> Source:
    """``docker://REGISTRY/REPO@DIGEST`` upstream, or through the mirror (see the module doc). Without a digest
    (trust on first use) the tag is pulled."""
    suffix = f"@{check_digest(digest)}" if digest else f":{ref.tag}"
    if not mirror:
        return Source(f"docker://{ref.name}{suffix}", True)
    parts = urllib.parse.urlsplit(mirror)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ImageRefError(
            f"mirror {mirror!r} cannot serve images: a registry mirror is an http:// or https:// host"
        )
    prefix = "/".join(p for p in parts.path.split("/") if p)
    repo = "/".join(p for p in (prefix, ref.registry, ref.repository) if p)
    return Source(f"docker://{parts.netloc}/{repo}{suffix}", parts.scheme == "https")


# ---- docker-archive ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveInfo:
    """What a docker-archive (``docker save`` / skopeo ``docker-archive:``) holds: its tags and image ID."""

    repo_tags: tuple[str, ...]
    image_id: str
    """``sha256:`` of the image config: the ID ``docker image inspect`` reports once it is loaded."""
    layers: int


def parse_archive_manifest(data: bytes) -> tuple[str, tuple[str, ...], int]:
    """(config member, repo tags, layer count) of a docker-archive's ``manifest.json`` with exactly one image."""
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise ImageRefError(f"manifest.json is not JSON: {exc}") from None
    if not isinstance(manifest, list) or len(manifest) != 1 or not isinstance(manifest[0], dict):
        raise ImageRefError("manifest.json must list exactly one image")
    entry = manifest[0]
    config, tags, layers = entry.get("Config"), entry.get("RepoTags") or [], entry.get("Layers")
    if not isinstance(config, str) or not config:
        raise ImageRefError("manifest.json names no Config")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ImageRefError("manifest.json RepoTags is not a list of strings")
    if not isinstance(layers, list) or not layers:
        raise ImageRefError("manifest.json lists no Layers")
    return config, tuple(tags), len(layers)


def _member(archive: tarfile.TarFile, name: str, limit: int) -> bytes:
    wanted = str(PurePosixPath(name))
    for info in archive.getmembers():
        if str(PurePosixPath(info.name)).removeprefix("./") == wanted and info.isfile():
            if info.size > limit:
                raise ImageRefError(f"{name} is larger than {limit} bytes")
            handle = archive.extractfile(info)
            if handle is None:
                break
            with handle:
                return handle.read()
    raise ImageRefError(f"the archive has no {name}")


def read_archive(path: Path) -> ArchiveInfo:
    """Tags and image ID of a docker-archive file; ImageRefError when it is not one."""
    try:
        with tarfile.open(path, "r:*") as archive:
            config, tags, layers = parse_archive_manifest(
                _member(archive, "manifest.json", MAX_MANIFEST_BYTES)
            )
            config_bytes = _member(archive, config, MAX_MANIFEST_BYTES)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ImageRefError(f"{path} is not a readable docker-archive: {exc}") from None
    return ArchiveInfo(tags, "sha256:" + hashlib.sha256(config_bytes).hexdigest(), layers)


__all__ = [
    "ArchiveInfo",
    "Image",
    "ImageRef",
    "ImageRefError",
    "Source",
    "check_digest",
    "parse_archive_manifest",
    "parse_reference",
    "pull_source",
    "read_archive",
    "same_image",
]
