"""``file``: a file on the node with given content (inline or a Jinja2 template), owner, group and mode.

A template sees the stage's variables plus the step's own ``vars``.

The remote sha256 is compared first; the content is uploaded only when it differs, and owner/mode are
fixed in place when only they differ. ``plan`` shows a unified diff.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import jinja2
from pydantic import Field, field_validator, model_validator

from labkit.artifacts import file_sha256
from labkit.errors import UsageError
from labkit.kinds.steps.base import (
    Change,
    Conn,
    FileAttrs,
    RemoteFile,
    Result,
    StepContext,
    StepKind,
    attribute_changes,
    fix_attributes,
    remote_file,
    remote_text,
    unified_diff,
    upload,
)
from labkit.model import sandbox


def absolute_path(value: str) -> str:
    path = PurePosixPath(value)
    if not path.is_absolute() or ".." in path.parts or value.endswith("/"):
        raise ValueError(f"{value!r} is not an absolute file path")
    return str(path)


class FileArgs(FileAttrs):
    path: str
    content: str | None = None
    template: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    """Extra template variables for this step only (e.g. ``{cni: true}`` when a later chapter re-renders a file
    an earlier chapter wrote, adding its part)."""

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return absolute_path(value)

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            # ../OTHER/...: another shipped scenario's template (only a shipped scenario may read it; the
            # whole-document validation and the loader refuse it for any other, see labkit.model.sandbox)
            parts = PurePosixPath(value).parts
            shared = len(parts) > 2 and parts[0] == ".." and ".." not in parts[1:]
            if PurePosixPath(value).is_absolute() or (".." in parts and not shared):
                raise ValueError(
                    f"{value!r} must be a path relative to the scenario directory "
                    "(a scenario shipped with labkit may also name ../SCENARIO/PATH, another shipped one's file)"
                )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> FileArgs:
        if (self.content is None) == (self.template is None):
            raise ValueError("give exactly one of content or template")
        return self


def render_template(scenario_dir: Path | None, name: str, variables: dict[str, Any]) -> str:
    """Render ``name`` (relative to the scenario directory) with StrictUndefined: a missing variable is an error."""
    if scenario_dir is None:
        raise UsageError(f"template {name!r} needs a scenario directory", "load the scenario from its file")
    env = sandbox.environment(scenario_dir, scenario=True)
    try:
        return env.get_template(name).render(**variables)
    except jinja2.TemplateNotFound:
        raise UsageError(
            f"template {name!r} not found in {scenario_dir}", "check the step's template"
        ) from None
    except jinja2.TemplateError as exc:
        raise UsageError(
            f"template {name!r}: {exc}", "give that variable in the context or fix the template"
        ) from None


class FileStep(StepKind):
    kind: ClassVar[str] = "file"
    args_model = FileArgs
    args: FileArgs

    def content(self, ctx: StepContext) -> bytes:
        if self.args.content is not None:
            return self.args.content.encode()
        assert self.args.template is not None
        return render_template(ctx.scenario_dir, self.args.template, {**ctx.vars, **self.args.vars}).encode()

    def preflight(self, ctx: StepContext) -> None:
        self.content(ctx)

    def plan(self, conn: Conn, ctx: StepContext) -> Change:
        return plan_file(self, conn, ctx, self.args.path, self.content(ctx), self.args)

    def apply(self, conn: Conn, ctx: StepContext) -> Result:
        changed = apply_file(conn, self.args.path, self.content(ctx), self.args)
        return self.result(ctx, bool(changed), "; ".join(changed))


def plan_file(
    step: StepKind, conn: Conn, ctx: StepContext, path: str, data: bytes, attrs: FileAttrs
) -> Change:
    current = remote_file(conn, path)
    if not current.exists:
        return step.change(ctx, [f"create {path}"], unified_diff(path, None, data))
    summaries = attribute_changes(current, attrs.owner, attrs.group, attrs.mode)
    diff = ""
    if current.sha256 != hashlib.sha256(data).hexdigest():
        summaries.insert(0, f"update {path}")
        diff = unified_diff(path, remote_text(conn, path), data)
    return step.change(ctx, summaries, diff)


def apply_file(
    conn: Conn,
    path: str,
    data: bytes | Path,
    attrs: FileAttrs,
    sha256: str | None = None,
    current: RemoteFile | None = None,
) -> list[str]:
    """Converge one remote file (``current``: its state when already read); returns what changed."""
    wanted = sha256 or (hashlib.sha256(data).hexdigest() if isinstance(data, bytes) else file_sha256(data))
    current = current or remote_file(conn, path)
    if not current.exists or current.sha256 != wanted:
        upload(conn, data, path, attrs.owner, attrs.group, attrs.mode)
        return [f"{'updated' if current.exists else 'created'} {path}"]
    changes = attribute_changes(current, attrs.owner, attrs.group, attrs.mode)
    if changes:
        fix_attributes(conn, path, attrs.owner, attrs.group, attrs.mode)
    return changes
