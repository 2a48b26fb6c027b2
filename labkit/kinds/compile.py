"""The registry of step kinds and how a scenario's step becomes a runnable, validated one.

Adding a kind is one module under :mod:`labkit.kinds.steps` plus one line in :data:`KINDS`. String
arguments are Jinja2 templates rendered per node (StrictUndefined) with the runner's context plus ``node``
(name, ip, roles), so ``path: "{{ root }}/etc/x"`` or ``endpoint: "http://{{ node.ip }}:2379"`` work; write
``{% raw %}`` around literal braces.
"""

from __future__ import annotations

from typing import Any

import jinja2
from pydantic import ValidationError

from labkit.errors import UsageError
from labkit.kinds.steps.artifact import ArtifactStep
from labkit.kinds.steps.base import Change, Conn, Result, StepContext, StepFailed, StepKind
from labkit.kinds.steps.command import CommandStep
from labkit.kinds.steps.etcd import EtcdPutStep
from labkit.kinds.steps.file import FileStep
from labkit.kinds.steps.image import ImageStep
from labkit.kinds.steps.systemd import SystemdStep
from labkit.model import sandbox
from labkit.model.scenario import Scenario, Stage, Step

KINDS: dict[str, type[StepKind]] = {
    cls.kind: cls for cls in (FileStep, CommandStep, SystemdStep, ArtifactStep, EtcdPutStep, ImageStep)
}


class StepArgsError(UsageError):
    """A step's kind is unknown or its arguments do not validate; names the stage, the step and the arg."""


def _where(stage: Stage | str, step: Step) -> str:
    name = stage.name if isinstance(stage, Stage) else stage
    return f"stage {name}, step {step.name} ({step.kind})"


def kind_of(stage: Stage | str, step: Step) -> type[StepKind]:
    try:
        return KINDS[step.kind]
    except KeyError:
        raise StepArgsError(
            f"{_where(stage, step)}: unknown step kind {step.kind!r}", f"kinds: {', '.join(sorted(KINDS))}"
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
            f"{_where(stage, step)}: {'; '.join(problems)}", f"{step.kind} takes: {fields}"
        ) from None
    return cls(step.name, parsed)


def node_variables(scenario: Scenario, name: str, context: dict[str, Any] | None) -> dict[str, Any]:
    """``node`` in templates: the context's dict for that node (lab_iface...) plus its name, ip and roles."""
    node = scenario.node(name)
    known = ((context or {}).get("nodes") or {}).get(name, {})
    return {**known, "name": node.name, "ip": node.ip, "roles": list(node.roles)}


def validate_stage(scenario: Scenario, stage: Stage, context: dict[str, Any] | None) -> list[StepKind]:
    """Every step of the stage built for every node it runs on, its args rendered with ``context``, so a
    typo in an argument or a template variable fails before any SSH."""
    return [kind for step in stage.steps for kind in build_for_nodes(scenario, stage, step, context)]


def build_for_nodes(
    scenario: Scenario, stage: Stage, step: Step, context: dict[str, Any] | None
) -> list[StepKind]:
    """The step built for each node it runs on; without a context, from its raw args (no templating)."""
    if context is None:
        return [build(stage, step)]
    kind_of(stage, step)
    built = []
    for node in scenario.select(step.on):
        variables = {**context, "node": node_variables(scenario, node.name, context)}
        built.append(build(stage, step, render_args(step.args, variables, _where(stage, step))))
    return built


_ENV = sandbox.environment()


def render_args(value: Any, variables: dict[str, Any], where: str = "") -> Any:
    """Render every string inside ``value`` (dicts and lists walked) as a template with ``variables``."""
    if isinstance(value, str):
        if "{" not in value:
            return value
        try:
            return _ENV.from_string(value).render(**variables)
        except jinja2.TemplateError as exc:
            raise UsageError(f"{where}: {exc}", "give that variable in the context or fix the step") from None
    if isinstance(value, dict):
        return {k: render_args(v, variables, where) for k, v in value.items()}
    if isinstance(value, list):
        return [render_args(v, variables, where) for v in value]
    return value


def for_node(stage: Stage | str, step: Step, ctx: StepContext) -> StepKind:
    """The step with its args rendered for one node and validated again."""
    rendered = render_args(step.args, ctx.vars, _where(stage, step))
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
    "build_for_nodes",
    "for_node",
    "kind_of",
    "node_variables",
    "render_args",
    "validate_stage",
]
