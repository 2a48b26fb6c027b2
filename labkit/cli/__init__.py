"""The ``labkit`` command line: parse, call the library, print. Nothing else lives here.

Every LabkitError becomes one line on stderr (plus one line per scenario problem) and its exit code;
``--debug`` shows the traceback instead. Host errors (libvirt, SSH, disk full, read-only) become one line with
a fix; any other exception is reported as an internal error (exit 70), with its traceback under ``--debug``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup
from typer.exceptions import TyperException

from labkit import __version__
from labkit.cli.failures import INTERNAL_ERROR_EXIT, host_error_line, internal_error_line
from labkit.errors import LabkitError, ScenarioError, UsageError
from labkit.kinds.compile import load_scenario
from labkit.machines.vagrant_keys import insecure_private_key
from labkit.machines.vagrantfile import RenderOptions, default_management_network, write_vagrantfile
from labkit.model.loading import available_scenarios
from labkit.model.scenario import Scenario

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_debug = os.environ.get("LABKIT_DEBUG") == "1"


def _print_error(exc: LabkitError) -> None:
    if isinstance(exc, ScenarioError):
        for problem in exc.problems:
            err.print(f"error: {problem}", markup=False)
        return
    err.print(f"error: {exc}", markup=False)


class LabkitGroup(TyperGroup):
    """Turns labkit's own errors into one-line messages and exit codes for every command and sub-command.

    Errors of the host and of the libraries labkit drives (libvirt, paramiko, the file system: disk full,
    read-only, permission denied) become one line with a fix; any other exception is a bug in labkit: one
    ``internal error`` line and exit 70. ``--debug`` shows the traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except LabkitError as exc:
            if _debug:
                raise
            _print_error(exc)
            raise SystemExit(exc.exit_code) from None
        except KeyboardInterrupt:
            if _debug:
                raise
            err.print("interrupted: run the same command again to finish, or `labkit destroy` to clean up")
            raise SystemExit(130) from None
        except (TyperException, typer.Exit, typer.Abort):
            raise  # the command line's own usage errors and exits: typer prints them
        except Exception as exc:  # broad on purpose: nothing reaches the user as a bare traceback
            if _debug:
                traceback.print_exception(exc, file=sys.stderr)
            known = host_error_line(exc)
            if known is None:  # a bug in labkit, never "your check failed"
                err.print(f"error: {internal_error_line(exc)}", markup=False)
                raise SystemExit(INTERNAL_ERROR_EXIT) from None
            line, code = known
            err.print(f"error: {line}", markup=False)
            raise SystemExit(code) from None


app = typer.Typer(
    cls=LabkitGroup,
    help="Build Kubernetes training labs on real VMs: bring a scenario up, solve and check its stages, "
    "snapshot verified stages and reset to them in seconds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ScenarioArg = Annotated[
    str, typer.Argument(help="Scenario name (see `labkit scenarios`) or path to a scenario.yaml")
]
LabOpt = Annotated[str | None, typer.Option("--name", "-n", help="Lab name (default: the scenario's name)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")]


def _version(value: bool) -> None:
    if value:
        out.print(f"labkit {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug details")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    """labkit: Kubernetes training labs on real VMs."""
    global _debug
    _debug = debug or os.environ.get("LABKIT_DEBUG") == "1"


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data))


@app.command("scenarios")
def scenarios_cmd(as_json: JsonOpt = False) -> None:
    """List the scenarios labkit knows: name, description, nodes and stages."""
    rows: list[dict[str, Any]] = []
    for name, path in available_scenarios().items():
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            rows.append({"name": name, "path": str(path), "error": f"{len(exc.problems)} problem(s)"})
            continue
        rows.append(
            {
                "name": name,
                "path": str(path),
                "description": scenario.description,
                "nodes": [n.name for n in scenario.nodes],
                "stages": [s.name for s in scenario.stages],
            }
        )
    if as_json:
        _print_json(rows)
        return
    table = Table("scenario", "nodes", "stages", "description")
    for row in rows:
        if "error" in row:
            table.add_row(row["name"], "-", "-", f"invalid: {row['error']} (labkit validate {row['name']})")
        else:
            table.add_row(row["name"], str(len(row["nodes"])), str(len(row["stages"])), row["description"])
    out.print(table)


