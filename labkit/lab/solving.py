"""Apply (or plan) one stage's steps over SSH: steps in order, each on its nodes in parallel.

Every step is validated, rendered for each node and pre-flighted (templates render, artifacts are cached)
before any node is touched. Each node keeps one connection for the whole stage. The first step that fails
on any node stops the stage; the report names the node, the step, the command and the tail of its output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.artifacts import Artifact, Catalog, MissingArtifactsError
from labkit.errors import LabkitError, UsageError
from labkit.kinds.compile import validate_stage
from labkit.kinds.steps import for_node
from labkit.kinds.steps.base import Change, Conn, Result, StepContext, StepFailed, StepKind
from labkit.kinds.steps.file import FileStep
from labkit.kinds.templating import node_variables
from labkit.lab.additions import Kept, with_additions
from labkit.machines.connections import REMOTE_ERRORS, NodeUnreachable, interruptible
from labkit.model.image_refs import Image
from labkit.model.scenario import Scenario, Stage, Step
from labkit.model.version_guard import NETWORK_PLUGIN_FIX, network_plugin_refusal
from labkit.progress import LogReporter, Reporter


@dataclass
class StageReport:
    """Per node, per step: a Result (apply) or a Change (plan). ``failure`` is the first failed result."""

    stage: str
    plan: bool
    steps: list[str] = field(default_factory=list)
    results: dict[str, dict[str, Result]] = field(default_factory=dict)
    changes: dict[str, dict[str, Change]] = field(default_factory=dict)
    failure: Result | None = None
    kept: list[Kept] = field(default_factory=list)
    """Additions of the lab's other solved stages kept in the files this stage writes."""

    @property
    def failed(self) -> bool:
        return self.failure is not None

    @property
    def changed_count(self) -> int:
        """Changed (or, for a plan, would-change) step runs summed over nodes."""
        if self.plan:
            return sum(c.changed for per in self.changes.values() for c in per.values())
        return sum(r.status == "changed" for per in self.results.values() for r in per.values())

    def summary(self) -> str:
        verb = "would change" if self.plan else "changed"
        text = f"stage {self.stage}: {len(self.steps)} steps, {self.changed_count} {verb}"
        if self.failure is not None:
            text += f"; FAILED\n{self.failure}"
        return text


def _select_steps(stage: Stage, only: set[str] | None) -> list[Step]:
    if only is None:
        return list(stage.steps)
    names = [s.name for s in stage.steps]
    unknown = sorted(only - set(names))
    if unknown:
        raise UsageError(
            f"stage {stage.name} has no step {', '.join(map(repr, unknown))}",
            f"steps of {stage.name}: {', '.join(names) or 'none'}",
        )
    return [s for s in stage.steps if s.name in only]


def _run_one(kind: StepKind, conn: Conn, ctx: StepContext, plan: bool, timeout: float) -> Change | Result:
    # a connection with a budget (NodeConnection) ends the step after ``timeout`` s; fakes have none
    budget = getattr(conn, "budget", None)
    bounded = budget(f"step {kind.name}", timeout) if budget else contextlib.nullcontext()
    try:
        with bounded:
            return kind.plan(conn, ctx) if plan else kind.apply(conn, ctx)
    except StepFailed as exc:
        return Result(ctx.node, kind.name, "failed", str(exc), exc.command, exc.output)
    except NodeUnreachable as exc:  # timed out or not answering: the message names node, step and fix
        return Result(ctx.node, kind.name, "failed", exc.short)
    except LabkitError as exc:  # raised on purpose by the kind (a missing artifact, ...): says what to do
        return Result(ctx.node, kind.name, "failed", str(exc))
    except REMOTE_ERRORS as exc:  # SSH, SFTP and socket errors: the node's result, not a crash of the stage
        return Result(ctx.node, kind.name, "failed", f"{type(exc).__name__}: {exc}")
    # anything else (TypeError, KeyError, ...) is a bug in labkit: it propagates to the CLI's internal error


def run_stage(
    scenario: Scenario,
    stage: Stage | str,
    connections: dict[str, Any],
    *,
    only: set[str] | None = None,
    nodes: set[str] | None = None,
    plan: bool = False,
    context: dict[str, Any] | None = None,
    reporter: Reporter | None = None,
    catalog: Catalog | None = None,
    scenario_dir: Path | None = None,
    solved: Collection[str] = (),
) -> StageReport:
    """Apply (``plan=False``) or plan one stage on the given node connections; see the module doc.
    ``only`` limits the steps by name, ``nodes`` the nodes (e.g. to redo one broken node). ``solved``: the
    lab's solved stages, whose additions to the files this stage writes are kept (labkit.lab.additions)."""
    stage = scenario.stage(stage) if isinstance(stage, str) else stage
    stage, kept = with_additions(scenario, stage, solved)
    reporter = reporter or LogReporter()
    validate_stage(scenario, stage, context)
    steps = _select_steps(stage, only)
    kept = [k for k in kept if k.step in {s.name for s in steps}]
    for entry in kept:
        reporter.note(str(entry))

    _refuse_unknown_nodes(scenario, nodes)
    targets = _targets(scenario, stage, steps, connections, nodes)
    involved = [n.name for n in scenario.nodes if any(n.name in on for _, on in targets)]
    contexts = {name: _node_context(scenario, name, context, catalog, scenario_dir) for name in involved}
    built = _preflight(scenario, stage, targets, contexts)

    report = StageReport(stage.name, plan, [s.name for s in steps], kept=kept)
    reporter.start(involved, len(targets))
    try:
        _run_targets(targets, built, involved, connections, contexts, plan, report, reporter)
    finally:
        reporter.finish()
    return report


