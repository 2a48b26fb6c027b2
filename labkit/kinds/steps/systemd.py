"""``systemd``: a unit file (optional), enabled or not, started / stopped / restarted.

``state: restarted`` restarts only when the unit file changed in this run or a step named in ``restart_on``
changed this node in this run (like a handler notified); otherwise it only makes sure the unit is active,
so a second run changes nothing. A new or changed unit file is followed by ``systemctl daemon-reload``.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from labkit.kinds.steps.base import (
    ArgsModel,
    Change,
    Conn,
    FileAttrs,
    Result,
    StepContext,
    StepKind,
    must,
    remote_file,
    remote_text,
    sudo,
    unified_diff,
)
from labkit.kinds.steps.file import apply_file

UNIT_RE = re.compile(r"^[A-Za-z0-9@._:-]+\.(service|socket|timer|target|path|mount)$")
UNIT_DIR = "/etc/systemd/system"


class SystemdArgs(ArgsModel):
    unit: str
    content: str | None = None
    enabled: bool | None = None
    state: Literal["started", "restarted", "stopped"] | None = None
    restart_on: list[str] = Field(default_factory=list)

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str) -> str:
        if not UNIT_RE.match(value):
            raise ValueError(f"{value!r} is not a unit name like etcd.service")
        return value


class SystemdStep(StepKind):
    kind: ClassVar[str] = "systemd"
    args_model = SystemdArgs
    args: SystemdArgs

    @property
    def unit_path(self) -> str:
        return f"{UNIT_DIR}/{self.args.unit}"

    def _facts(self, conn: Conn) -> tuple[bool, bool]:
        """(enabled, active) as systemctl says."""
        u = shlex.quote(self.args.unit)
        enabled = sudo(conn, f"systemctl is-enabled {u}").stdout.strip() == "enabled"
        active = sudo(conn, f"systemctl is-active {u}").stdout.strip() == "active"
        return enabled, active

    def _unit_differs(self, conn: Conn) -> bool:
        if self.args.content is None:
            return False
        current = remote_file(conn, self.unit_path)
        return not current.exists or current.sha256 != hashlib.sha256(self.args.content.encode()).hexdigest()

    def _actions(self, unit_changed: bool, ctx: StepContext, enabled: bool, active: bool) -> list[str]:
        a = self.args
        todo = []
        if a.enabled is not None and a.enabled != enabled:
            todo.append("enable" if a.enabled else "disable")
        notified = unit_changed or bool(set(a.restart_on) & ctx.changed)
        if a.state == "stopped" and active:
            todo.append("stop")
        elif a.state in ("started", "restarted"):
            if not active:
                todo.append("start")
            elif a.state == "restarted" and notified:
                todo.append("restart")
        return todo

    def plan(self, conn: Conn, ctx: StepContext) -> Change:
        summaries, diff = [], ""
        unit_changed = self._unit_differs(conn)
        if unit_changed:
            assert self.args.content is not None
            exists = remote_file(conn, self.unit_path).exists
            old = remote_text(conn, self.unit_path) if exists else None
            diff = unified_diff(self.unit_path, old, self.args.content.encode())
            summaries += [f"write {self.unit_path}", "daemon-reload"]
        enabled, active = self._facts(conn)
        summaries += self._actions(unit_changed, ctx, enabled, active)
        return self.change(ctx, summaries, diff)

    def apply(self, conn: Conn, ctx: StepContext) -> Result:
        done: list[str] = []
        u = shlex.quote(self.args.unit)
        unit_changed = False
        if self.args.content is not None:
            unit_changed = bool(apply_file(conn, self.unit_path, self.args.content.encode(), FileAttrs()))
            if unit_changed:
                must(conn, "systemctl daemon-reload", "systemctl daemon-reload")
                done += [f"wrote {self.unit_path}", "daemon-reload"]
        if not unit_changed and set(self.args.restart_on) & ctx.changed:
            # a unit file written by another step (kind file) is read again only after a daemon-reload
            must(conn, "systemctl daemon-reload", "systemctl daemon-reload")
        enabled, active = self._facts(conn)
        for action in self._actions(unit_changed, ctx, enabled, active):
            must(conn, f"systemctl {action} {u}", f"systemctl {action} {self.args.unit}")
            done.append(action)
        return self.result(ctx, bool(done), ", ".join(done))