@app.command("validate")
def validate_cmd(scenario: ScenarioArg, as_json: JsonOpt = False) -> None:
    """Check a scenario file completely (schema, addresses, networks, references) without touching any VM."""
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        if as_json:
            _print_json({"valid": False, "problems": [p.__dict__ for p in exc.problems]})
            raise SystemExit(exc.exit_code) from None
        raise
    if as_json:
        _print_json({"valid": True, "scenario": loaded.name, "path": str(loaded.source)})
        return
    out.print(
        f"{loaded.name}: valid ({len(loaded.nodes)} nodes, {len(loaded.stages)} stages) - {loaded.source}"
    )


@app.command("render")
def render_cmd(
    scenario: ScenarioArg,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the Vagrantfile into")],
    lab: LabOpt = None,
    accel: Annotated[str, typer.Option(help="libvirt driver for the domains: kvm or qemu")] = "qemu",
) -> None:
    """Render the scenario's multi-VM Vagrantfile into a directory (for reading or `vagrant validate`)."""
    loaded: Scenario = load_scenario(scenario)
    lab_name = lab or loaded.name
    if accel not in ("kvm", "qemu"):
        raise typer.BadParameter("must be kvm or qemu", param_hint="--accel")
    key = insecure_private_key()
    target = write_vagrantfile(
        loaded,
        RenderOptions(
            lab=lab_name,
            accel=accel,
            management_network=default_management_network(lab_name),
            ssh_private_keys=(str(key),) if key else (),
        ),
        out_dir,
    )
    out.print(f"wrote {target} ({len(loaded.nodes)} machines, lab {lab_name})")


def _enter_host_namespace() -> None:
    from labkit.hostsetup.hostmode import enter_host_namespace

    enter_host_namespace()


