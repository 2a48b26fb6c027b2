"""What a trainee may do on their own lab, and the trainer on any one: see the current stage and its guide,
check it, reset to the last verified snapshot set, retry the stage. The class web page only calls these.

    from labkit.classroom import Classroom
    from labkit.classroom.selfservice import SelfService
    desk = SelfService(Classroom("k8s-0412"))
    view = desk.trainee_view("alice")       # stage, guide (Markdown), alice's cells, her verified sets
    desk.check_trainee("alice")             # her current stage's checks; the grid shows the result
    desk.reset_trainee("alice")             # back to her most recent verified snapshot set

A trainee's check verifies as ``labkit solve`` does after its steps: a stage that passes is snapshotted
(``<stage>-ok``, verified), so "reset" goes back to the last stage they got right. ``class check`` only reads.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from labkit.classroom.classroom import Classroom, ClassStatus, first_failure
from labkit.classroom.record import VERIFIED, Cell, ClassRecord, lock_path, write_record
from labkit.classroom.roster import trainee_lab
from labkit.errors import LabkitError, UsageError
from labkit.kinds.guides import default_language, render_guide
from labkit.lab import Lab, ResetReport
from labkit.lock import lab_lock
from labkit.machines.snapshots import SnapshotSet
from labkit.model.scenario import Scenario, Stage
from labkit.progress import Reporter

GRID_LOCK_WAIT = 10.0
"""Seconds a grid update waits for the class lock (another check's write takes milliseconds)."""


class UnknownTrainee(UsageError):
    """The class has no such trainee."""


@dataclass
class TraineeView:
    """What a trainee's page shows."""

    trainee: str
    lab: str
    stage: str
    """The current stage: the first stage with checks after the last one verified, else the last one."""
    title: str
    guide: str
    """The stage's guide, Markdown with this lab's values; empty when it cannot be shown (see guide_problem)."""
    stages: list[str]
    cells: dict[str, Cell]
    verified_sets: list[str] = field(default_factory=list)
    lang: str = "en"
    guide_problem: str = ""


@dataclass
class TraineeCells:
    """What a trainee's page polls: their current stage and their cells, from the class record and the
    lab's state (no VM, no libvirt)."""

    stage: str
    cells: dict[str, Cell]

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "cells": {name: asdict(cell) for name, cell in self.cells.items()}}


def current_stage(scenario: Scenario, cells: dict[str, Cell]) -> Stage:
    """The first stage with checks after the last verified one (the last one when all are); a stage without
    checks is passed over: it can never be verified, so the page would stay on it."""
    checked = [s for s in scenario.stages if s.checks] or scenario.stages
    verified = [i for i, s in enumerate(checked) if cells.get(s.name, Cell()).status == VERIFIED]
    if not verified:
        return checked[0]
    return checked[min(verified[-1] + 1, len(checked) - 1)]


def verified_sets(lab: Lab) -> list[SnapshotSet]:
    """The lab's complete ``<stage>-ok`` sets taken after their stage's checks passed, oldest first."""
    nodes = [n.name for n in lab.scenario.nodes]
    stage_of = {s.snapshot_name: s.name for s in lab.scenario.stages}
    found = [
        s
        for s in lab.snapshots()
        if s.record.verified and s.complete(nodes) and stage_of.get(s.record.name) == s.record.stage
    ]
    return sorted(found, key=lambda s: s.record.taken)


