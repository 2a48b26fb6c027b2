"""`labkit artifacts list|fetch|import|export`: thin; the work is in :mod:`labkit.artifacts`,
:mod:`labkit.artifacts.images` and :mod:`labkit.artifacts.offline`.

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
from labkit.artifacts import images, offline
from labkit.errors import HostError, LabkitError
from labkit.model.image_refs import Image

app = typer.Typer(
    help="Pinned downloads (Kubernetes, etcd, flannel, CNI plugins) and container images (by digest): list "
    "them, fetch them into the host cache verified, export them for an offline host, or import them there. "
    "A lab is offline: every binary and image its nodes get comes from this cache.",
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


def _select(scenario: str | None) -> tuple[list[artifacts.Artifact], list[Image], str | None]:
    """The artifacts and images to work on and the scenario's own mirror (if its model has one)."""
    catalog = artifacts.active_catalog()
    if scenario is None:
        return catalog.artifacts, catalog.images, None
    from labkit.kinds.compile import load_scenario

    loaded = load_scenario(scenario)
    mirror = getattr(loaded, "mirror", None)
    chosen = catalog.images_for(loaded.images.by_role(), f"{loaded.source or scenario}: images")
    return (
        catalog.for_versions(loaded.versions),
        chosen,
        mirror if isinstance(mirror, str) else None,
    )


@app.command("list")
def list_cmd(scenario: ScenarioOpt = None, json_out: JsonOpt = False) -> None:
    """List the catalog (or what SCENARIO needs): binaries and images, whether each is cached, and where its
    sha256 or digest comes from."""
    selected, chosen, _ = _select(scenario)
    rows = artifacts.status(selected)
    image_rows = images.status(chosen)
    if json_out:
        listing = [{"type": "artifact", **row.to_json()} for row in rows]
        listing += [{"type": "image", **row.to_json()} for row in image_rows]
        typer.echo(json.dumps(listing, indent=2))
        return
    console = Console(highlight=False, soft_wrap=False)
    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "VERSION", "CACHED", "SHA256 SOURCE"):
        table.add_column(column)
    for row in rows:
        cached = "[green]yes[/green]" if row.cached else "[yellow]no[/yellow]"
        table.add_row(row.artifact.name, row.artifact.version, cached, escape(row.source))
    console.print(table)
    if image_rows:
        table = Table(box=None, pad_edge=False)
        for column in ("IMAGE", "DIGEST", "CACHED", "DIGEST SOURCE"):
            table.add_column(column, overflow="fold")
        for image_row in image_rows:
            cached = "[green]yes[/green]" if image_row.cached else "[yellow]no[/yellow]"
            digest = image_row.digest or "(recorded at first pull)"
            table.add_row(escape(image_row.image.reference), digest, cached, escape(image_row.source))
        console.print(table)
    missing = [row.artifact.name for row in rows if row.cached is None]
    missing += [row.image.reference for row in image_rows if row.cached is None]
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
    """Download what SCENARIO needs (default: the whole catalog) into the host cache, verifying sha256, and
    pull its container images by digest with skopeo.

    Files already cached with the right sha256 are not downloaded again. A file whose sha256 differs is
    deleted and reported. Files with no published checksum (flanneld) have their sha256 recorded in the
    host's lock file at first download, with a warning. Images are pulled by their pinned digest into a
    docker-archive tagged with the reference pods use; through a mirror, REGISTRY/REPO@DIGEST is pulled from
    MIRROR-HOST/[MIRROR-PATH/]REGISTRY/REPO@DIGEST (plain HTTP for an http:// mirror).
    """
    selected, chosen, scenario_mirror = _select(scenario)
    base = artifacts.resolve_mirror(mirror, scenario_mirror)
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    with Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(bar_width=28),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        run = _FetchRun(progress, base if base is not None else "")
        run.fetch_artifacts(selected)
        run.fetch_images(chosen)
    if run.failures or run.image_failures:
        raise _not_fetched(run, selected, chosen, base)
    where = f" via {base}" if base else ""
    console.print(
        f"{len(run.done)} artifacts and {len(run.image_done)} images cached{where} "
        f"in {paths.artifact_cache_dir()}"
    )


