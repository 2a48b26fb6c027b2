"""``labkit hosts add|list|remove``: the pool of libvirt hosts labs go to.

Wired by labkit.cli.commands with ``app.add_typer(hosts.app, name="hosts")``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from labkit.cli.application import JsonOpt, _enter_host_namespace, _print_json, err, out
from labkit.hostsetup import pool
from labkit.hostsetup.pool import libvirt_host
from labkit.hostsetup.pool_survey import SURVEY_TIMEOUT, HostReport, survey
from labkit.machines.host_facts import HostFacts, visit_hosts

app = typer.Typer(
    help="The pool of libvirt hosts labs go to: this machine (`local`, always there) and hosts reached "
    "over SSH at qemu+ssh://USER@HOST/system URIs.",
    no_args_is_help=True,
)

TimeoutOpt = Annotated[
    float,
    typer.Option("--timeout", min=1.0, help="Seconds a host has to answer before it is called unreachable"),
]


def _size(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**30:.1f} GiB"


def _summary(facts: HostFacts) -> str:
    if not facts.reachable:
        return f"unreachable: {facts.reason}"
    return (
        f"reachable, {facts.accelerator}, {_size(facts.ram_free)} RAM free, "
        f"{_size(facts.disk_free)} free in pool {facts.pool}, {len(facts.labs)} lab(s)"
    )


@app.command("add")
def add_cmd(
    name: Annotated[str, typer.Argument(help="The host's name in labkit (lowercase letters, digits, '-')")],
    uri: Annotated[str, typer.Argument(help="Its libvirt URI, qemu+ssh://USER@HOST/system")],
    max_labs: Annotated[
        int | None,
        typer.Option("--max-labs", min=1, help="At most this many labs on the host (default: no limit)"),
    ] = None,
    timeout: TimeoutOpt = SURVEY_TIMEOUT,
) -> None:
    """Add a libvirt host to the pool and try it at once: an unreachable host is added with a warning."""
    host = pool.add_host(name, uri, max_labs)
    _enter_host_namespace()
    facts = visit_hosts([libvirt_host(host)], timeout)[0]
    limit = f", at most {max_labs} lab(s)" if max_labs else ""
    out.print(f"added host {name} ({uri}){limit}: {_summary(facts)}", markup=False)
    if not facts.reachable:
        err.print(
            f"warning: host {name} does not answer now; labs will not go there until it does "
            f"(check with `virsh -c '{uri}' version`)",
            markup=False,
        )


def _table(reports: list[HostReport]) -> None:
    header = (
        f"{'HOST':<12} {'STATE':<11} {'ACCEL':<5} {'RAM FREE':>10} {'DISK FREE':>10} {'LABS':>4} {'MAX':>4}"
    )
    out.print(header, markup=False)
    for report in reports:
        f, h = report.facts, report.host
        state = "reachable" if f.reachable else "UNREACHABLE"
        row = (
            f"{f.name:<12} {state:<11} {f.accelerator or '-':<5} {_size(f.ram_free):>10} "
            f"{_size(f.disk_free):>10} {len(report.labs):>4} {h.max_labs or '-':>4}"
        )
        out.print(row, markup=False)
    for report in reports:
        if report.labs:
            out.print(f"{report.facts.name}: labs {', '.join(report.lab_notes())}", markup=False)
        if not report.facts.reachable:
            out.print(f"{report.facts.name}: unreachable: {report.facts.reason}", markup=False)


@app.command("list")
def list_cmd(as_json: JsonOpt = False, timeout: TimeoutOpt = SURVEY_TIMEOUT) -> None:
    """List the pool: each host reachable or not (and why), its accelerator, free RAM and disk, and the labs
    living there (by their states, and by what its libvirt holds)."""
    _enter_host_namespace()
    reports = survey(timeout)
    if as_json:
        _print_json([r.to_json() for r in reports])
        return
    _table(reports)


@app.command("remove")
def remove_cmd(name: Annotated[str, typer.Argument(help="The host to take out of the pool")]) -> None:
    """Take a host out of the pool; refused for `local` and while labs live there."""
    host = pool.remove_host(name)
    out.print(f"removed host {name} ({host.uri}) from the pool", markup=False)