@app.command("up")
def up_cmd(
    scenario: ScenarioArg,
    lab: LabOpt = None,
    accel: Annotated[
        str | None, typer.Option(help="kvm, qemu or auto (default: the scenario's, else auto-detected)")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Then solve every stage in order up to and including this one")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Bring a lab up: validate, render, boot every VM, configure hostnames, IPs and /etc/hosts.

    Running it again on a running lab converges: it boots nothing and reports what it skipped.
    With --until STAGE, the stages up to STAGE are solved after the boot.
    """
    from labkit.cli.progress import RichReporter
    from labkit.lab import Lab

    the_lab = Lab.create(scenario, lab)  # enters host mode's namespace itself, after building a missing box
    stages = the_lab.stages_until(until) if until else []
    the_lab.preflight(stages)  # a missing artifact stops here, before any VM boots
    report = the_lab.up(RichReporter(err), accel=accel)
    for stage in stages:
        stage_report = the_lab.solve(stage, reporter=RichReporter(err))
        if not as_json:
            out.print(stage_report.summary(), markup=False)
        if stage_report.failed:
            if as_json:
                err.print(stage_report.summary(), markup=False)
            raise SystemExit(4)
    if as_json:
        _print_json(
            {
                "lab": report.lab,
                "accel": report.accel.driver,
                "booted": report.booted,
                "already_running": report.already_running,
                "changed": report.changed,
                "seconds": round(report.seconds, 1),
            }
        )
        return
    if report.booted:
        out.print(f"booted {', '.join(report.booted)}", markup=False)
    if report.already_running:
        out.print(f"skipped (already running): {', '.join(report.already_running)}", markup=False)
    for node, changes in report.changed.items():
        out.print(
            f"{node}: {'changed ' + ', '.join(changes) if changes else 'configuration unchanged'}",
            markup=False,
        )
    verdict = "nothing to do, lab already up" if report.converged else "lab is up"
    out.print(
        f"{report.lab}: {verdict} in {report.seconds:.0f} s ({report.accel.driver}). "
        f"Next: labkit ssh node1 --name {report.lab}",
        markup=False,
    )


@app.command("status")
def status_cmd(lab: LabOpt = None, as_json: JsonOpt = False) -> None:
    """Show a lab's nodes, roles, IPs, VM states, accelerator, current stage and snapshots."""
    from labkit.lab import Lab

    _enter_host_namespace()
    status = Lab.load(lab).status()
    if as_json:
        _print_json(status.to_json())
        return
    table = Table("node", "roles", "lab IP", "management IP", "state", title=f"lab {status.lab}")
    for node in status.nodes:
        table.add_row(node.name, ", ".join(node.roles), node.lab_ip, node.management_ip or "-", node.state)
    out.print(table)
    out.print(f"scenario {status.scenario}, accel {status.accel_reason}", markup=False)
    out.print(f"disk: {status.disk_bytes / 2**30:.2f} GiB (VM disks and their snapshots)", markup=False)
    out.print(
        f"stage: {status.current_stage or 'none solved yet'}; "
        f"snapshots: {', '.join(status.snapshots) or 'none'}",
        markup=False,
    )
    if status.rediscovered:
        out.print(f"(state rebuilt from libvirt: {status.directory} was missing)", markup=False)


@app.command("ssh", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ssh_cmd(
    ctx: typer.Context,
    node: Annotated[str, typer.Argument(help="Node to log in to")],
    lab: LabOpt = None,
) -> None:
    """Open a shell on a node, or run `-- COMMAND` there, with the lab's own SSH key."""
    from labkit.lab import Lab

    _enter_host_namespace()
    argv = Lab.load(lab).ssh_argv(node, list(ctx.args))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


@app.command("guide")
def guide_cmd(
    stage: Annotated[str, typer.Argument(help="Stage whose guide to print (see `labkit scenarios`)")],
    lang: Annotated[str | None, typer.Option(help="ja or en (default: from the locale)")] = None,
    lab: LabOpt = None,
    scenario: Annotated[
        str | None, typer.Option(help="Scenario to read when no lab exists (default: the lab's)")
    ] = None,
    checklist_only: Annotated[bool, typer.Option("--checklist", help="Print only the checklist")] = False,
) -> None:
    """Print a stage's instructions with this lab's real values filled in, and its comprehension checklist."""
    from labkit.kinds.guides import checklist, default_language, render_guide
    from labkit.lab import Lab, known_labs

    language = lang or default_language()
    if scenario is not None:
        loaded, state = load_scenario(scenario), None
    elif lab is not None or known_labs():
        the_lab = Lab.load(lab)
        loaded, state = the_lab.scenario, the_lab.state
    else:
        raise UsageError("no lab on this host to take values from", "give --scenario NAME (e.g. three-node)")
    if checklist_only:
        for item in checklist(loaded, stage, language, state):
            out.print(f"- [ ] {item}", markup=False)
        return
    out.print(render_guide(loaded, stage, language, state), markup=False)


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


@app.command("solve")
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


@app.command("check")
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


@app.command("snapshot")
def snapshot_cmd(
    name: Annotated[
        str, typer.Argument(help="Snapshot set name (or `delete` followed by the name to delete)")
    ],
    target: Annotated[str | None, typer.Argument(help="With `delete`: the snapshot set to delete")] = None,
    lab: LabOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing snapshot of that name")] = False,
    disk_only: Annotated[
        bool,
        typer.Option(
            "--disk-only",
            help="For hosts short of disk: shut the VMs down, snapshot their disks without memory, boot them "
            "again. Saves the VMs' memory image (~200 MiB per VM) but costs a boot now and at every reset.",
        ),
    ] = False,
) -> None:
    """Snapshot every VM of the lab under one name, all or nothing (`labkit snapshot delete NAME` removes one).

    Snapshots are internal qcow2 snapshots with memory, taken with the VMs running (about 1 s per VM);
    a reset to one takes seconds. With --disk-only the VMs are shut down for it and a reset boots them.
    """
    from labkit.lab import Lab

    _enter_host_namespace()
    the_lab = Lab.load(lab)
    if name == "delete":
        if target is None:
            raise UsageError("labkit snapshot delete: which snapshot?", "labkit snapshot delete NAME")
        nodes = the_lab.delete_snapshot(target)
        out.print(f"deleted snapshot {target} on {', '.join(nodes)}", markup=False)
        return
    if target is not None:
        raise UsageError(f"unexpected argument {target!r}", "labkit snapshot NAME [--force]")
    record = the_lab.snapshot(name, force=force, disk_only=disk_only)
    stage = f" at stage {record.stage}" if record.stage else ""
    kind = " (disk only: a reset to it boots the VMs)" if disk_only else ""
    out.print(f"snapshot {name} taken on {len(the_lab.scenario.nodes)} VMs{stage}{kind}", markup=False)


@app.command("snapshots")
def snapshots_cmd(lab: LabOpt = None, as_json: JsonOpt = False) -> None:
    """List the lab's snapshot sets: name, stage, time taken, verified, size on disk."""
    from labkit.lab import Lab

    _enter_host_namespace()
    the_lab = Lab.load(lab)
    sets = the_lab.snapshots()
    all_nodes = [n.name for n in the_lab.scenario.nodes]
    rows: list[dict[str, Any]] = [
        {
            "name": s.record.name,
            "stage": s.record.stage,
            "taken": s.record.taken,
            "verified": s.record.verified,
            "disk_only": s.record.disk_only,
            "complete": s.complete(all_nodes),
            "nodes": s.nodes,
            "vm_state_bytes": s.size_bytes,
        }
        for s in sets
    ]
    if as_json:
        _print_json({"lab": the_lab.name, "disk_bytes": the_lab.disk_usage(), "snapshots": rows})
        return
    table = Table("snapshot", "stage", "taken", "verified", "VM state", "nodes", title=f"lab {the_lab.name}")
    for row in rows:
        size = f"{row['vm_state_bytes'] / 2**20:.0f} MiB" if row["vm_state_bytes"] else "-"
        if row["disk_only"]:
            size = "none (disk only)"
        nodes = "all" if row["complete"] else f"only {', '.join(row['nodes'])}"
        table.add_row(
            row["name"],
            row["stage"] or "-",
            row["taken"] or "-",
            "yes" if row["verified"] else "no",
            size,
            nodes,
        )
    out.print(table)
    out.print(f"the lab's disks take {the_lab.disk_usage() / 2**30:.2f} GiB", markup=False)


@app.command("reset")
def reset_cmd(
    name: Annotated[str, typer.Argument(help="Snapshot set to go back to")],
    lab: LabOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revert every VM of the lab to a snapshot set, set guest clocks, and wait until every node answers."""
    from labkit.cli.progress import RichReporter
    from labkit.lab import Lab

    _enter_host_namespace()
    report = Lab.load(lab).reset(name, RichReporter(err))
    if as_json:
        _print_json(report.__dict__)
        return
    worst = max((abs(v) for v in report.clock_offsets.values()), default=0.0)
    out.print(
        f"reset to {name} in {report.seconds:.1f} s (revert {report.revert_seconds:.1f} s); "
        f"guest clocks within {worst:.1f} s",
        markup=False,
    )


@app.command("retry")
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


@app.command("destroy")
def destroy_cmd(
    lab: Annotated[str | None, typer.Argument(help="Lab to destroy (default: the only lab)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a lab's VMs, snapshots, volumes and networks; nothing is left in libvirt."""
    from labkit.lab import Lab, destroy_by_name

    _enter_host_namespace()
    name = lab or Lab.load(None).name
    removed = destroy_by_name(name)
    if as_json:
        _print_json({"lab": name, **removed.__dict__})
        return
    if removed.empty:
        out.print(f"{name}: nothing left to remove", markup=False)
        return
    out.print(
        f"{name}: removed {len(removed.domains)} domains, {len(removed.snapshots)} snapshots, "
        f"{len(removed.volumes)} volumes, {len(removed.networks)} networks",
        markup=False,
    )


@app.command("doctor")
def doctor_cmd(
    vms: Annotated[int, typer.Option(help="How many VMs the free-RAM check plans for")] = 3,
    as_json: JsonOpt = False,
) -> None:
    """Check the host's prerequisites and print the command that fixes each missing one."""
    from labkit.hostsetup.doctor import run_doctor

    _enter_host_namespace()
    checks = run_doctor(vms=vms)
    if as_json:
        _print_json([c.__dict__ for c in checks])
    else:
        for check in checks:
            mark = "OK  " if check.ok else "FAIL"
            out.print(f"{mark} {check.name}: {check.detail}", markup=False)
            if not check.ok and check.fix:
                out.print(f"     fix: {check.fix}", markup=False)
    if not all(c.ok for c in checks):
        raise SystemExit(3)


def _add_sub_apps() -> None:
    from labkit.cli import artifacts as cli_artifacts
    from labkit.cli import box as cli_box
    from labkit.cli import host as cli_host

    app.add_typer(cli_artifacts.app, name="artifacts")
    app.add_typer(cli_box.app, name="box")
    app.add_typer(cli_host.app, name="host")


_add_sub_apps()


def main() -> None:
    app(prog_name="labkit")


if __name__ == "__main__":
    main()
    sys.exit(0)