def _refuse_unknown_nodes(scenario: Scenario, nodes: set[str] | None) -> None:
    if nodes is None:
        return
    unknown_nodes = sorted(nodes - {n.name for n in scenario.nodes})
    if unknown_nodes:
        raise UsageError(
            f"no node {', '.join(map(repr, unknown_nodes))} in scenario {scenario.name}",
            f"nodes: {', '.join(n.name for n in scenario.nodes)}",
        )


def _targets(
    scenario: Scenario,
    stage: Stage,
    steps: list[Step],
    connections: dict[str, Any],
    nodes: set[str] | None,
) -> list[tuple[Step, list[str]]]:
    """Each step with the nodes it runs on (steps on no selected node left out); a UsageError if one of them
    has no connection."""
    targets: list[tuple[Step, list[str]]] = []
    for step in steps:
        selected = [n.name for n in scenario.select(step.on) if nodes is None or n.name in nodes]
        missing = [n for n in selected if n not in connections]
        if missing:
            raise UsageError(
                f"stage {stage.name}, step {step.name}: no connection to {', '.join(missing)}",
                f"connections given for: {', '.join(sorted(connections)) or 'none'}",
            )
        if selected:
            targets.append((step, selected))
    return targets


def _node_context(
    scenario: Scenario,
    node: str,
    context: dict[str, Any] | None,
    catalog: Catalog | None,
    scenario_dir: Path | None,
) -> StepContext:
    variables = {**(context or {}), "node": node_variables(scenario, node, context)}
    return StepContext(node, variables, scenario_dir or scenario.directory, catalog)


def _preflight(
    scenario: Scenario,
    stage: Stage,
    targets: list[tuple[Step, list[str]]],
    contexts: dict[str, StepContext],
) -> dict[tuple[str, str], StepKind]:
    """Every step built for each of its nodes, keyed by (step, node), and pre-flighted.

    Everything that can fail on the host fails here, before any node is touched; every missing artifact and
    image of the stage is named at once, not the first step's alone.
    """
    built: dict[tuple[str, str], StepKind] = {}
    missing_artifacts: list[Artifact] = []
    missing_images: list[Image] = []
    for step, step_nodes in targets:
        for name in step_nodes:
            kind = for_node(stage, step, contexts[name])
            try:
                kind.preflight(contexts[name])
            except MissingArtifactsError as exc:
                missing_artifacts += [a for a in exc.artifacts if a not in missing_artifacts]
                missing_images += [i for i in exc.images if i not in missing_images]
                continue
            _refuse_removed_kubelet_flags(scenario, stage, kind, contexts[name])
            built[(step.name, name)] = kind
    if missing_artifacts or missing_images:
        raise MissingArtifactsError(missing_artifacts, scenario.name, images=missing_images)
    return built


def _run_targets(
    targets: list[tuple[Step, list[str]]],
    built: dict[tuple[str, str], StepKind],
    involved: list[str],
    connections: dict[str, Any],
    contexts: dict[str, StepContext],
    plan: bool,
    report: StageReport,
    reporter: Reporter,
) -> None:
    """Run the steps in order, each on its nodes in parallel, into ``report``; stop after the first step that
    failed on any node."""
    pool = ThreadPoolExecutor(max_workers=max(1, len(involved)))
    with interruptible(pool, [connections[n] for n in involved]):
        for index, (step, step_nodes) in enumerate(targets, start=1):
            futures = {
                name: pool.submit(
                    _run_one,
                    built[(step.name, name)],
                    connections[name],
                    contexts[name],
                    plan,
                    step.timeout,
                )
                for name in step_nodes
            }
            for name, future in futures.items():
                status = _record(report, step, contexts[name], future.result())
                reporter.step(name, f"{step.name}: {status}", index)
            if report.failure is not None:
                reporter.note(str(report.failure))
                break


def _record(report: StageReport, step: Step, ctx: StepContext, outcome: Change | Result) -> str:
    """Add one node's outcome of ``step`` to the report and the node's changed steps; the status to show."""
    node = ctx.node
    if isinstance(outcome, Change):
        report.changes.setdefault(node, {})[step.name] = outcome
        if outcome.changed:
            ctx.changed.add(step.name)
        return f"would change: {outcome.summary}" if outcome.changed else "no change"
    report.results.setdefault(node, {})[step.name] = outcome
    if outcome.status == "changed":
        ctx.changed.add(step.name)
    elif outcome.status == "failed" and report.failure is None:
        report.failure = outcome
    return outcome.status


def _refuse_removed_kubelet_flags(scenario: Scenario, stage: Stage, kind: StepKind, ctx: StepContext) -> None:
    kubernetes = scenario.versions.kubernetes
    if not isinstance(kind, FileStep) or not kubernetes:
        return
    where = f"stage {stage.name}, step {kind.name}: {kind.args.path} on {ctx.node}"
    why = network_plugin_refusal(kubernetes, where, kind.content(ctx).decode(errors="replace"))
    if why is not None:
        raise UsageError(why, NETWORK_PLUGIN_FIX)


__all__ = ["StageReport", "run_stage"]


def sync_nodes(connections: dict[str, Any], reporter: Reporter) -> None:
    """``sync`` on every node, in parallel: a host crash right after a solve must not lose what it wrote."""
    import paramiko

    def sync(node: str) -> str | None:
        try:
            result = connections[node].run("sync")
        except (OSError, paramiko.SSHException) as exc:
            return f"{node}: {exc}"
        return None if result.ok else f"{node}: exit {result.exited}"

    with ThreadPoolExecutor(max_workers=len(connections)) as pool:
        failed = [f for f in pool.map(sync, list(connections)) if f]
    if failed:
        reporter.note(f"could not sync the disks of {'; '.join(failed)}: a host crash now may lose the stage")
