"""Step kinds: one module each, registered in :data:`KINDS`. A step is one idempotent action on a node.

Adding a kind is one module here (a :class:`~labkit.kinds.steps.base.StepKind` with its ``args_model``) plus
its class in :data:`KINDS`. String arguments are Jinja2 templates rendered per node
(:mod:`labkit.kinds.templating`), so ``path: "{{ root }}/etc/x"`` or ``endpoint: "http://{{ node.ip }}:2379"``
work; write ``{% raw %}`` around literal braces.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from labkit.errors import UsageError
from labkit.kinds.steps.artifact import ArtifactStep
from labkit.kinds.steps.base import Change, Conn, Result, StepContext, StepFailed, StepKind
from labkit.kinds.steps.command import CommandStep
from labkit.kinds.steps.etcd import EtcdPutStep
from labkit.kinds.steps.file import FileStep
from labkit.kinds.steps.image import ImageStep
from labkit.kinds.steps.systemd import SystemdStep
from labkit.kinds.templating import render_args
from labkit.model.scenario import Stage, Step

KINDS: dict[str, type[StepKind]] = {
    cls.kind: cls for cls in (FileStep, CommandStep, SystemdStep, ArtifactStep, EtcdPutStep, ImageStep)
}


class StepArgsError(UsageError):
    """A step's kind is unknown or its arguments do not validate; names the stage, the step and the arg."""


def where(stage: Stage | str, step: Step) -> str:
    name = stage.name if isinstance(stage, Stage) else stage
    return f"stage {name}, step {step.name} ({step.kind})"


def kind_of(stage: Stage | str, step: Step) -> type[StepKind]:
    try:
        return KINDS[step.kind]
    except KeyError:
        raise StepArgsError(
            f"{where(stage, step)}: unknown step kind {step.kind!r}", f"kinds: {', '.join(sorted(KINDS))}"
        ) from None


def build(stage: Stage | str, step: Step, args: dict[str, Any] | None = None) -> StepKind:
    """Validate ``args`` (default: the step's own) against the kind's model; StepArgsError naming each bad arg."""
    cls = kind_of(stage, step)
    try:
        parsed = cls.args_model.model_validate(step.args if args is None else args)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            arg = ".".join(str(p) for p in err["loc"]) or "args"
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"arg {arg!r}: {msg}")
        fields = ", ".join(cls.args_model.model_fields)
        raise StepArgsError(
            f"{where(stage, step)}: {'; '.join(problems)}", f"{step.kind} takes: {fields}"
        ) from None
    return cls(step.name, parsed)


def for_node(stage: Stage | str, step: Step, ctx: StepContext) -> StepKind:
    """The step with its args rendered for one node and validated again."""
    rendered = render_args(step.args, ctx.vars, where(stage, step))
    return build(stage, step, rendered)


__all__ = [
    "KINDS",
    "Change",
    "Conn",
    "Result",
    "StepArgsError",
    "StepContext",
    "StepFailed",
    "StepKind",
    "build",
    "for_node",
    "kind_of",
]
