"""What the class web page needs from a class: the grid and one trainee's operations.

:class:`labkit.classroom.selfservice.SelfService` is the real one; tests of the page's access rules give a
double with fixed data."""

from __future__ import annotations

from typing import Protocol

from labkit.classroom import ClassStatus
from labkit.classroom.record import Cell
from labkit.classroom.selfservice import TraineeCells, TraineeView
from labkit.lab import ResetReport


class ClassService(Protocol):
    def status(self) -> ClassStatus:
        """The trainer's grid."""
        ...

    def trainee_view(self, trainee: str, lang: str | None = None) -> TraineeView:
        """One trainee's page; UnknownTrainee when the class has no such trainee."""
        ...

    def trainee_cells(self, trainee: str) -> TraineeCells:
        """The trainee's current stage and cells alone (cheap: what their page polls)."""
        ...

    def check_trainee(self, trainee: str, stage: str | None = None) -> Cell:
        """Check the trainee's current stage (or ``stage``); the grid records it."""
        ...

    def reset_trainee(self, trainee: str) -> ResetReport:
        """Reset the trainee's lab to its most recent verified snapshot set."""
        ...

    def retry_trainee(self, trainee: str, stage: str | None = None) -> ResetReport:
        """Reset the trainee's lab to the verified set before their current stage (or ``stage``)."""
        ...
