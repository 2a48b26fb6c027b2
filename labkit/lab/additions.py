"""A file several stages write: re-solving one of them keeps what the lab's other solved stages added.

A later chapter adds to a file an earlier one wrote by rendering the same template to the same path with
``vars`` of its own (chapter 09 renders kubelet.conf with ``{cni: true}``, chapter 06 kube-apiserver.conf with
``{service_account_key: true}``). Solving the earlier stage again with its own step alone would write the file
without them, and undo the later chapter. So each ``file`` step of a stage is compiled with the ``vars`` of
every file step that renders the same template to the same path in the stages the lab has solved, merged in
scenario order (a later stage's value wins), the stage's own step at its place.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from labkit.errors import UsageError
from labkit.model.scenario import Scenario, Stage, Step


@dataclass(frozen=True)
class Kept:
    """Another solved stage's additions to a file this stage writes."""

    step: str
    """this stage's step that writes the file"""
    path: str
    stage: str
    vars: tuple[str, ...]

    def __str__(self) -> str:
        return f"keeping {self.path}'s additions from stage {self.stage} ({', '.join(self.vars)})"

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "stage": self.stage, "vars": list(self.vars), "message": str(self)}


def _target(step: Step) -> tuple[str, str] | None:
    """(path, template) of a file step rendered from a template; None for any other step."""
    path, template = step.args.get("path"), step.args.get("template")
    if step.kind != "file" or not isinstance(path, str) or not isinstance(template, str):
        return None
    return path, template


def _vars(step: Step) -> dict[str, Any]:
    found = step.args.get("vars") or {}
    return found if isinstance(found, dict) else {}


def with_additions(scenario: Scenario, stage: Stage, solved: Collection[str]) -> tuple[Stage, list[Kept]]:
    """``stage`` with each file step's ``vars`` merged from the same file's steps in the ``solved`` stages, and
    what was kept from those. A step whose nodes only partly overlap this one's is refused: its additions
    would hold for some nodes only."""
    others = [s for s in scenario.stages if s.name in solved and s.name != stage.name]
    kept: list[Kept] = []
    steps = []
    for step in stage.steps:
        target = _target(step)
        if target is None:
            steps.append(step)
            continue
        nodes = {n.name for n in scenario.select(step.on)}
        writers: list[tuple[Stage, Step]] = []
        for other in others:
            for theirs in other.steps:
                if _target(theirs) != target or not _vars(theirs):
                    continue
                their_nodes = {n.name for n in scenario.select(theirs.on)}
                if not nodes & their_nodes:
                    continue
                if not nodes <= their_nodes:
                    raise UsageError(
                        f"stage {stage.name}, step {step.name} writes {target[0]} on {', '.join(sorted(nodes))}; "
                        f"stage {other.name}, step {theirs.name} adds to it on {', '.join(sorted(their_nodes))} only",
                        f"give step {theirs.name} every node of step {step.name} in the scenario's `on:`",
                    )
                writers.append((other, theirs))
        if not writers:
            steps.append(step)
            continue
        order = {s.name: i for i, s in enumerate(scenario.stages)}
        merged: dict[str, Any] = {}
        for _, writer in sorted([*writers, (stage, step)], key=lambda w: order[w[0].name]):
            merged.update(_vars(writer))
        steps.append(step.model_copy(update={"args": {**step.args, "vars": merged}}))
        for other, theirs in writers:
            entry = Kept(step.name, target[0], other.name, tuple(sorted(_vars(theirs))))
            if entry not in kept:
                kept.append(entry)
    return stage.model_copy(update={"steps": steps}), kept
