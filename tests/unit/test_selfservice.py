"""A trainee's operations (labkit.classroom.selfservice), the parts that need no lab: which stage is theirs
now, their row of the grid, unknown trainees, and grid writes that wait for the class lock."""

from __future__ import annotations

import threading
import time

import pytest

from labkit.classroom import Classroom
from labkit.classroom.record import (
    FAILING,
    NOT_TRIED,
    VERIFIED,
    Cell,
    ClassRecord,
    lock_path,
    read_record,
    write_record,
)
from labkit.classroom.selfservice import SelfService, UnknownTrainee, current_stage
from labkit.kinds.compile import load_scenario
from labkit.lock import lab_lock
from labkit.machines.libvirt_host import LibvirtHost

CHECKED = [
    "cri",
    "etcd",
    "apiserver",
    "kubelet",
    "scheduler",
    "controller-manager",
    "node-config",
    "kube-proxy",
    "flannel",
    "kube-dns",
]


def cells(**statuses: str) -> dict[str, Cell]:
    return {stage.replace("_", "-"): Cell(status) for stage, status in statuses.items()}


def test_the_current_stage_follows_the_last_verified_one() -> None:
    scenario = load_scenario("three-node")
    assert [s.name for s in scenario.stages if s.checks] == CHECKED
    assert current_stage(scenario, cells(cri=VERIFIED, etcd=VERIFIED)).name == "apiserver"
    assert current_stage(scenario, cells(cri=VERIFIED, etcd=VERIFIED, apiserver=FAILING)).name == "apiserver"
    # what counts is the last verified stage, not a failing one before it
    assert current_stage(scenario, cells(cri=VERIFIED, etcd=FAILING, apiserver=VERIFIED)).name == "kubelet"


def test_with_nothing_verified_it_is_the_first_stage_with_checks_and_with_everything_the_last() -> None:
    scenario = load_scenario("three-node")
    assert current_stage(scenario, {}).name == "cri"  # ssh has no checks: it could never be verified
    assert current_stage(scenario, {s: Cell(VERIFIED) for s in CHECKED}).name == "kube-dns"


def test_a_row_is_the_last_check_of_each_stage_else_what_the_lab_verified() -> None:
    record = ClassRecord("c1", "three-node", "", "etcd", "c1-golden", ["alice"])
    record.set_cell("alice", "apiserver", Cell(FAILING, "port on node1: closed"))
    row = record.cells("alice", ["etcd", "apiserver", "kubelet"], verified=["cri", "etcd", "apiserver"])
    assert row == {
        "etcd": Cell(VERIFIED),
        "apiserver": Cell(FAILING, "port on node1: closed"),
        "kubelet": Cell(NOT_TRIED),
    }


@pytest.fixture
def desk() -> SelfService:
    write_record(ClassRecord("c1", "three-node", "", "etcd", "c1-golden", ["alice", "bob"]))
    return SelfService(Classroom("c1", host=LibvirtHost()))


@pytest.mark.parametrize("operation", ["trainee_view", "check_trainee", "reset_trainee", "retry_trainee"])
def test_an_unknown_trainee_is_refused_naming_the_trainees(desk: SelfService, operation: str) -> None:
    with pytest.raises(UnknownTrainee) as refused:
        getattr(desk, operation)("carol")
    assert "class c1 has no trainee 'carol'" in str(refused.value) and "alice, bob" in str(refused.value)


def test_a_grid_write_waits_while_another_holds_the_class_lock(desk: SelfService) -> None:
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # another thread opens the lock file itself: flock refuses it like another process
        with lab_lock(lock_path("c1"), "class c1", "check"):
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    desk._change_grid("check", lambda record: record.set_cell("alice", "etcd", Cell(FAILING, "seen")))
    holder.join()
    assert time.monotonic() - started >= 0.4
    record = read_record("c1")
    assert record is not None and record.cell("alice", "etcd") == Cell(FAILING, "seen")
