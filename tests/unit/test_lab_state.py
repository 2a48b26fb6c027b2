"""A lab's state under its lock, and what `retry` accepts (libvirt's snapshot listing given as data)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from labkit.errors import UsageError
from labkit.kinds.compile import load_scenario
from labkit.lab import Lab
from labkit.lock import lab_lock
from labkit.machines.snapshots import SnapshotRecord, SnapshotSet
from labkit.state import LabState, NodeState, read_state, write_state

from .scenario_factory import scenario_data, write_scenario

NODES = ["node1", "node2"]


def _lab(tmp_path: Path) -> Lab:
    scenario = load_scenario(write_scenario(tmp_path / "s", scenario_data()))
    state = LabState(
        lab="t",
        scenario=scenario.name,
        scenario_path=str(scenario.source),
        accel="qemu",
        accel_reason="r",
        management_network="m",
        management_cidr="172.29.9.0/24",
        lab_network="l",
        created_at="now",
        nodes={n: NodeState(name=n, domain=f"labkit-t-{n}", management_ip="192.0.2.1") for n in NODES},
    )
    lab = Lab(scenario, "t", state)
    write_state(lab.paths.state, state)
    return lab


class Sets:
    """Stands in for libvirt's listing (``Lab.snapshots``) and records the reset retry asks for."""

    def __init__(self, lab: Lab, sets: list[SnapshotSet]) -> None:
        self.reset_to: list[str] = []
        lab.snapshots = lambda: sets  # type: ignore[method-assign]
        lab.reset = lambda name, reporter=None: self.reset_to.append(name)  # type: ignore[method-assign,assignment,return-value]


def _set(name: str, stage: str, verified: bool, nodes: list[str] = NODES) -> SnapshotSet:
    return SnapshotSet(SnapshotRecord(name=name, taken="t", stage=stage, verified=verified), nodes)


def test_retry_goes_back_to_the_nearest_verified_set(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    sets = Sets(lab, [_set("etcd-ok", "etcd", True)])
    lab.retry("flannel")
    assert sets.reset_to == ["etcd-ok"]


@pytest.mark.parametrize(
    "bad",
    [
        _set("etcd-ok", "etcd", False),  # `labkit snapshot etcd-ok` with no check
        _set("etcd-ok", "etcd", True, ["node1"]),  # a VM lacks it
        _set("etcd-ok", "flannel", True),  # a set of another stage under that name
    ],
)
def test_retry_refuses_a_snapshot_that_is_not_verified(tmp_path: Path, bad: SnapshotSet) -> None:
    lab = _lab(tmp_path)
    sets = Sets(lab, [bad])
    with pytest.raises(UsageError, match="snapshot etcd-ok is not verified") as caught:
        lab.retry("flannel")
    assert "labkit check etcd" in str(caught.value)
    assert sets.reset_to == []


def test_retry_without_any_set_says_what_it_looked_for(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    Sets(lab, [])
    with pytest.raises(
        UsageError, match=r"no verified snapshot of a stage before flannel \(looked for etcd-ok\)"
    ):
        lab.retry("flannel")


def test_check_waits_for_no_one_and_writes_nothing_while_another_command_holds_the_lab(
    tmp_path: Path,
) -> None:
    lab = _lab(tmp_path)
    before = lab.paths.state.read_bytes()
    holding, done = threading.Event(), threading.Event()

    def other_command() -> None:  # e.g. a `labkit reset` in another terminal
        with lab_lock(lab.paths.lock, "t", "reset"):
            holding.set()
            done.wait(30)

    thread = threading.Thread(target=other_command)
    thread.start()
    holding.wait(10)
    try:
        with pytest.raises(UsageError, match="lab t is busy: labkit reset"):
            lab.check("etcd")
    finally:
        done.set()
        thread.join()
    assert lab.paths.state.read_bytes() == before


def test_commands_use_the_state_on_disk_once_they_hold_the_lock(tmp_path: Path) -> None:
    lab = _lab(tmp_path)  # loaded now ...
    assert lab.state is not None
    newer = read_state(lab.paths.state)
    assert newer is not None
    newer.verified_stages = ["etcd"]  # ... then another command verified etcd
    write_state(lab.paths.state, newer)
    seen: list[Any] = []
    with lab._locked("snapshot"):
        seen.append(lab.state.verified_stages if lab.state else None)
    assert seen == [["etcd"]]
