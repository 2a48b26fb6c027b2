"""`labkit class up|status|check|reset|access|serve|destroy`: thin; the work is in :mod:`labkit.classroom`, the
web page's in :mod:`labkit.web`. Errors propagate to the main CLI, which prints them as one line with an exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from labkit.classroom import Classroom
from labkit.classroom.access import DEFAULT_LISTEN, DEFAULT_WEB_URL
from labkit.classroom.record import FAILING, NOT_TRIED, UNREACHABLE, VERIFIED
from labkit.classroom.roster import numbered, read_roster
from labkit.classroom.tokens import issue_trainer_token
from labkit.cli.application import JsonOpt, _enter_host_namespace, _print_json, err, out
from labkit.cli.progress import RichReporter
from labkit.errors import UsageError

app = typer.Typer(
    help="A class: one verified golden lab and a lab per trainee cloned from it with its memory; the grid.",
    no_args_is_help=True,
)

ClassArg = Annotated[str, typer.Argument(help="Class name (labs are CLASS-golden and CLASS-<trainee>)")]
MARKS = {
    VERIFIED: "[green]✓ verified[/green]",
    FAILING: "[red]✗ failing[/red]",
    UNREACHABLE: "[yellow]? down[/yellow]",
}


@app.command("up")
def up_cmd(
    name: ClassArg,
    scenario: Annotated[str, typer.Argument(help="Scenario name or path")],
    until: Annotated[str, typer.Option("--until", help="The stage every trainee starts from (verified)")],
    trainees: Annotated[int | None, typer.Option("--trainees", help="Trainees trainee1..N")] = None,
    roster: Annotated[
        Path | None, typer.Option("--roster", help="File with one trainee name per line")
    ] = None,
    ksm: Annotated[
        bool,
        typer.Option("--ksm/--no-ksm", help="Turn KSM on for the clones (shared identical memory pages)"),
    ] = True,
    hosts: Annotated[
        str | None,
        typer.Option(
            "--hosts",
            help="Pool hosts to spread the trainee labs over, e.g. local,h2 (whole labs, by free RAM and disk)",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Solve the golden lab to STAGE once (or reuse it), then clone a lab per trainee, running, in seconds each.
    Run it again with more trainees: only the new ones are cloned."""
    if (trainees is None) == (roster is None):
        raise UsageError(
            "give either --trainees N or --roster FILE", "labkit class up CLASS SCENARIO --trainees 20"
        )
    names = read_roster(roster) if roster is not None else numbered(trainees or 0)
    _enter_host_namespace()
    spread = [h.strip() for h in hosts.split(",") if h.strip()] if hosts is not None else None
    report = Classroom(name).up(scenario, names, until, RichReporter(err), ksm=ksm, hosts=spread)
    if as_json:
        _print_json({**report.__dict__, "cloned": {k: v.__dict__ for k, v in report.cloned.items()}})
        return
    golden = "reused" if report.golden_reused else "solved and verified"
    out.print(f"class {name}: golden lab {report.golden} {golden} at {report.stage}")
    for trainee, cloned in report.cloned.items():
        out.print(f"  {trainee}: lab {cloned.lab} on host {cloned.host}, ready in {cloned.seconds:.1f} s")
    if report.already:
        out.print(f"  already there: {', '.join(report.already)}")
    if report.ksm_turned_on:
        out.print("  KSM turned on: the clones share their identical memory pages")
    out.print(f"done in {report.seconds:.1f} s; `labkit class status {name}` shows the grid")


@app.command("status")
def status_cmd(name: ClassArg, as_json: JsonOpt = False) -> None:
    """The grid: each trainee x stage (verified / failing with the first failing check / not tried)."""
    _enter_host_namespace()
    status = Classroom(name).status()
    if as_json:
        _print_json(status.to_json())
        return
    table = Table(title=f"class {status.name}: {status.scenario}, from {status.stage}")
    table.add_column("trainee")
    for stage in status.stages:
        table.add_column(stage)
    table.add_column("last check (UTC)")
    for row in status.trainees:
        cells = [_cell_text(row.cells[s].status, row.cells[s].detail) for s in status.stages]
        last = max((c.checked_at for c in row.cells.values()), default="")[11:19] or "-"  # UTC time of day
        table.add_row(row.trainee if row.exists else f"{row.trainee} (no lab)", *cells, last)
    out.print(table)
    out.print(_resources(status.host))
    down = {row.host: row.host_unreachable for row in status.trainees if row.host_unreachable}
    for host, why in down.items():
        labs = [row.trainee for row in status.trainees if row.host == host]
        out.print(f"host {host} ({', '.join(labs)}): {why}", markup=False)


def _cell_text(status: str, detail: str) -> str:
    if status == NOT_TRIED:
        return "[dim]·[/dim]"
    mark = MARKS.get(status, status)
    return f"{mark}\n[dim]{detail[:60]}[/dim]" if detail else mark


def _resources(host: dict[str, Any]) -> str:
    ksm = host.get("ksm")
    shared = f", KSM {'on' if ksm['run'] == 1 else 'off'} sharing {ksm['sharing_mib']} MiB" if ksm else ""
    return f"host {host['host']}: {host['ram_available_mib']} MiB RAM available, {host['disk_free_mib']} MiB disk free{shared}"


