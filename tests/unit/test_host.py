"""Host mode's pure parts: the state file, process identity, the qemu.conf decision. No daemon is started."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labkit.errors import HostError
from labkit.hostsetup.hostmode import _qemu_user, qemu_needs_root
from labkit.hostsetup.hoststate import HostState, host_state, state_file
from labkit.hostsetup.processes import Daemon, proc_stat


@pytest.fixture(autouse=True)
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LABKIT_RUN_DIR", str(tmp_path / "run"))
    return tmp_path / "run"


def test_no_state_means_down() -> None:
    assert host_state() is None


def test_state_round_trip() -> None:
    state = HostState("labkit", True, (Daemon("libvirtd", 12, 34),), "2026-01-01T00:00:00+00:00", True)
    restored = HostState.from_json(state.to_json())
    assert restored == state
    assert restored.libvirtd_pid == 12 and restored.virtlogd_pid is None
    assert "already_up" not in state.to_json()


def test_malformed_state_says_what_to_do(run_dir: Path) -> None:
    run_dir.mkdir()
    state_file().write_text('{"netns": 1}')
    with pytest.raises(HostError, match="malformed") as info:
        host_state()
    assert "remove" in str(info.value)


def test_daemon_identity_includes_start_time() -> None:
    stat = proc_stat(os.getpid())
    assert stat is not None
    assert Daemon("python", os.getpid(), stat[1]).running
    assert not Daemon("python", os.getpid(), stat[1] + 1).running  # same PID, another process
    assert not Daemon("gone", 2**22 + 1, 0).running


def test_qemu_user_from_conf(tmp_path: Path) -> None:
    conf = tmp_path / "qemu.conf"
    conf.write_text('#user = "root"\n  user = "qemu"\n')
    assert _qemu_user(conf) == "qemu"
    assert _qemu_user(tmp_path / "missing.conf") == "libvirt-qemu"


def test_qemu_needs_root_only_when_kvm_is_closed_to_the_qemu_user(tmp_path: Path) -> None:
    conf = tmp_path / "qemu.conf"
    conf.write_text('user = "nobody"\n')
    dev = tmp_path / "kvm"
    dev.touch()
    dev.chmod(0o600)
    assert qemu_needs_root(dev, conf)  # root-only device, as without udev
    dev.chmod(0o666)
    assert not qemu_needs_root(dev, conf)
    assert not qemu_needs_root(tmp_path / "no-kvm", conf)
    conf.write_text('user = "root"\n')
    dev.chmod(0o600)
    assert not qemu_needs_root(dev, conf)
