"""``labkit solve|check|retry``: work on a lab's stages: apply a stage's reference solution, run its checks
and explain every failure, or go back to the stage before to do it again."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from labkit.cli.application import JsonOpt, LabOpt, _enter_host_namespace, _print_json, err, out
from labkit.errors import LabkitError


def _print_stage_report(report: Any) -> None:
    table = Table(
        "node", "step", "result", title=f"stage {report.stage}" + (" (plan)" if report.plan else "")
    )
    rows = report.changes if report.plan else report.results
    for node, steps in rows.items():
        for step, outcome in steps.items():
            if report.plan:
                text = f"would change: {outcome.summary}" if outcome.changed else "no change"
            else:
                text = outcome.status + (f": {outcome.message}" if outcome.message else "")
            table.add_row(node, step, text)
    out.print(table)
    if report.plan:
        for node, steps in report.changes.items():
            for step, change in steps.items():
                if change.diff:
                    out.print(f"--- {node} {step}", markup=False)
                    out.print(change.diff, markup=False)
    out.print(report.summary(), markup=False)


def solve_cmd(
    stage: Annotated[str, typer.Argument(help="Stage to apply")],
    lab: LabOpt = None,
    only: Annotated[
        str | None, typer.Option(help="Comma-separated step names to run (like Ansible tags)")
    ] = None,
    node: Annotated[
        str | None,
        typer.Option("--node", help="Comma-separated nodes to run on (default: the stage's nodes)"),
    ] = None,
    plan: Annotated[
        bool, typer.Option("--plan", help="Show per node what would change (diffs), change nothing")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Apply a stage's reference solution on the lab's nodes, in parallel; a second run changes nothing."""
    from labkit.cli.progress import RichReporter
    from labkit.lab import Lab

    _enter_host_namespace()
    steps = {s.strip() for s in only.split(",") if s.strip()} if only else None
    nodes = {n.strip() for n in node.split(",") if n.strip()} if node else None
    the_lab = Lab.load(lab)
    report = the_lab.solve(stage, only=steps, nodes=nodes, plan=plan, reporter=RichReporter(err))
    verification = the_lab.last_verification
    if as_json:
        _print_json(
            {
                "stage": report.stage,
                "plan": report.plan,
                "changed": report.changed_count,
                "failed": report.failed,
                "results": {n: {k: v.status for k, v in r.items()} for n, r in report.results.items()},
                "changes": {n: {k: v.changed for k, v in c.items()} for n, c in report.changes.items()},
                "verified": verification.passed if verification else None,
                "checks": [r.to_json() for r in verification.results] if verification else [],
                "snapshot": verification.snapshot if verification else None,
                "kept": [k.to_json() for k in report.kept],
            }
        )
    else:
        _print_stage_report(report)
        if verification is not None:
            _print_checks(verification.stage, verification.results)
            if verification.snapshot:
                out.print(f"checks pass: snapshot {verification.snapshot} taken (verified)", markup=False)
    if report.failed:
        raise SystemExit(4)


_CHECK_STATUS = {"pass": "pass", "fail": "FAIL", "unreachable": "UNREACHABLE"}


def _print_checks(stage: str, results: list[Any], lang: str = "en") -> None:
    """One table row per check and outcome (nodes that saw the same share it), then one block per failed
    check: its nodes, findings and hint said once, what differs per node under it. A node that did not
    answer is named once, without any check's hint: nothing was learned about its checks."""
    from labkit.kinds.report.grouping import failures, summary_rows, unreachable_nodes
    from labkit.kinds.report.printing import failure_lines

    table = Table("check", "nodes", "result", "seen", title=f"stage {stage}")
    for row in summary_rows(results):
        table.add_row(row.check, ", ".join(row.nodes), _CHECK_STATUS[row.status], row.seen)
    out.print(table)
    for line in failure_lines(failures(results), lang):
        out.print(line, markup=False)
    for node, why in unreachable_nodes(results).items():
        out.print(f"{node} did not answer: {why} (is the VM running? `labkit status`)", markup=False)


def check_cmd(
    stage: Annotated[
        str | None,
        typer.Argument(help="Stage to check (default: the first stage with checks not yet verified)"),
    ] = None,
    lab: LabOpt = None,
    lang: Annotated[
        str | None, typer.Option(help="Language of hints and findings: ja or en (default: the locale)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a stage's checks on the right nodes and explain every failure (hints, findings with cause and fix);
    when all pass, show the stage's comprehension checklist. Exit 0 only if all pass."""
    from labkit.kinds.guides import checklist, default_language
    from labkit.kinds.report.grouping import failures
    from labkit.lab import Lab

    _enter_host_namespace()
    language = lang or default_language()
    the_lab = Lab.load(lab)
    name, results = the_lab.check(stage, language)
    passed = all(r.ok for r in results)
    items: list[str] = []
    if passed:
        try:
            items = checklist(the_lab.scenario, name, language, the_lab.state)
        except LabkitError:
            items = []  # a stage without a guide has no checklist; the pointer below still says where to look
    if as_json:
        _print_json(
            {
                "stage": name,
                "passed": passed,
                "results": [r.to_json() for r in results],
                "failures": [group.to_json() for group in failures(results)],
                "checklist": items,
            }
        )
    else:
        _print_checks(name, results, language)
        if passed:
            out.print(f"stage {name} verified. Snapshot it with `labkit snapshot {name}-ok`.", markup=False)
            if items:
                out.print("comprehension checklist:", markup=False)
                for item in items:
                    out.print(f"- [ ] {item}", markup=False)
            else:
                out.print(f"comprehension checklist: `labkit guide {name} --checklist`", markup=False)
    if not passed:
        # a node that did not answer is a lab problem (exit 4, as for other lab errors), not a failed check
        raise SystemExit(4 if any(r.unreachable for r in results) else 1)


def retry_cmd(
    stage: Annotated[str, typer.Argument(help="Stage to redo")],
    lab: LabOpt = None,
    solve: Annotated[
        bool, typer.Option("--solve", help="Apply the stage's solution after the reset")
    ] = False,
) -> None:
    """Reset to the snapshot of the stage before STAGE so it can be done again (--solve: and apply it)."""
    from labkit.cli.progress import RichReporter
    from labkit.lab import Lab

    _enter_host_namespace()
    the_lab = Lab.load(lab)
    report = the_lab.retry(stage, RichReporter(err))
    if not solve:
        out.print(
            f"back at {report.name} in {report.seconds:.1f} s: stage {stage} can be done again", markup=False
        )
        return
    out.print(f"back at {report.name} in {report.seconds:.1f} s; solving {stage}", markup=False)
    solved = the_lab.solve(stage, reporter=RichReporter(err))
    _print_stage_report(solved)
    verification = the_lab.last_verification
    if verification is not None:
        _print_checks(verification.stage, verification.results)
    if solved.failed:
        raise SystemExit(4)
