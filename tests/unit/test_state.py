from __future__ import annotations

from pathlib import Path

import pytest

from labkit.errors import UsageError
from labkit.lock import lab_lock
from labkit.state import LabState, NodeState, read_state, write_state


def test_state_round_trip(tmp_path: Path) -> None:
    state = LabState(
        lab="a",
        scenario="three-node",
        scenario_path="/x",
        accel="qemu",
        accel_reason="r",
        management_network="labkit-a-mgmt",
        management_cidr="172.29.1.0/24",
        lab_network="labkit-a-lab",
        created_at="now",
        nodes={"node1": NodeState(name="node1", domain="labkit-a-node1", management_ip="172.29.1.5")},
    )
    write_state(tmp_path / "state.json", state)
    assert read_state(tmp_path / "state.json") == state
    assert list(tmp_path.iterdir()) == [tmp_path / "state.json"]


def test_unreadable_state_is_none(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{broken")
    assert read_state(tmp_path / "state.json") is None
    assert read_state(tmp_path / "missing.json") is None


def test_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    with (
        lab_lock(tmp_path / ".lock", "a", "up"),
        pytest.raises(UsageError, match="lab a is busy: labkit up"),
        lab_lock(tmp_path / ".lock", "a", "reset"),
    ):
        pass
    with lab_lock(tmp_path / ".lock", "a", "reset"):
        pass
