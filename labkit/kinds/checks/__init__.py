"""Check kinds: read-only probes of a node that return what they saw (they never assert, never change).

A stage's ``checks`` are run by :func:`labkit.lab.checking.run_checks` on the nodes each selects, in parallel. A failed check
carries what it saw, the stage author's hint and, for kinds that diagnose (``flannel``), named findings with
their cause and fix, all in the trainee's language. Each kind is one module under :mod:`labkit.kinds.checks.kinds`
plus one line in :data:`KINDS`.
"""

from __future__ import annotations

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
from labkit.kinds.templating import render_args
from labkit.model.scenario import Check, Guide, Stage

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


def result_of(
    check: Check, node: Any, seen: Observation, variables: dict[str, Any], lang: str
) -> CheckResult:
    """What one check saw on one node, as a result: with its hint (rendered for that node) when it failed."""
    hint = None if seen.ok else hint_text(check.hint, lang)
    if hint is not None:
        hint = render_args(hint, variables, f"hint of check {check.name}")
    findings = tuple(f.report(lang) for f in seen.findings)
    return CheckResult(check.name, node.name, seen.ok, seen.seen, hint, findings)


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
    "result_of",
]
