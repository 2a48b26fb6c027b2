"""``command``: a shell command run as root, guarded by ``creates`` (skip if that path exists) and ``unless``
(skip if that command exits 0). ``unless`` runs in plans too, so it must only read."""

from __future__ import annotations

import shlex
from typing import ClassVar

from pydantic import Field

from labkit.kinds.steps.base import (
    ArgsModel,
    Change,
    Conn,
    Result,
    StepContext,
    StepFailed,
    StepKind,
    sudo,
)


class CommandArgs(ArgsModel):
    run: str = Field(min_length=1)
    creates: str | None = None
    unless: str | None = None


class CommandStep(StepKind):
    kind: ClassVar[str] = "command"
    args_model = CommandArgs
    args: CommandArgs

    def guarded(self, conn: Conn) -> str | None:
        """Why the command is skipped, or None when it must run."""
        if self.args.creates is not None and sudo(conn, f"test -e {shlex.quote(self.args.creates)}").ok:
            return f"{self.args.creates} exists"
        if self.args.unless is not None and sudo(conn, self.args.unless).ok:
            return "unless succeeded"
        return None

    def plan(self, conn: Conn, ctx: StepContext) -> Change:
        if self.guarded(conn) is not None:
            return self.change(ctx, [])
        return self.change(ctx, [f"run: {self.args.run}"])

    def apply(self, conn: Conn, ctx: StepContext) -> Result:
        skipped = self.guarded(conn)
        if skipped is not None:
            return self.result(ctx, False, f"skipped: {skipped}")
        ran = sudo(conn, self.args.run)
        if not ran.ok:
            raise StepFailed(f"command exited {ran.exited}", ran.command, ran.output)
        return self.result(ctx, True, "ran")
