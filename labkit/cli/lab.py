"""``labkit doctor|up|status|ssh|destroy``: a lab's life on this host, from checking the host's
prerequisites to removing every VM."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from labkit.cli.application import JsonOpt, LabOpt, ScenarioArg, _enter_host_namespace, _print_json, err, out

if TYPE_CHECKING:
    from labkit.lab import UpReport

# `labkit ssh NODE -- COMMAND`: everything after the node is the remote command, options included
SSH_CONTEXT_SETTINGS: dict[str, Any] = {"allow_extra_args": True, "ignore_unknown_options": True}


def up_cmd(
    scenario: ScenarioArg,
    lab: LabOpt = None,
    accel: Annotated[
        str | None, typer.Option(help="kvm, qemu or auto (default: the scenario's, else auto-detected)")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Then solve every stage in order up to and including this one")
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host", help="The pool host the lab runs on (`labkit hosts list`; default: this machine, local)"
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Bring a lab up: validate, render, boot every VM, configure hostnames, IPs and /etc/hosts.

    Running it again on a running lab converges: it boots nothing and reports what it skipped.
    With --until STAGE, the stages up to STAGE are solved after the boot. With --host, the VMs run on that
    libvirt host of the pool; every later command finds the lab there by itself.
    """
    from labkit.cli.progress import RichReporter
    from labkit.hostsetup.pool import libvirt_host
    from labkit.lab import Lab

    where = libvirt_host(host) if host else None  # an unknown host: one line, before anything
    the_lab = Lab.create(
        scenario, lab, where
    )  # enters host mode's namespace itself, after building a missing box
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
    _print_up_report(report)


def _print_up_report(report: UpReport) -> None:
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


def status_cmd(lab: LabOpt = None, as_json: JsonOpt = False) -> None:
    """Show a lab's nodes, roles, IPs, VM states, accelerator, current stage and snapshots."""
    from labkit.lab import Lab

    _enter_host_namespace()
    status = Lab.load(lab).status()
    if as_json:
        _print_json(status.to_json())
        return
    where = "" if status.host == "local" else f" on host {status.host}"
    table = Table("node", "roles", "lab IP", "management IP", "state", title=f"lab {status.lab}{where}")
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
