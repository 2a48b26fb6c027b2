"""Run a stage's checks on the lab's nodes: nodes in parallel, a node's checks one after another, each within
its timeout. A node that does not answer is reported once as unreachable and its later checks are not tried."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from labkit.kinds.checks import CheckResult, Observation, build, result_of
from labkit.kinds.templating import render_args
from labkit.machines.connections import (
    REMOTE_ERRORS,
    HostKeyChanged,
    NodeTimeout,
    NodeUnreachable,
    NoHostKey,
    interruptible,
    is_unreachable,
)
from labkit.model.scenario import Check, Scenario, Stage


def _node_variables(context: dict[str, Any], node: Any) -> dict[str, Any]:
    """``node`` as templates see it: the guide context's view (with ``lab_iface``), else name, IP and roles."""
    base = {"name": node.name, "ip": node.ip, "roles": list(node.roles)}
    known = context.get("nodes", {}).get(node.name)
    return {**base, **known} if isinstance(known, dict) else base


def run_checks(
    scenario: Scenario,
    stage: Stage,
    connections: dict[str, Any],
    context: dict[str, Any],
    lang: str = "en",
) -> list[CheckResult]:
    """Every check of ``stage`` on its nodes, nodes in parallel; results in scenario order."""
    for check in stage.checks:
        build(stage, check)  # every kind and argument valid before any probe
    jobs = [(check, node) for check in stage.checks for node in scenario.select(check.on)]
    silent: dict[str, str] = {}  # node -> why it is unreachable: its later checks are not tried

    def probe(job: tuple[Check, Any]) -> CheckResult:
        check, node = job
        if node.name in silent:
            return CheckResult(
                check.name, node.name, False, f"not run: {silent[node.name]}", unreachable=True
            )
        variables = {**context, "node": _node_variables(context, node)}
        kind = build(stage, check, render_args(check.args, variables, f"check {check.name}"))
        conn = connections[node.name]
        budget = getattr(conn, "budget", None)  # NodeConnection: the check ends after its timeout
        try:
            with budget(f"check {check.name}", check.timeout) if budget else contextlib.nullcontext():
                seen = kind.examine(conn)
        except NodeTimeout as exc:
            if not exc.answered:
                silent[node.name] = f"{node.name} did not answer"
                return CheckResult(check.name, node.name, False, exc.short, unreachable=True)
            seen = Observation(False, exc.outcome)  # the node answers but the probe hangs: a real failure
        except (HostKeyChanged, NoHostKey):
            raise  # a refusal to talk to the node at all: one error for the command, not a check result
        except REMOTE_ERRORS as exc:
            # only what the node or the connection raised; any other exception is a bug in labkit and goes up
            # to the CLI as an internal error: never a failed check with the stage's hint, never un-verifying
            if not is_unreachable(exc):  # the node answered: what went wrong is what the check saw
                seen = Observation(False, f"{type(exc).__name__}: {exc}")
                return result_of(check, node, seen, variables, lang)
            silent[node.name] = f"{node.name} did not answer"
            detail = (
                exc.short if isinstance(exc, NodeUnreachable) else f"unreachable: {type(exc).__name__}: {exc}"
            )
            return CheckResult(check.name, node.name, False, detail, unreachable=True)
        return result_of(check, node, seen, variables, lang)

    def probe_node(node_name: str) -> list[CheckResult]:
        # one fabric connection is not safe to share between threads: a node's checks run one after another
        return [probe(job) for job in jobs if job[1].name == node_name]

    nodes = list(dict.fromkeys(node.name for _, node in jobs))
    pool = ThreadPoolExecutor(max_workers=max(1, len(nodes)))
    with interruptible(pool, [connections[n] for n in nodes]):
        by_node = dict(zip(nodes, pool.map(probe_node, nodes), strict=True))
    order = {(check.name, node.name): i for i, (check, node) in enumerate(jobs)}
    return sorted(
        (r for results in by_node.values() for r in results), key=lambda r: order[(r.check, r.node)]
    )