class _FetchRun:
    """One `labkit artifacts fetch`: every artifact and image gets a progress line; a failure is printed and
    recorded, never raised, so that all of them are tried and the end names every one that failed."""

    def __init__(self, progress: Progress, mirror: str) -> None:
        self.progress = progress
        self.mirror = mirror
        self.done: list[artifacts.Artifact] = []
        self.failures: list[tuple[artifacts.Artifact, LabkitError]] = []
        self.image_done: list[Image] = []
        self.image_failures: list[Image] = []
        self.guard = threading.Lock()  # artifacts are fetched in parallel

    def warn(self, text: str) -> None:
        self.progress.console.print(f"[yellow]warning:[/yellow] {escape(text)}")

    def fetch_artifacts(self, selected: list[artifacts.Artifact]) -> None:
        tasks = [(a, self.progress.add_task(str(a), total=None)) for a in selected]
        with ThreadPoolExecutor(max_workers=PARALLEL_DOWNLOADS) as pool:
            for future in [pool.submit(self.fetch_artifact, a, t) for a, t in tasks]:
                future.result()

    def fetch_artifact(self, artifact: artifacts.Artifact, task: TaskID) -> None:
        progress = self.progress

        def report(received: int, total: int | None) -> None:
            progress.update(task, completed=received, total=total)

        try:
            if artifacts.cached_path(artifact) is not None:
                progress.update(task, description=f"{artifact} (cached)", total=1, completed=1)
            else:
                artifacts.fetch(artifact, self.mirror, report, warn=self.warn)
                task_total = progress.tasks[task].total
                progress.update(task, description=f"{artifact} ✓", completed=task_total)
            with self.guard:
                self.done.append(artifact)
        except LabkitError as exc:
            progress.update(task, description=f"{artifact} [red]✗[/red]")
            progress.console.print(f"[red]✗[/red] {escape(str(exc))}")
            with self.guard:
                self.failures.append((artifact, exc))

    def fetch_images(self, chosen: list[Image]) -> None:
        for image in chosen:
            self.fetch_image(image)

    def fetch_image(self, image: Image) -> None:
        progress = self.progress
        task = progress.add_task(f"image {image.name}", total=None)
        try:
            if images.cached(image) is not None:
                progress.update(task, description=f"image {image.name} (cached)", total=1, completed=1)
            else:
                images.fetch(image, self.mirror, warn=self.warn)
                progress.update(task, description=f"image {image.name} ✓", total=1, completed=1)
            self.image_done.append(image)
        except LabkitError as exc:
            progress.update(task, description=f"image {image.name} [red]✗[/red]")
            progress.console.print(f"[red]✗[/red] {escape(str(exc))}")
            self.image_failures.append(image)


def _not_fetched(
    run: _FetchRun, selected: list[artifacts.Artifact], chosen: list[Image], base: str | None
) -> HostError:
    """The error naming every artifact (in catalog order) and image that could not be fetched."""
    order = {a.key: i for i, a in enumerate(selected)}
    names = ", ".join(
        [str(a) for a, _ in sorted(run.failures, key=lambda f: order[f[0].key])]
        + [i.reference for i in run.image_failures]
    )
    where = (
        f"the mirror {base} must serve <host>/<path> of each upstream URL"
        if base
        else (f"check the network or proxy, or use --mirror URL / {artifacts.MIRROR_ENV}")
    )
    return HostError(
        f"{len(run.failures) + len(run.image_failures)} of {len(selected) + len(chosen)} artifacts and images "
        f"not fetched: {names}",
        f"see the messages above; {where}; or download the files elsewhere and run "
        "`labkit artifacts import DIR`",
    )


@app.command("import")
def import_cmd(
    directory: Annotated[
        Path,
        typer.Argument(
            metavar="DIR", help="Directory of downloaded or exported files (searched recursively)"
        ),
    ],
    json_out: JsonOpt = False,
) -> None:
    """Fill the cache offline from DIR: binaries matched by name, image archives by the reference they carry,
    each verified.

    Files are matched to the catalog by file name; put files of different versions of the same name in
    directories named after the version. Binaries are verified against the catalog's pins (checksum files
    lying in DIR are ignored: they are no pin); flanneld, which publishes none, against the lock file
    `labkit artifacts export` writes, or recorded at first import; an image archive is taken only with that
    lock's entry (its digest, archive sha256 and image ID). A mismatching file is refused and
    reported (exit code 3).
    """
    console = Console(stderr=True, highlight=False, soft_wrap=True)

    def warn(text: str) -> None:
        console.print(f"[yellow]warning:[/yellow] {escape(text)}")

    results = offline.import_all(directory, warn=warn)
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
            "the files must keep their upstream names (e.g. kubelet, etcd-v3.4.14-linux-amd64.tar.gz), "
            "or be a directory written by `labkit artifacts export`",
        )


@app.command("export")
def export_cmd(
    scenario: Annotated[str, typer.Argument(metavar="SCENARIO", help="Scenario name or path")],
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Directory to write (created if needed)")],
) -> None:
    """Write everything SCENARIO needs from this host's cache (binaries, image archives and their lock
    entries) to DIR, for an offline host: there `labkit artifacts import DIR` takes it back, verified.

    Everything must be cached first (`labkit artifacts fetch SCENARIO`); otherwise nothing is written and each
    missing binary and image is named.
    """
    selected, chosen, _ = _select(scenario)
    written = offline.export_dir(selected, chosen, directory, scenario)
    total = sum(p.stat().st_size for p in written)
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"exported {len(selected)} artifacts and {len(chosen)} images ({total / 1e6:.1f} MB) to {directory}; "
        f"on the offline host: `labkit artifacts import {directory}`"
    )
