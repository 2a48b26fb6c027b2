"""Which artifacts the host cache holds, verified: the listing for `labkit artifacts list`, and the error that
names everything missing (binaries and images) and how to provide it, raised before any node is touched."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.artifacts.catalog import Artifact, CatalogLike, artifacts_for
from labkit.artifacts.mirror import MIRROR_ENV
from labkit.artifacts.store import cached_path, expected_sha256, sha256_source
from labkit.errors import HostError
from labkit.model.image_refs import Image
from labkit.model.scenario import Versions


def missing_artifacts(versions: Versions, catalog: CatalogLike = None) -> list[Artifact]:
    """The artifacts these versions need that are not in the host cache (verified)."""
    return [a for a in artifacts_for(versions, catalog) if cached_path(a) is None]


def describe_missing(
    artifacts: list[Artifact], scenario: str | None = None, images: list[Image] | None = None
) -> tuple[str, str]:
    """(message, hint) naming each missing artifact and image and how to provide them."""
    parts = []
    if artifacts:
        names = ", ".join(f"{a} ({a.url})" for a in artifacts)
        parts.append(f"missing artifact{'s' if len(artifacts) != 1 else ''}: {names}")
    if images:
        names = ", ".join(f"{i.reference}@{i.digest or 'digest recorded at first pull'}" for i in images)
        parts.append(f"missing image{'s' if len(images) != 1 else ''}: {names}")
    target = f" {scenario}" if scenario else ""
    hint = (
        f"run `labkit artifacts fetch{target}` (behind a proxy add --mirror URL or set {MIRROR_ENV}), "
        f"or on a host that has them `labkit artifacts export{target or ' SCENARIO'} DIR` and here "
        "`labkit artifacts import DIR`"
    )
    return "; ".join(parts) or "nothing missing", hint


class MissingArtifactsError(HostError):
    """Raised before touching any VM when a stage needs an artifact or image the host cache lacks."""

    def __init__(
        self, artifacts: list[Artifact], scenario: str | None = None, images: list[Image] | None = None
    ) -> None:
        self.artifacts = artifacts
        self.images = list(images or [])
        message, hint = describe_missing(artifacts, scenario, self.images)
        super().__init__(message, hint)


def require_artifacts(
    versions: Versions, catalog: CatalogLike = None, scenario: str | None = None
) -> list[Artifact]:
    """All artifacts these versions need, or MissingArtifactsError naming the absent ones."""
    needed = artifacts_for(versions, catalog)
    missing = [a for a in needed if cached_path(a) is None]
    if missing:
        raise MissingArtifactsError(missing, scenario)
    return needed


@dataclass(frozen=True)
class ArtifactStatus:
    artifact: Artifact
    cached: Path | None
    sha256: str | None
    source: str

    def to_json(self) -> dict[str, Any]:
        a = self.artifact
        return {
            "name": a.name,
            "version": a.version,
            "component": a.component,
            "url": a.url,
            "filename": a.filename,
            "cached": self.cached is not None,
            "path": str(self.cached) if self.cached else None,
            "sha256": self.sha256,
            "sha256_source": self.source,
            "install": [{"member": i.member, "path": i.path, "mode": f"{i.mode:04o}"} for i in a.install],
        }


def status(artifacts: list[Artifact]) -> list[ArtifactStatus]:
    return [ArtifactStatus(a, cached_path(a), expected_sha256(a), sha256_source(a)) for a in artifacts]
