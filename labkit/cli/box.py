"""`labkit box build|list`: thin; the work is in :mod:`labkit.hostsetup.box`. Errors propagate to the main CLI."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.console import Console

from labkit.hostsetup import box

app = typer.Typer(
    help="Base boxes: build them locally from Debian packages (no download) and list the installed ones.",
    no_args_is_help=True,
)


class _PhasePrinter:
    """Shows the running phase as a spinner and prints each finished phase with its duration."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.status = console.status("starting")
        self.phase: str | None = None
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        self._finish()
        self.phase = message
        self.started = time.monotonic()
        self.status.update(f"{message}")

    def _finish(self) -> None:
        if self.phase is not None:
            elapsed = time.monotonic() - self.started
            self.console.print(f"[green]✓[/green] {self.phase} [dim]({elapsed:.1f} s)[/dim]")
            self.phase = None

    def __enter__(self) -> _PhasePrinter:
        self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.status.stop()
        if exc[0] is None:
            self._finish()
        elif self.phase is not None:
            self.console.print(f"[red]✗[/red] {self.phase}")


@app.command("build")
def build(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME", help="Box definition under boxes/ (e.g. debian12) or box name (labkit/debian12)."
        ),
    ] = box.DEFAULT_BOX,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even when the installed box matches the definition.")
    ] = False,
) -> None:
    """Build a box from boxes/NAME with mmdebstrap and add it to labkit's Vagrant home.

    Skipped when the installed box was built from the same definition (its version carries the
    definition's content hash). Needs root. The build log is kept under the box's build directory.
    """
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    started = time.monotonic()
    with _PhasePrinter(console) as printer:
        info = box.build_box(name, force=force, progress=printer)
    console.print(
        f"{info.name} v{info.version}: {info.size / box.MiB:.0f} MiB at {info.path} "
        f"[dim]({time.monotonic() - started:.0f} s)[/dim]"
    )


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array instead of a table.")] = False,
) -> None:
    """List the boxes installed in labkit's Vagrant home (libvirt provider); --json adds their paths.

    "current" means built from the box definition as it is now; an outdated box is rebuilt by
    `labkit box build` (or when a lab needs it).
    """
    boxes = box.list_boxes()
    if as_json:
        typer.echo(json.dumps([b.to_json() for b in boxes], indent=2))
        return
    if not boxes:
        typer.echo("no boxes installed; build one with `labkit box build`")
        return
    rows = [("NAME", "VERSION", "HASH", "SIZE", "CURRENT")]
    rows += [
        (
            info.name,
            info.version,
            info.content_hash[:12] if info.content_hash else "-",
            f"{info.size / box.MiB:.0f} MiB",
            "yes" if info.current else "no",
        )
        for info in boxes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:  # plain aligned text: never truncated, easy to grep
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
