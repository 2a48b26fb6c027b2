"""Check kinds: read-only probes of a node that return what they saw (they never assert, never change).

A stage's ``checks`` are run by :func:`run_checks` on the nodes each selects, in parallel. A failed check
carries what it saw, the stage author's hint and, for kinds that diagnose (``flannel``), named findings with
their cause and fix, all in the trainee's language. Each kind is one module under :mod:`labkit.kinds.checks.kinds`
plus one line in :data:`KINDS`.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import ValidationError

from labkit.errors import UsageError
from labkit.kinds.checks.base import (
    CheckArgs,
    CheckKind,
    CheckResult,
    Conn,
    FindingReport,
    Observation,
    templated,
)
from labkit.kinds.checks.command import CommandArgs, CommandCheck
from labkit.kinds.checks.etcd_key import EtcdKey, EtcdKeyArgs
from labkit.kinds.checks.file import FileArgs, FileCheck
from labkit.kinds.checks.flannel import FlannelArgs, FlannelCheck
from labkit.kinds.checks.http_backends import HttpBackends, HttpBackendsArgs
from labkit.kinds.checks.pod_ips import PodIps, PodIpsArgs
from labkit.kinds.checks.pod_reachable import PodReachable, PodReachableArgs
from labkit.kinds.checks.port import PortArgs, PortListening
from labkit.kinds.checks.service import ServiceArgs, ServiceStable
from labkit.kinds.compile import render_args
from labkit.machines.connections import (
    REMOTE_ERRORS,
    HostKeyChanged,
    NodeTimeout,
    NodeUnreachable,
    NoHostKey,
    interruptible,
    is_unreachable,
)
from labkit.model.scenario import Check, Guide, Scenario, Stage

KINDS: dict[str, type[CheckKind]] = {
    k.kind: k
    for k in (
        ServiceStable,
        CommandCheck,
        PortListening,
        EtcdKey,
        FileCheck,
        HttpBackends,
        PodReachable,
        PodIps,
        FlannelCheck,
    )
}


def _deferred(error: Any) -> bool:
    """An argument error on a value that is still a template: it is checked again once rendered per node."""
    return templated(error.get("input"))


def build(stage: Stage, check: Check, args: dict[str, Any] | None = None) -> CheckKind:
    """The check's kind with ``args`` (default: the scenario's raw args) validated; a UsageError says what
    is wrong. Raw args may hold templates (``{{ node.ip }}``): errors on those wait for the rendered value."""
    where = f"stage {stage.name}, check {check.name} ({check.kind})"
    try:
        cls = KINDS[check.kind]
    except KeyError:
        raise UsageError(
            f"{where}: unknown check kind {check.kind!r}", f"kinds: {', '.join(sorted(KINDS))}"
        ) from None
    raw = args is None
    try:
        return cls(cls.args_model.model_validate(check.args if args is None else args))
    except ValidationError as exc:
        errors = [e for e in exc.errors(include_url=False) if not (raw and _deferred(e))]
        if not errors:
            return cls(cls.args_model.model_construct(**check.args))
        problems = "; ".join(
            f"arg {'.'.join(str(p) for p in e['loc']) or 'args'!r}: {e['msg']}" for e in errors
        )
        raise UsageError(
            f"{where}: {problems}", f"{check.kind} takes: {', '.join(cls.args_model.model_fields)}"
        ) from None


def hint_text(hint: Guide | str | None, lang: str) -> str | None:
    if hint is None or isinstance(hint, str):
        return hint
    return (hint.ja if lang == "ja" else hint.en) or hint.en or hint.ja


def _node_variables(context: dict[str, Any], node: Any) -> dict[str, Any]:
    """``node`` as templates see it: the guide context's view (with ``lab_iface``), else name, IP and roles."""
    base = {"name": node.name, "ip": node.ip, "roles": list(node.roles)}
    known = context.get("nodes", {}).get(node.name)
    return {**base, **known} if isinstance(known, dict) else base


def _result(check: Check, node: Any, seen: Observation, variables: dict[str, Any], lang: str) -> CheckResult:
    hint = None if seen.ok else hint_text(check.hint, lang)
    if hint is not None:
        hint = render_args(hint, variables, f"hint of check {check.name}")
    findings = tuple(f.report(lang) for f in seen.findings)
    return CheckResult(check.name, node.name, seen.ok, seen.seen, hint, findings)


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
                return _result(check, node, seen, variables, lang)
            silent[node.name] = f"{node.name} did not answer"
            detail = (
                exc.short if isinstance(exc, NodeUnreachable) else f"unreachable: {type(exc).__name__}: {exc}"
            )
            return CheckResult(check.name, node.name, False, detail, unreachable=True)
        return _result(check, node, seen, variables, lang)

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


__all__ = [
    "KINDS",
    "CheckArgs",
    "CheckKind",
    "CheckResult",
    "CommandArgs",
    "CommandCheck",
    "Conn",
    "EtcdKey",
    "EtcdKeyArgs",
    "FileArgs",
    "FileCheck",
    "FindingReport",
    "FlannelArgs",
    "FlannelCheck",
    "HttpBackends",
    "HttpBackendsArgs",
    "Observation",
    "PodIps",
    "PodIpsArgs",
    "PodReachable",
    "PodReachableArgs",
    "PortArgs",
    "PortListening",
    "ServiceArgs",
    "ServiceStable",
    "build",
    "hint_text",
    "run_checks",
]
