"""Compile a scenario for its nodes: each step and check built from its kind, its args rendered per node.

:func:`load_scenario` is the full validation every command runs before touching a VM: the model's own
(:func:`labkit.model.scenario.parse_scenario`) plus every step and check rendered for every node it runs on,
so a typo in an argument or a template variable fails with its line before any SSH.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labkit.errors import LabkitError, Problem, UsageError
from labkit.kinds import steps
from labkit.kinds.checks import build as build_check
from labkit.kinds.guides import guide_context
from labkit.kinds.steps import StepKind, build, kind_of
from labkit.kinds.templating import node_variables, render_args
from labkit.model.loading import parse_scenario
from labkit.model.scenario import Scenario, Stage, Step
from labkit.model.yamlpos import line_for


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load and fully validate a scenario; raise ScenarioError with every problem found."""
    return parse_scenario(name_or_path, kind_problems)


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
        built.append(build(stage, step, render_args(step.args, variables, steps.where(stage, step))))
    return built


def validate_stage(scenario: Scenario, stage: Stage, context: dict[str, Any] | None) -> list[StepKind]:
    """Every step of the stage built for every node it runs on, its args rendered with ``context``, so a
    typo in an argument or a template variable fails before any SSH."""
    return [kind for step in stage.steps for kind in build_for_nodes(scenario, stage, step, context)]


def kind_problems(scenario: Scenario, shown: str, lines: dict[tuple[str | int, ...], int]) -> list[Problem]:
    """Each step's and check's kind and arguments, checked against the registries (before any SSH)."""

    try:
        context: dict[str, Any] | None = guide_context(scenario)
    except LabkitError:
        context = None  # steps are then checked without templating

    problems = []
    for s, stage in enumerate(scenario.stages):
        for c, check in enumerate(stage.checks):
            try:
                build_check(stage, check)
                for node in scenario.select(check.on) if context is not None else []:
                    variables = {**(context or {}), "node": node_variables(scenario, node.name, context)}
                    build_check(stage, check, render_args(check.args, variables, f"check {check.name}"))
            except UsageError as exc:
                loc_c: tuple[str | int, ...] = ("stages", s, "checks", c)
                problems.append(
                    Problem(
                        shown, line_for(lines, loc_c), f"stages[{s}].checks[{c}]", exc.message, exc.hint or ""
                    )
                )
        for i, step in enumerate(stage.steps):
            try:
                build_for_nodes(scenario, stage, step, context)
            except UsageError as exc:
                loc: tuple[str | int, ...] = (
                    "stages",
                    s,
                    "steps",
                    i,
                    "kind" if "unknown step kind" in exc.message else "args",
                )
                problems.append(
                    Problem(
                        shown, line_for(lines, loc), f"stages[{s}].steps[{i}]", exc.message, exc.hint or ""
                    )
                )
    return problems
