"""`labkit artifacts list|fetch|import`: thin; the work is in :mod:`labkit.artifacts`.

Errors propagate to the main CLI, which prints them in one line with their hint and exit code.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from labkit import artifacts, paths
from labkit.errors import HostError, LabkitError

app = typer.Typer(
    help="Pinned downloads (Kubernetes, etcd, flannel, CNI plugins): list them, fetch them into the host "
    "cache with sha256 verification, or import them offline from a directory.",
    no_args_is_help=True,
)

ScenarioOpt = Annotated[
    str | None,
    typer.Argument(
        metavar="SCENARIO",
        help="Scenario name or path: only the artifacts its versions need (default: the whole catalog)",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")]
PARALLEL_DOWNLOADS = 4


def _select(scenario: str | None) -> tuple[list[artifacts.Artifact], str | None]:
    """The artifacts to work on and the scenario's own mirror (if its model has one)."""
    catalog = artifacts.load_catalog()
    if scenario is None:
        return catalog.artifacts, None
    from labkit.scenario import load_scenario

    loaded = load_scenario(scenario)
    mirror = getattr(loaded, "mirror", None)
    return catalog.for_versions(loaded.versions), mirror if isinstance(mirror, str) else None


@app.command("list")
def list_cmd(scenario: ScenarioOpt = None, json_out: JsonOpt = False) -> None:
    """List the catalog (or what SCENARIO needs): version, whether it is cached, where its sha256 comes from."""
    selected, _ = _select(scenario)
    rows = artifacts.status(selected)
    if json_out:
        typer.echo(json.dumps([row.to_json() for row in rows], indent=2))
        return
    console = Console(highlight=False, soft_wrap=False)
    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "VERSION", "CACHED", "SHA256 SOURCE"):
        table.add_column(column)
    for row in rows:
        cached = "[green]yes[/green]" if row.cached else "[yellow]no[/yellow]"
        table.add_row(row.artifact.name, row.artifact.version, cached, escape(row.source))
    console.print(table)
    missing = [row.artifact for row in rows if row.cached is None]
    if missing:
        console.print(
            f"[dim]{len(missing)} not cached: `labkit artifacts fetch{' ' + scenario if scenario else ''}` "
            "or `labkit artifacts import DIR`[/dim]"
        )


@app.command("fetch")
def fetch_cmd(
    scenario: ScenarioOpt = None,
    mirror: Annotated[
        str | None,
        typer.Option(
            "--mirror",
            metavar="URL",
            help="Mirror base URL: https://HOST/PATH is fetched from URL/HOST/PATH "
            f"(default: ${artifacts.MIRROR_ENV}, then the scenario's; '' for upstream)",
        ),
    ] = None,
) -> None:
    """Download what SCENARIO needs (default: the whole catalog) into the host cache, verifying sha256.

    Files already cached with the right sha256 are not downloaded again. A file whose sha256 differs is
    deleted and reported. Files with no published checksum (flanneld) have their sha256 recorded in the
    host's lock file at first download, with a warning.
    """
    selected, scenario_mirror = _select(scenario)
    base = artifacts.resolve_mirror(mirror, scenario_mirror)
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    failures: list[tuple[artifacts.Artifact, LabkitError]] = []
    done: list[artifacts.Artifact] = []
    guard = threading.Lock()
    with Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(bar_width=28),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:

        def warn(text: str) -> None:
            progress.console.print(f"[yellow]warning:[/yellow] {escape(text)}")

        def one(artifact: artifacts.Artifact, task: TaskID) -> None:
            def report(received: int, total: int | None) -> None:
                progress.update(task, completed=received, total=total)

            try:
                if artifacts.cached_path(artifact) is not None:
                    progress.update(task, description=f"{artifact} (cached)", total=1, completed=1)
                else:
                    artifacts.fetch(artifact, base if base is not None else "", report, warn=warn)
                    task_total = progress.tasks[task].total
                    progress.update(task, description=f"{artifact} ✓", completed=task_total)
                with guard:
                    done.append(artifact)
            except LabkitError as exc:
                progress.update(task, description=f"{artifact} [red]✗[/red]")
                progress.console.print(f"[red]✗[/red] {escape(str(exc))}")
                with guard:
                    failures.append((artifact, exc))

        tasks = [(a, progress.add_task(str(a), total=None)) for a in selected]
        with ThreadPoolExecutor(max_workers=PARALLEL_DOWNLOADS) as pool:
            for future in [pool.submit(one, a, t) for a, t in tasks]:
                future.result()
    if failures:
        order = {a.key: i for i, a in enumerate(selected)}
        names = ", ".join(str(a) for a, _ in sorted(failures, key=lambda f: order[f[0].key]))
        where = (
            f"the mirror {base} must serve <host>/<path> of each upstream URL"
            if base
            else (f"check the network or proxy, or use --mirror URL / {artifacts.MIRROR_ENV}")
        )
        raise HostError(
            f"{len(failures)} of {len(selected)} artifacts not fetched: {names}",
            f"see the messages above; {where}; or download the files elsewhere and run "
            "`labkit artifacts import DIR`",
        )
    where = f" via {base}" if base else ""
    console.print(f"{len(done)} artifacts cached{where} in {paths.artifact_cache_dir()}")


@app.command("import")
def import_cmd(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="Directory of downloaded files (searched recursively)")
    ],
    json_out: JsonOpt = False,
) -> None:
    """Fill the cache offline from DIR: files matched by name, each verified against its sha256.

    Files are matched to the catalog by file name; put files of different versions of the same name in
    directories named after the version. A mismatching file is refused and reported (exit code 3).
    Checksum files found in DIR (NAME.sha256, SHA256SUMS) verify artifacts the catalog does not pin.
    """
    console = Console(stderr=True, highlight=False, soft_wrap=True)

    def warn(text: str) -> None:
        console.print(f"[yellow]warning:[/yellow] {escape(text)}")

    results = artifacts.import_dir(directory, warn=warn)
    refused = [r for r in results if r.status == "refused"]
    if json_out:
        typer.echo(json.dumps([r.to_json() for r in results], indent=2))
    else:
        marks = {
            "imported": "[green]✓[/green]",
            "cached": "[green]=[/green]",
            "refused": "[red]✗[/red]",
            "ignored": "[dim]-[/dim]",
        }
        for r in results:
            label = f" {r.artifact}" if r.artifact else ""
            console.print(
                f"{marks[r.status]} {escape(str(r.file))}{escape(label)}: {r.status}, {escape(r.message)}"
            )
        counts = {s: sum(1 for r in results if r.status == s) for s in marks}
        console.print(", ".join(f"{n} {s}" for s, n in counts.items()))
    if refused:
        raise HostError(
            f"{len(refused)} file(s) refused: {', '.join(r.file.name for r in refused)}",
            "replace them with good copies (see the messages) and import again",
        )
    if not any(r.status in ("imported", "cached") for r in results):
        raise HostError(
            f"no artifact found in {directory}",
            "the files must keep their upstream names (e.g. kubelet, etcd-v3.4.14-linux-amd64.tar.gz)",
        )
