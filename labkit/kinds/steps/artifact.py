"""``artifact``: upload a catalog artifact's files from the host cache, skipped per file when the node's
sha256 already matches. Path and mode come from the catalog; ``member`` picks one file of an archive.
Without ``version`` the artifact's version is the scenario's for its component (``versions.cni_plugins``...)."""

from __future__ import annotations

from typing import ClassVar

from labkit.artifacts import Catalog, InstallSource, install_sources, load_catalog
from labkit.errors import UsageError
from labkit.kinds.steps.base import (
    ArgsModel,
    Change,
    Conn,
    FileAttrs,
    Result,
    StepContext,
    StepKind,
    attribute_changes,
    remote_files,
)
from labkit.kinds.steps.file import apply_file


class ArtifactArgs(ArgsModel):
    name: str
    version: str | None = None
    member: str | None = None


class ArtifactStep(StepKind):
    kind: ClassVar[str] = "artifact"
    args_model = ArtifactArgs
    args: ArtifactArgs

    def sources(self, ctx: StepContext) -> list[InstallSource]:
        """The files to install (extracted and hashed on the host); MissingArtifactsError when not cached."""
        catalog = ctx.catalog or load_catalog()
        artifact = catalog.get(self.args.name, self.args.version or self._scenario_version(catalog, ctx))
        found = install_sources(artifact)
        if self.args.member is not None:
            found = [s for s in found if s.member == self.args.member]
            if not found:
                raise UsageError(
                    f"{artifact} installs no member {self.args.member!r}",
                    f"members: {', '.join(artifact.members) or 'none (single file)'}",
                )
        return found

    def _scenario_version(self, catalog: Catalog, ctx: StepContext) -> str | None:
        """The version the scenario's ``versions:`` gives the artifact's component (e.g. cni_plugins)."""
        components = {a.component for a in catalog.artifacts if a.name == self.args.name}
        if len(components) != 1:
            return None
        version = (ctx.vars.get("versions") or {}).get(components.pop())
        return str(version) if version else None

    def preflight(self, ctx: StepContext) -> None:
        self.sources(ctx)

    def plan(self, conn: Conn, ctx: StepContext) -> Change:
        summaries = []
        sources = self.sources(ctx)
        states = remote_files(conn, [s.path for s in sources])
        for source in sources:
            current = states[source.path]
            if not current.exists or current.sha256 != source.sha256:
                summaries.append(f"upload {source.local.name} -> {source.path} ({source.mode:04o})")
            else:
                summaries += [
                    f"{source.path}: {c}" for c in attribute_changes(current, "root", "root", source.mode)
                ]
        return self.change(ctx, summaries)

    def apply(self, conn: Conn, ctx: StepContext) -> Result:
        done = []
        sources = self.sources(ctx)
        states = remote_files(conn, [s.path for s in sources])
        for source in sources:
            attrs = FileAttrs(mode=source.mode)
            done += apply_file(
                conn, source.path, source.local, attrs, sha256=source.sha256, current=states[source.path]
            )
        return self.result(ctx, bool(done), "; ".join(done))
