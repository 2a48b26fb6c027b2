"""Failed checks as a trainee reads them: one block per check, shared text once, per node what differs.

The block of a check names the nodes it failed on, then its findings (cause, fix, the evidence each node
showed), then the stage author's hint, which may point at the findings "above". A text that reads differently
per node is printed once with ``‹node›``/``‹1›`` places and one line per node with its values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from labkit.kinds.report.grouping import FailureGroup, FindingGroup
from labkit.kinds.report.varying import Varying


@dataclass(frozen=True)
class Labels:
    fails: str
    """``{check}`` and ``{nodes}``."""
    finding_on: str
    hint: str
    cause: str
    fix: str
    seen: str
    seen_on: str


LABELS = {
    "en": Labels(
        "{check} fails on {nodes}", "{id} on {nodes}", "hint", "cause", "fix", "seen", "seen on {nodes}"
    ),
    "ja": Labels(
        "{check}: {nodes} で失敗", "{id} ({nodes})", "ヒント", "原因", "対処", "確認", "確認 ({nodes})"
    ),
}


EMPTY = '""'


def _names(nodes: Iterable[str]) -> str:
    return ", ".join(nodes)


def _block(label: str, text: str, indent: str) -> list[str]:
    """``label: text``, the text's further lines aligned under its first."""
    head, *rest = text.split("\n") if text else [""]
    pad = " " * (len(indent) + len(label) + 2)
    return [f"{indent}{label}: {head}".rstrip(), *(pad + line for line in rest)]


def _varying(label: str, text: Varying, indent: str) -> list[str]:
    if text.shared is None:
        lines = [f"{indent}{label}:"]
        for node, whole in text.texts.items():
            lines += _block(node, whole, indent + "  ")
        return lines
    lines = _block(label, text.shared, indent)
    for node, values in text.values.items():
        if values:
            shown = ", ".join(f"{place} = {value or EMPTY}" for place, value in values.items())
            lines.append(f"{indent}  {node}: {shown}")
    return lines


def _per_node(labels: Labels, outputs: dict[str, str], indent: str) -> list[str]:
    """What each node showed; nodes that showed the same thing share a line."""
    if len(set(outputs.values())) <= 1:
        output = next(iter(outputs.values()), "")
        return _block(labels.seen, output, indent) if output else []
    shared: dict[str, list[str]] = {}
    for node, output in outputs.items():
        shared.setdefault(output, []).append(node)
    lines: list[str] = []
    for output, nodes in shared.items():
        lines += _block(labels.seen_on.format(nodes=_names(nodes)), output or "-", indent)
    return lines


def _finding(labels: Labels, group: FindingGroup, check_nodes: tuple[str, ...]) -> list[str]:
    title = (
        group.id
        if group.nodes == check_nodes
        else labels.finding_on.format(id=group.id, nodes=_names(group.nodes))
    )
    return [
        f"  {title}",
        *_varying(labels.cause, group.cause, "    "),
        *_varying(labels.fix, group.fix, "    "),
        *_per_node(labels, group.evidence, "    "),
    ]


def failure_lines(groups: Iterable[FailureGroup], lang: str = "en") -> list[str]:
    """Every failed check's block, in the trainee's language (ja or en)."""
    labels = LABELS.get(lang, LABELS["en"])
    lines: list[str] = []
    for group in groups:
        lines.append(labels.fails.format(check=group.check, nodes=_names(group.nodes)))
        for finding in group.findings:
            lines += _finding(labels, finding, group.nodes)
        if group.hint is not None:
            lines += _varying(labels.hint, group.hint, "  ")
    return lines


__all__ = ["LABELS", "Labels", "failure_lines"]
