"""What install steps upload: the cached download itself, or members of a cached tarball, extracted once to
``<cache>/<name>/<version>/members/<member>`` (atomically, and again whenever the archive changes)."""

from __future__ import annotations

import contextlib
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from labkit.artifacts.catalog import Artifact, normalize_member
from labkit.artifacts.files import CHUNK, changed_error, file_sha256, replacing, write_atomic
from labkit.artifacts.inventory import MissingArtifactsError
from labkit.artifacts.store import cache_dir, cache_path, cached_path, expected_sha256
from labkit.errors import HostError, UsageError


def _require_cached(artifact: Artifact) -> Path:
    path = cached_path(artifact)
    if path is None:
        on_disk, expected = cache_path(artifact), expected_sha256(artifact)
        if expected is not None and on_disk.is_file():
            raise changed_error(str(artifact), on_disk, file_sha256(on_disk), expected)
        raise MissingArtifactsError([artifact])
    return path


def _find_member(archive: tarfile.TarFile, member: str) -> tarfile.TarInfo:
    for info in archive.getmembers():
        try:
            name = normalize_member(info.name)
        except ValueError:
            continue
        if name == member:
            return info
    sample = ", ".join(sorted(normalize_member(i.name) for i in archive.getmembers() if i.isfile())[:12])
    raise HostError(f"the archive has no member {member!r}", f"its files include: {sample}")


def _unpack(artifact: Artifact, source: Path, name: str, out: Path) -> None:
    """Write member ``name`` of the tarball ``source`` to ``out``, executable when it is in the archive."""
    try:
        with tarfile.open(source, "r:*") as archive:
            info = _find_member(archive, name)
            handle: IO[bytes] | None = archive.extractfile(info)
            if handle is None:
                raise HostError(f"{artifact}: member {name!r} is not a file", "check the catalog's member")
            mode = 0o755 if info.mode & 0o111 else 0o644
            with replacing(out, mode=mode) as tmp, tmp.open("wb") as target, handle:
                shutil.copyfileobj(handle, target, CHUNK)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise HostError(
            f"{artifact}: cannot read {name!r} from {source}: {exc}",
            f"delete {source} and fetch or import it again",
        ) from None


def extract(artifact: Artifact, member: str | None = None) -> Path:
    """A local file holding ``member`` of the cached artifact (the download itself for unpack: none).

    Tar members are extracted once to ``<cache>/<name>/<version>/members/<member>`` (atomically); their
    sha256 is available from :func:`member_sha256`.
    """
    source = _require_cached(artifact)
    if artifact.unpack == "none":
        if member not in (None, artifact.filename):
            raise UsageError(f"{artifact} is a single file; it has no member {member!r}")
        return source
    if member is None:
        raise UsageError(
            f"{artifact} is an archive: name a member", f"members: {', '.join(artifact.members)}"
        )
    name = normalize_member(member)
    out = cache_dir(artifact) / "members" / name
    archive_sha = file_sha256(source)
    marker = out.with_name(f".{out.name}.from")
    with contextlib.suppress(OSError):
        if out.is_file() and marker.read_text().strip() == archive_sha:
            return out
    out.parent.mkdir(parents=True, exist_ok=True)
    _unpack(artifact, source, name, out)
    write_atomic(marker, archive_sha.encode())
    return out


def member_sha256(artifact: Artifact, member: str | None = None) -> str:
    """sha256 of an extracted member (or of the download for unpack: none)."""
    return file_sha256(extract(artifact, member))


def member_bytes(artifact: Artifact, member: str | None = None) -> bytes:
    return extract(artifact, member).read_bytes()


@dataclass(frozen=True)
class InstallSource:
    """One file ready for an install step: upload ``local`` to ``path`` with ``mode``; skip if sha256 matches."""

    artifact: str
    member: str | None
    local: Path
    path: str
    mode: int
    sha256: str


def install_sources(artifact: Artifact) -> list[InstallSource]:
    """Every file the artifact installs, extracted and hashed (MissingArtifactsError if not cached)."""
    sources = []
    for item in artifact.install:
        local = extract(artifact, item.member)
        sources.append(
            InstallSource(str(artifact), item.member, local, item.path, item.mode, file_sha256(local))
        )
    return sources