@app.command("check")
def check_cmd(
    name: ClassArg,
    stage: Annotated[str | None, typer.Argument(help="Stage to check (default: the class's stage)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a stage's checks on every trainee lab, a few at a time; read-only on the labs; updates the grid."""
    cells = Classroom(name).check(stage, RichReporter(err))
    if as_json:
        _print_json({t: c.__dict__ for t, c in cells.items()})
        return
    for trainee, cell in cells.items():
        out.print(f"{trainee}: {cell.status}" + (f" ({cell.detail})" if cell.detail else ""), markup=False)
    if any(c.status != VERIFIED for c in cells.values()):
        raise typer.Exit(1)


@app.command("reset")
def reset_cmd(
    name: ClassArg,
    trainee: Annotated[str, typer.Argument(help="The trainee whose lab is reset")],
    snapshot: Annotated[str, typer.Argument(help="Snapshot set to go back to, e.g. etcd-ok")],
) -> None:
    """The trainer's reset of one trainee's lab (the other labs are not touched)."""
    _enter_host_namespace()
    report = Classroom(name).reset(trainee, snapshot, RichReporter(err))
    out.print(f"{trainee}: back at {report.name} in {report.seconds:.1f} s")


@app.command("access")
def access_cmd(
    name: ClassArg,
    listen: Annotated[
        str, typer.Option("--listen", help="Address and port the class gateway (an sshd) listens on")
    ] = DEFAULT_LISTEN,
    address: Annotated[
        str | None,
        typer.Option(
            "--address", help="The address trainees reach this host at (default: the listen address)"
        ),
    ] = None,
    web_url: Annotated[
        str, typer.Option("--web-url", help="The class web page's address, for each trainee's page link")
    ] = DEFAULT_WEB_URL,
    rotate: Annotated[
        bool,
        typer.Option("--rotate", help="New keys and page links for every trainee; the old ones stop working"),
    ] = False,
    bundle_path: Annotated[
        str | None,
        typer.Option("--bundle-path", help="Where trainees unpack their bundle (default: ~/labkit-CLASS)"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Give each trainee an SSH bundle (key, ssh_config, known_hosts, README) that reaches their own lab's nodes
    and nothing else, through a class gateway sshd on this host. Run again: keys are kept, new trainees added."""
    room = Classroom(name)
    room.access_options(listen, address, web_url, rotate, bundle_path)  # everything checked before namespaces
    _enter_host_namespace()
    report = room.access(listen, address, web_url, rotate, bundle_path)
    if as_json:
        _print_json(report.to_json())
        return
    for warning in report.warnings:
        err.print(f"warning: {warning}", markup=False)
    out.print(
        f"class {name}: gateway {report.gateway} on {report.listen}; bundles reach it at {report.address} "
        f"port {report.port}",
        markup=False,
    )
    for bundle in report.bundles:
        made = "new key" if bundle.new_key else "key kept"
        out.print(f"  {bundle.trainee} ({made}): bundle {bundle.directory}/", markup=False)
        out.print(f"    hand out {bundle.tarball}; the trainee types: {bundle.command}", markup=False)
    for host, relay in report.relays.items():
        out.print(f"  labs on host {host}: reached through a relay ({relay})", markup=False)
    if rotate:
        out.print(f"  --rotate: {report.sessions_ended} open connection(s) with old keys ended", markup=False)


@app.command("serve")
def serve_cmd(
    name: ClassArg,
    listen: Annotated[
        str,
        typer.Option(
            "--listen",
            help="HOST:PORT to serve on; 0.0.0.0:8080 lets the room's machines in (default: this host only)",
        ),
    ] = "127.0.0.1:8080",
) -> None:
    """The class web page: the trainer's live grid, and a page per trainee (behind their own token) with the
    current stage's guide and buttons to check, reset or retry their own lab. Runs until Ctrl-C."""
    from labkit.web import create_app  # starlette and uvicorn load for this command only
    from labkit.web.serving import listening_socket, parse_listen, serve, url_host

    Classroom(name).record()  # no such class: one line, before anything is bound or issued
    host, port = parse_listen(listen)
    sock = listening_socket(host, port)  # on this host's network, before entering host mode's namespace
    port = sock.getsockname()[1]
    token = issue_trainer_token(name)
    _enter_host_namespace()
    out.print(f"class {name}: serving on http://{url_host(host)}:{port}/ (Ctrl-C stops it)", markup=False)
    out.print(
        f"trainer (a new token: the previous one stops working): http://{url_host(host)}:{port}/?token={token}",
        markup=False,
    )
    out.print(f"trainees: each one's own link comes from `labkit class access {name}`", markup=False)
    serve(create_app(name), sock)
    out.print(f"class {name}: the web page stopped")


@app.command("destroy")
def destroy_cmd(name: ClassArg) -> None:
    """Remove every trainee lab and the golden lab (by their records and labels, never by name prefix), and the
    class's trainee access (its gateway, bundles and page tokens)."""
    _enter_host_namespace()
    removed = Classroom(name).destroy()
    for lab, removal in removed.items():
        what = (
            f"{len(removal.domains)} VMs, {len(removal.volumes)} disks"
            if not removal.empty
            else "nothing left"
        )
        out.print(f"{lab}: {what}")
    out.print(f"class {name} destroyed")
