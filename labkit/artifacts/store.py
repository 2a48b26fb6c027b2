"""An artifact in the host cache: where its download lives (``artifact_cache_dir()/<name>/<version>/<filename>``)
and the sha256 it must have there, the catalog's pin or else the one recorded in the lock file on this host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labkit import paths
from labkit.artifacts.catalog import Artifact
from labkit.artifacts.files import hash_file, holds
from labkit.artifacts.lockfile import ARTIFACTS, lock_file
from labkit.errors import HostError

BAD_COPY_HINT = (
    "the file is corrupt, truncated or not the pinned release (check the mirror's copy); "
    "fetch again or import a good copy"
)


def cache_dir(artifact: Artifact) -> Path:
    return paths.artifact_cache_dir() / artifact.name / artifact.version


def cache_path(artifact: Artifact) -> Path:
    """Where the download lives once fetched (whether or not it is there)."""
    return cache_dir(artifact) / artifact.filename


def recorded(artifact: Artifact) -> dict[str, Any] | None:
    """The lock file's entry for an artifact (sha256, url, how, recorded), if any."""
    return ARTIFACTS.recorded(artifact.key)


def record(artifact: Artifact, sha256: str, how: str) -> None:
    """Write the artifact's lock entry; refuses a sha256 that differs from one recorded before."""
    entry = {"filename": artifact.filename, "sha256": sha256, "url": artifact.url, "how": how}
    ARTIFACTS.record(
        artifact.key, entry, lambda before: mismatch(artifact, before, sha256, how, recorded_entry=True)
    )


def expected_sha256(artifact: Artifact) -> str | None:
    """The pin, else the value recorded in the lock file, else None (not known yet)."""
    return ARTIFACTS.expected(artifact.key, artifact.sha256)


def sha256_source(artifact: Artifact) -> str:
    """Where the expected sha256 comes from, for `labkit artifacts list`."""
    if artifact.sha256:
        pinned: str | None = f"pinned: {artifact.source}"
    elif artifact.sha512:
        pinned = f"pinned sha512: {artifact.source}"
    else:
        pinned = None
    return ARTIFACTS.source(
        artifact.key, pinned, "none published: recorded at first download (trust on first use)"
    )


def cached_path(artifact: Artifact) -> Path | None:
    """The cached download when it is there and has the expected sha256; None otherwise."""
    path = cache_path(artifact)
    return path if holds(path, expected_sha256(artifact)) else None


def mismatch(
    artifact: Artifact, expected: str, got: str, where: str, *, recorded_entry: bool = False
) -> HostError:
    if recorded_entry or (not artifact.pinned and expected_sha256(artifact) == expected):
        hint = (
            f"{expected} was recorded on this host in {lock_file()} for {artifact.key}; if upstream really "
            "replaced the file, delete that entry and fetch again"
        )
    else:
        hint = BAD_COPY_HINT
    return HostError(
        f"{artifact}: sha256 mismatch for {where}: expected {expected}, got {got}; refused", hint
    )


def mismatch512(artifact: Artifact, got: str, where: str) -> HostError:
    return HostError(
        f"{artifact}: sha512 mismatch for {where}: expected {artifact.sha512}, got {got}; refused",
        BAD_COPY_HINT,
    )


def record_verified_by_sha512(artifact: Artifact, path: Path, sha256: str, what: str) -> None:
    """Check ``path`` against the pinned sha512 and record its sha256 for every later use."""
    got = hash_file(path, "sha512")
    if got != artifact.sha512:
        raise mismatch512(artifact, got, str(path))
    record(artifact, sha256, f"{what}, verified against the pinned sha512 ({artifact.source})")


def first_use_warning(artifact: Artifact, sha256: str, how: str) -> str:
    return (
        f"{artifact}: no checksum is published; recorded sha256 {sha256} ({how}) in {lock_file()}. "
        "Compare it with a trusted copy; a later download or import that differs is refused."
    )
