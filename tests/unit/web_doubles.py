"""A class for the web page's tests: fixed grid and trainee pages, and a record of which operation was asked
for on whose lab. Only for tests of the web layer's own logic (who may see and do what, what a page shows);
the operations themselves run on real labs in the VM tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from labkit.classroom import ClassStatus
from labkit.classroom.classroom import TraineeRow
from labkit.classroom.record import FAILING, NOT_TRIED, VERIFIED, Cell
from labkit.classroom.selfservice import TraineeCells, TraineeView, UnknownTrainee
from labkit.errors import LabkitError
from labkit.lab import ResetReport

CLASS = "c1"
TRAINEES = ("alice", "bob")
STAGES = ["etcd", "apiserver"]
GUIDE = "# Run kube-apiserver\n\n<script>alert('guide')</script>\n\nRun `kubectl get nodes` on node1.\n"


def status() -> ClassStatus:
    rows = [
        TraineeRow(
            trainee,
            f"{CLASS}-{trainee}",
            True,
            {"etcd": Cell(VERIFIED), "apiserver": Cell(NOT_TRIED)},
        )
        for trainee in TRAINEES
    ]
    rows[0].isolated = True  # bob's lab lost its firewall rules (a restarted host)
    rows[1].cells["apiserver"] = Cell(
        FAILING, "port on node1: <b>8080</b> closed", "2024-04-12T09:30:00+00:00"
    )
    return ClassStatus(
        name=CLASS,
        scenario="three-node",
        stage="etcd",
        golden=f"{CLASS}-golden",
        stages=list(STAGES),
        trainees=rows,
        host={"host": "local", "ram_available_mib": 5120, "disk_free_mib": 40960, "ksm": None},
    )


@dataclass
class RecordingService:
    """The web page's ClassService with fixed answers; ``calls`` lists (operation, trainee) in order.
    ``failure`` makes every operation on a lab raise it; a check puts ``check_result`` on the grid."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    failure: LabkitError | None = None
    check_result: Cell = field(default_factory=lambda: Cell(VERIFIED, "", "2024-04-12T09:31:00+00:00"))
    grid: ClassStatus = field(default_factory=status)

    def status(self) -> ClassStatus:
        return self.grid

    def trainee_view(self, trainee: str, lang: str | None = None) -> TraineeView:
        self._known(trainee)
        self.calls.append(("trainee_view", trainee))
        row = next(r for r in self.grid.trainees if r.trainee == trainee)
        return TraineeView(
            trainee=trainee,
            lab=row.lab,
            stage="apiserver",
            title="Run kube-apiserver and point kubectl at it",
            guide=GUIDE,
            stages=list(STAGES),
            cells=row.cells,
            verified_sets=["etcd-ok"],
            lang=lang or "en",
        )

    def trainee_cells(self, trainee: str) -> TraineeCells:
        self._known(trainee)
        self.calls.append(("trainee_cells", trainee))
        row = next(r for r in self.grid.trainees if r.trainee == trainee)
        return TraineeCells("apiserver", dict(row.cells))

    def check_trainee(self, trainee: str, stage: str | None = None) -> Cell:
        self._act("check_trainee", trainee)
        row = next(r for r in self.grid.trainees if r.trainee == trainee)
        row.cells[stage or "apiserver"] = self.check_result
        return self.check_result

    def reset_trainee(self, trainee: str) -> ResetReport:
        self._act("reset_trainee", trainee)
        return ResetReport("etcd-ok", "etcd", 8.0, 3.9, {})

    def retry_trainee(self, trainee: str, stage: str | None = None) -> ResetReport:
        self._act("retry_trainee", trainee)
        return ResetReport("etcd-ok", "etcd", 8.2, 4.0, {})

    def _known(self, trainee: str) -> None:
        if trainee not in TRAINEES:
            raise UnknownTrainee(
                f"class {CLASS} has no trainee {trainee!r}", f"trainees: {', '.join(TRAINEES)}"
            )

    def _act(self, operation: str, trainee: str) -> None:
        self._known(trainee)
        self.calls.append((operation, trainee))
        if self.failure is not None:
            raise self.failure
