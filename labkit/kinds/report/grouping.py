"""Failed checks grouped across nodes, so that what several nodes share is said once.

:func:`failures` turns per-node :class:`CheckResult` rows into one :class:`FailureGroup` per failed check:
the nodes it failed on, its hint as a :class:`~labkit.kinds.report.varying.Varying` (shared text, per-node values),
what each node saw, and its findings grouped by id (cause and fix shared, evidence per node).
:func:`summary_rows` folds the results table the same way: nodes with the same check, outcome and output
share a row. The per-node results themselves stay as they are (``--json`` keeps them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from labkit.kinds.checks.base import CheckResult, CheckStatus, FindingReport
from labkit.kinds.report.varying import Varying, vary


@dataclass(frozen=True)
class FindingGroup:
    id: str
    nodes: tuple[str, ...]
    cause: Varying
    fix: Varying
    evidence: dict[str, str]
    """node -> the node output that shows the finding."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "nodes": list(self.nodes),
            "cause": self.cause.to_json(),
            "fix": self.fix.to_json(),
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class FailureGroup:
    check: str
    nodes: tuple[str, ...]
    seen: dict[str, str]
    hint: Varying | None
    """None when the check has no hint (nodes whose hint is missing are left out of it)."""
    findings: tuple[FindingGroup, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "nodes": list(self.nodes),
            "seen": self.seen,
            "hint": self.hint.to_json() if self.hint else None,
            "findings": [f.to_json() for f in self.findings],
        }


def _by_check(results: Iterable[CheckResult]) -> dict[str, list[CheckResult]]:
    grouped: dict[str, list[CheckResult]] = {}
    for r in results:
        grouped.setdefault(r.check, []).append(r)
    return grouped


def _finding_groups(failed: list[CheckResult]) -> tuple[FindingGroup, ...]:
    """Findings by id, in the order they are first raised (the order a trainee should fix them)."""
    by_id: dict[str, dict[str, FindingReport]] = {}
    for r in failed:
        for finding in r.findings:
            # a kind may raise one id twice on a node (cni-conf-invalid per file): the node's reports are joined
            known = by_id.setdefault(finding.id, {}).get(r.node)
            by_id[finding.id][r.node] = finding if known is None else _joined(known, finding)
    return tuple(
        FindingGroup(
            id=fid,
            nodes=tuple(per_node),
            cause=vary({node: f.cause for node, f in per_node.items()}),
            fix=vary({node: f.fix for node, f in per_node.items()}),
            evidence={node: f.evidence for node, f in per_node.items()},
        )
        for fid, per_node in by_id.items()
    )


def _joined(first: FindingReport, second: FindingReport) -> FindingReport:
    def join(a: str, b: str) -> str:
        return a if a == b else f"{a}\n{b}" if a and b else a or b

    return FindingReport(
        first.id,
        join(first.cause, second.cause),
        join(first.fix, second.fix),
        join(first.evidence, second.evidence),
    )


def failures(results: Iterable[CheckResult]) -> list[FailureGroup]:
    """One group per check that failed on at least one node, in the results' order."""
    groups: list[FailureGroup] = []
    for check, rows in _by_check(results).items():
        failed = [r for r in rows if r.status == "fail"]
        if not failed:
            continue
        hints = {r.node: r.hint for r in failed if r.hint}
        groups.append(
            FailureGroup(
                check=check,
                nodes=tuple(r.node for r in failed),
                seen={r.node: r.seen for r in failed},
                hint=vary(hints) if hints else None,
                findings=_finding_groups(failed),
            )
        )
    return groups


@dataclass(frozen=True)
class Row:
    check: str
    nodes: tuple[str, ...]
    status: CheckStatus
    seen: str

    @property
    def ok(self) -> bool:
        return self.status == "pass"


def summary_rows(results: Iterable[CheckResult]) -> list[Row]:
    """The results table with the nodes that share a check, an outcome and an output in one row."""
    rows: list[Row] = []
    for check, per_node in _by_check(results).items():
        shared: dict[tuple[CheckStatus, str], list[str]] = {}
        for r in per_node:
            shared.setdefault((r.status, r.seen), []).append(r.node)
        rows += [Row(check, tuple(nodes), status, seen) for (status, seen), nodes in shared.items()]
    return rows


def unreachable_nodes(results: Iterable[CheckResult]) -> dict[str, str]:
    """Each node that did not answer, with what was seen the first time."""
    found: dict[str, str] = {}
    for r in results:
        if r.status == "unreachable":
            found.setdefault(r.node, r.seen)
    return found


__all__ = ["FailureGroup", "FindingGroup", "Row", "failures", "summary_rows", "unreachable_nodes"]
