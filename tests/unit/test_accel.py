"""detect_accel on fake sysfs trees and fake /dev/kvm files."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.errors import UsageError
from labkit.hostsetup.accel import AccelChoice, detect_accel


def fake_host(tmp_path: Path, *modules: str, dev: bool = True, mode: int = 0o600) -> tuple[Path, Path]:
    sysfs = tmp_path / "sys"
    (sysfs / "module" / "kvm").mkdir(parents=True)
    for module in modules:
        (sysfs / "module" / module).mkdir()
    dev_kvm = tmp_path / "kvm"
    if dev:
        dev_kvm.touch()
        dev_kvm.chmod(mode)
    return sysfs, dev_kvm


@pytest.mark.parametrize("module", ["kvm_intel", "kvm_amd"])
def test_real_kvm(tmp_path: Path, module: str) -> None:
    sysfs, dev = fake_host(tmp_path, module)
    choice = detect_accel(sysfs_root=sysfs, dev_kvm=dev)
    assert choice.driver == "kvm"
    assert choice.reason.startswith(f"kvm: {module} is loaded")
    assert not choice.emulated
    assert choice.cpu_mode == "host-passthrough"


def test_pvm_is_emulated(tmp_path: Path) -> None:
    sysfs, dev = fake_host(tmp_path, "kvm_pvm")
    choice = detect_accel(sysfs_root=sysfs, dev_kvm=dev)
    assert choice == AccelChoice(
        "qemu", f"qemu: {dev} is a PVM hypervisor that cannot boot a stock kernel (no kvm_intel/kvm_amd)"
    )
    assert (choice.cpu_mode, choice.cpu_model) == ("custom", "qemu64")


def test_no_dev_kvm(tmp_path: Path) -> None:
    sysfs, dev = fake_host(tmp_path, "kvm_intel", dev=False)
    choice = detect_accel(sysfs_root=sysfs, dev_kvm=dev)
    assert choice.driver == "qemu"
    assert "does not exist" in choice.reason


def test_nothing_at_all(tmp_path: Path) -> None:
    sysfs, dev = fake_host(tmp_path, dev=False)
    choice = detect_accel(sysfs_root=sysfs, dev_kvm=dev)
    assert choice.driver == "qemu"
    assert "no hardware virtualisation" in choice.reason


def test_dev_kvm_without_module(tmp_path: Path) -> None:
    sysfs, dev = fake_host(tmp_path)
    choice = detect_accel(sysfs_root=sysfs, dev_kvm=dev)
    assert choice.driver == "qemu"
    assert "modprobe kvm_intel" in choice.reason


def test_group_writable_dev_counts_for_libvirt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user in group libvirt but not kvm: libvirt's QEMU opens /dev/kvm, so kvm is still right."""
    sysfs, dev = fake_host(tmp_path, "kvm_amd", mode=0o660)
    monkeypatch.setattr("labkit.hostsetup.accel.os.access", lambda *_a, **_k: False)
    assert detect_accel(sysfs_root=sysfs, dev_kvm=dev).driver == "kvm"


def test_inaccessible_dev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sysfs, dev = fake_host(tmp_path, "kvm_intel", mode=0o600)
    monkeypatch.setattr("labkit.hostsetup.accel.os.access", lambda *_a, **_k: False)
    choice = detect_accel(sysfs_root=sysfs, dev_kvm=dev)
    assert choice.driver == "qemu"
    assert "not read-write" in choice.reason


@pytest.mark.parametrize("override", [None, "auto", "AUTO", ""])
def test_auto(tmp_path: Path, override: str | None) -> None:
    sysfs, dev = fake_host(tmp_path, "kvm_intel")
    assert detect_accel(override, sysfs_root=sysfs, dev_kvm=dev).driver == "kvm"


def test_override_wins_and_says_so(tmp_path: Path) -> None:
    sysfs, dev = fake_host(tmp_path, "kvm_pvm")
    forced = detect_accel("kvm", sysfs_root=sysfs, dev_kvm=dev)
    assert forced.driver == "kvm"
    assert forced.reason.startswith("kvm: requested (auto-detection said qemu: ")
    same = detect_accel(" Qemu ", sysfs_root=sysfs, dev_kvm=dev)
    assert same.driver == "qemu"
    assert same.reason.endswith("(also requested)")


@pytest.mark.parametrize("bad", ["tcg", "xen", "kvm,qemu"])
def test_bad_override(tmp_path: Path, bad: str) -> None:
    sysfs, dev = fake_host(tmp_path)
    with pytest.raises(UsageError) as info:
        detect_accel(bad, sysfs_root=sysfs, dev_kvm=dev)
    assert "kvm, qemu, auto" in str(info.value)
    assert info.value.exit_code == 2
