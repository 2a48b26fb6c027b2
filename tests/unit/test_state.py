from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from labkit.errors import UsageError
from labkit.lock import lab_lock
from labkit.state import (
    LabState,
    NodeState,
    keep_corrupt,
    read_state,
    verified_after_reset,
    write_state,
)


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


@pytest.mark.parametrize("text", ["{broken", "[]", '{"lab": "a"}', '{"nodes": {"n": 1}}'])
def test_unreadable_state_is_kept_aside_with_a_warning(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with caplog.at_level(logging.WARNING, logger="labkit.state"):
        assert read_state(path) is None
    kept = list(tmp_path.glob("state.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == text, "the unreadable file is kept, byte for byte"
    assert not path.exists()
    assert f"kept as {kept[0]}" in caplog.text and "unreadable" in caplog.text
    assert read_state(tmp_path / "missing.json") is None


def test_a_second_corrupt_state_never_replaces_the_first(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    now = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    path.write_text("first")
    first = keep_corrupt(path, now)
    path.write_text("second")
    second = keep_corrupt(path, now)
    assert first is not None and second is not None and first != second
    assert first.name == "state.json.corrupt-20250102T030405Z"
    assert (first.read_text(), second.read_text()) == ("first", "second")


def test_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def other_command() -> None:  # another thread holds its own open file: as another process would
        try:
            with lab_lock(tmp_path / ".lock", "a", "reset"):
                pass
        except UsageError as exc:
            errors.append(exc)

    with lab_lock(tmp_path / ".lock", "a", "up"):
        thread = threading.Thread(target=other_command)
        thread.start()
        thread.join()
    assert len(errors) == 1 and "lab a is busy: labkit up" in str(errors[0])
    with lab_lock(tmp_path / ".lock", "a", "reset"):
        pass


def test_lock_is_reentrant_in_one_thread_and_released_by_the_outer_holder(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    with lab_lock(lock, "a", "solve"):
        with lab_lock(lock, "a", "check"):  # solve -> verify -> check
            pass
        assert "labkit solve" in lock.read_text(), "the inner exit does not release the outer hold"
        held = subprocess.run(
            [sys.executable, "-c", LOCK_PROBE, str(lock)], capture_output=True, text=True, check=False
        )
        assert held.stdout.strip() == "busy"
    free = subprocess.run([sys.executable, "-c", LOCK_PROBE, str(lock)], capture_output=True, text=True)
    assert free.stdout.strip() == "free"


LOCK_PROBE = """
import fcntl, sys
with open(sys.argv[1], "a+") as f:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        print("free")
    except BlockingIOError:
        print("busy")
"""

STAGES = ["ssh", "cri", "etcd", "apiserver"]


def test_verified_stages_follow_the_snapshot_set() -> None:
    # recorded with the set: exactly those, in scenario order, whatever was verified before the reset
    assert verified_after_reset(STAGES, True, "etcd", True, ["etcd", "cri"]) == ["cri", "etcd"]
    assert verified_after_reset(STAGES, True, "cri", False, ["cri"]) == ["cri"]
    assert verified_after_reset(STAGES, True, None, False, []) == []
    # a set from before the list was recorded: its own stage only if verified
    assert verified_after_reset(STAGES, True, "etcd", True, None) == ["etcd"]
    assert verified_after_reset(STAGES, True, "etcd", False, None) == []
    # a set taken by hand, outside labkit: nothing is known
    assert verified_after_reset(STAGES, False, None, False, None) == []
    assert verified_after_reset(STAGES, True, "gone", True, None) == []
