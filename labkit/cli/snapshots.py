"""``labkit snapshot|snapshots|reset``: take a snapshot set of every VM of a lab, list the sets, and go
back to one in seconds."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from labkit.cli.application import JsonOpt, LabOpt, _enter_host_namespace, _print_json, err, out
from labkit.errors import UsageError


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