class SelfService:
    """One class's trainee operations, each acting on one trainee's lab alone."""

    def __init__(self, room: Classroom) -> None:
        self.room = room
        self._grid_writes = threading.Lock()

    def status(self) -> ClassStatus:
        """The trainer's grid (``labkit class status``)."""
        return self.room.status()

    def trainee_view(self, trainee: str, lang: str | None = None) -> TraineeView:
        """The trainee's current stage with its guide in ``lang`` (default: the locale's), their cells, and
        the verified snapshot sets their lab can go back to."""
        record = self._record_with(trainee)
        lab = self._lab(trainee)
        stages, cells = self._row(record, trainee, lab)
        stage = current_stage(lab.scenario, cells)
        lang = lang or default_language()
        view = TraineeView(
            trainee=trainee,
            lab=lab.name,
            stage=stage.name,
            title=(stage.title_ja if lang == "ja" and stage.title_ja else stage.title),
            guide="",
            stages=stages,
            cells=cells,
            verified_sets=[s.record.name for s in verified_sets(lab)],
            lang=lang,
        )
        try:
            view.guide = render_guide(lab.scenario, stage.name, lang, lab.state)
        except LabkitError as exc:
            view.guide_problem = str(exc)
        return view

    def trainee_cells(self, trainee: str) -> TraineeCells:
        """The trainee's current stage and cells, as their page shows them."""
        record = self._record_with(trainee)
        lab = self._lab(trainee)
        _, cells = self._row(record, trainee, lab)
        return TraineeCells(current_stage(lab.scenario, cells).name, cells)

    def check_trainee(self, trainee: str, stage: str | None = None) -> Cell:
        """Run ``stage``'s checks (default: the trainee's current stage) on their lab, verified as
        ``labkit solve`` does: passing, the lab is snapshotted as ``<stage>-ok`` (verified), the set "reset" goes back to.
        The grid records what was seen."""
        record = self._record_with(trainee)
        lab = self._lab(trainee)
        target = stage or current_stage(lab.scenario, self._row(record, trainee, lab)[1]).name
        cell = first_failure(lab.verify(target).results)
        self._change_grid("check", lambda record: record.set_cell(trainee, target, cell))
        return cell

    def reset_trainee(self, trainee: str, reporter: Reporter | None = None) -> ResetReport:
        """Reset the trainee's lab to its most recent verified snapshot set; the grid forgets their checks."""
        self._record_with(trainee)
        lab = self._lab(trainee)
        found = verified_sets(lab)
        if not found:
            raise UsageError(
                f"lab {lab.name} has no verified snapshot set to go back to",
                f"ask the trainer: `labkit class reset {self.room.name} {trainee} SNAPSHOT`",
            )
        report = lab.reset(found[-1].record.name, reporter)
        self._change_grid("reset", lambda record: record.grid.pop(trainee, None))
        return report

    def retry_trainee(
        self, trainee: str, stage: str | None = None, reporter: Reporter | None = None
    ) -> ResetReport:
        """Reset the trainee's lab to the verified snapshot set before ``stage`` (default: their current
        stage) so they can do it again; the grid forgets their checks."""
        record = self._record_with(trainee)
        lab = self._lab(trainee)
        target = stage or current_stage(lab.scenario, self._row(record, trainee, lab)[1]).name
        report = lab.retry(target, reporter)
        self._change_grid("retry", lambda record: record.grid.pop(trainee, None))
        return report

    # ---- helpers --------------------------------------------------------------------------------------

    def _record_with(self, trainee: str) -> ClassRecord:
        record = self.room.record()
        if trainee not in record.trainees:
            raise UnknownTrainee(
                f"class {self.room.name} has no trainee {trainee!r}",
                f"trainees: {', '.join(record.trainees) or 'none'}",
            )
        return record

    def _lab(self, trainee: str) -> Lab:
        return Lab.load(trainee_lab(self.room.name, trainee))

    @staticmethod
    def _row(record: ClassRecord, trainee: str, lab: Lab) -> tuple[list[str], dict[str, Cell]]:
        """The grid's stages (those with checks) and the trainee's cell for each."""
        stages = [s.name for s in lab.scenario.stages if s.checks]
        verified = list(lab.state.verified_stages) if lab.state else []
        return stages, record.cells(trainee, stages, verified)

    def _change_grid(self, action: str, change: Callable[[ClassRecord], object]) -> None:
        """Read, change and write the class record under the class lock; web requests of this process
        queue on a thread lock first, and another process's short hold of the class lock is waited for."""
        with self._grid_writes, contextlib.ExitStack() as held:
            deadline = time.monotonic() + GRID_LOCK_WAIT
            while True:
                try:
                    held.enter_context(lab_lock(lock_path(self.room.name), f"class {self.room.name}", action))
                    break
                except UsageError:  # busy: `class check` writing, or `class up` cloning (then we give up)
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            record = self.room.record()
            change(record)
            write_record(record)


__all__ = ["SelfService", "TraineeView", "UnknownTrainee", "current_stage", "verified_sets"]
