"""Rich progress bars for the CLI: one bar per VM, its current step, elapsed time."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column


class RichReporter:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}

    def start(self, nodes: list[str], total: int) -> None:
        self.finish()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.fields[node]}", table_column=Column(min_width=8, no_wrap=True)),
            BarColumn(bar_width=24),
            TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis")),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.tasks = {n: self.progress.add_task("waiting", total=total, node=n) for n in nodes}

    def step(self, node: str, text: str, done: int | None = None) -> None:
        if self.progress is None or node not in self.tasks:
            self.console.print(f"{node}: {text}", markup=False)
            return
        if done is None:
            self.progress.update(self.tasks[node], description=text)
        else:
            self.progress.update(self.tasks[node], description=text, completed=done)

    def note(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text, markup=False)
        else:
            self.console.print(text, markup=False)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
            self.tasks = {}
