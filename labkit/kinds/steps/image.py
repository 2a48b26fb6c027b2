"""``image``: load a container image from the host cache into the node's Docker, only when the node lacks that
image ID. ``name`` is a role of the scenario's ``images:`` (``pause``, ``web``, ``client``, ``dns``) or a
reference the catalog lists. The cached docker-archive is verified on the host first (a changed archive is
refused before any node is touched); images are never pulled inside a guest.

The image ID compared is the sha256 of the archive's config (``manifest.json`` ``Config``), which is what
``docker image inspect --format '{{.Id}}' REF`` reports once loaded.
"""

from __future__ import annotations

import shlex
import uuid
from typing import ClassVar

from pydantic import Field, field_validator

from labkit.artifacts import load_catalog
from labkit.artifacts.images import CachedImage, require
from labkit.errors import UsageError
from labkit.kinds.steps.base import (
    ArgsModel,
    Change,
    Conn,
    Result,
    StepContext,
    StepFailed,
    StepKind,
    must,
    sudo,
)
from labkit.model.image_refs import Image, ImageRefError, parse_reference
from labkit.model.scenario import Images

ROLES = tuple(Images.model_fields)


class ImageArgs(ArgsModel):
    name: str = Field(min_length=1, description="a role of the scenario's images: or a catalog reference")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value in ROLES:
            return value
        try:
            parse_reference(value)
        except ImageRefError as exc:
            raise ValueError(
                f"{value!r} is neither an images: role ({', '.join(ROLES)}) nor a reference: {exc}"
            ) from None
        return value


class ImageStep(StepKind):
    kind: ClassVar[str] = "image"
    args_model = ImageArgs
    args: ImageArgs

    def image(self, ctx: StepContext) -> Image:
        """The catalog image this step loads (UsageError naming the roles and images known)."""
        roles = {k: v for k, v in (ctx.vars.get("images") or {}).items() if v}
        wanted = roles.get(self.args.name, self.args.name)
        if self.args.name in ROLES and self.args.name not in roles:
            raise UsageError(
                f"step {self.name}: the scenario gives no images.{self.args.name}",
                f"add `images: {{{self.args.name}: REFERENCE}}` to the scenario (roles given: "
                f"{', '.join(roles) or 'none'})",
            )
        return (ctx.catalog or load_catalog()).image(wanted)

    def source(self, ctx: StepContext) -> CachedImage:
        return require(self.image(ctx))

    def preflight(self, ctx: StepContext) -> None:
        self.source(ctx)

    @staticmethod
    def _node_id(conn: Conn, reference: str) -> str:
        ran = sudo(conn, f"docker image inspect --format '{{{{.Id}}}}' {shlex.quote(reference)}")
        return ran.stdout.strip() if ran.ok else ""

    def plan(self, conn: Conn, ctx: StepContext) -> Change:
        source = self.source(ctx)
        if self._node_id(conn, source.image.reference) == source.image_id:
            return self.change(ctx, [])
        return self.change(ctx, [f"docker load {source.image.reference} ({source.image_id[:19]})"])

    def apply(self, conn: Conn, ctx: StepContext) -> Result:
        source = self.source(ctx)
        reference = source.image.reference
        if self._node_id(conn, reference) == source.image_id:
            return self.result(ctx, False, f"{reference} present ({source.image_id[:19]})")
        tmp = f"/tmp/.labkit-image-{uuid.uuid4().hex}.tar"
        conn.put(str(source.path), remote=tmp)
        q = shlex.quote(tmp)
        must(conn, f"docker load -i {q}; rc=$?; rm -f {q}; exit $rc", f"docker load of {reference}")
        got = self._node_id(conn, reference)
        if got != source.image_id:
            raise StepFailed(
                f"after docker load, {reference} has image ID {got or 'none'}, expected {source.image_id}",
                hint="check the node's Docker (`docker images`) and the archive in the host cache",
            )
        return self.result(ctx, True, f"loaded {reference} ({source.image_id[:19]})")
