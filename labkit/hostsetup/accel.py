"""Choose how VMs run: hardware virtualisation (libvirt domain type ``kvm``) or software emulation (``qemu``).

Real KVM needs the ``kvm_intel`` or ``kvm_amd`` module and a usable ``/dev/kvm``. Some CI machines expose
``/dev/kvm`` from a PVM hypervisor (``/sys/module/kvm_pvm``) that cannot boot a stock Debian kernel: there
labkit must emulate (TCG), with a generic CPU model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from labkit.errors import UsageError

Driver = Literal["kvm", "qemu"]
DRIVERS: tuple[Driver, ...] = ("kvm", "qemu")
HARDWARE_MODULES = ("kvm_intel", "kvm_amd")


@dataclass(frozen=True)
class AccelChoice:
    """The libvirt domain type for the lab's VMs and, in words, why it was chosen."""

    driver: Driver
    reason: str

    @property
    def emulated(self) -> bool:
        return self.driver == "qemu"

    @property
    def cpu_mode(self) -> str:
        """vagrant-libvirt ``cpu_mode``: the host CPU under KVM; a fixed model under emulation."""
        return "custom" if self.emulated else "host-passthrough"

    @property
    def cpu_model(self) -> str:
        """vagrant-libvirt ``cpu_model`` ("" when ``cpu_mode`` needs none)."""
        return "qemu64" if self.emulated else ""


def _dev_usable(dev: Path) -> tuple[bool, str]:
    if not dev.exists():
        return False, f"{dev} does not exist"
    if os.access(dev, os.R_OK | os.W_OK):
        return True, f"{dev} is accessible"
    # With qemu:///system it is libvirtd's QEMU (user libvirt-qemu, group kvm) that opens /dev/kvm, not us.
    if dev.stat().st_mode & 0o060 == 0o060:
        return True, f"{dev} is read-write for its group (libvirt's QEMU opens it)"
    return False, f"{dev} is not read-write for this user nor its group"


def _detect(sysfs_root: Path, dev_kvm: Path) -> AccelChoice:
    modules = sysfs_root / "module"
    loaded = [m for m in HARDWARE_MODULES if (modules / m).exists()]
    usable, why = _dev_usable(dev_kvm)
    if loaded and usable:
        return AccelChoice("kvm", f"kvm: {loaded[0]} is loaded and {why}")
    if loaded:
        return AccelChoice("qemu", f"qemu: {loaded[0]} is loaded but {why} (software emulation, much slower)")
    if (modules / "kvm_pvm").exists():
        return AccelChoice(
            "qemu",
            f"qemu: {dev_kvm} is a PVM hypervisor that cannot boot a stock kernel (no kvm_intel/kvm_amd)",
        )
    if dev_kvm.exists():
        return AccelChoice(
            "qemu",
            f"qemu: {dev_kvm} exists but neither kvm_intel nor kvm_amd is loaded "
            "(`modprobe kvm_intel` or `modprobe kvm_amd` if the CPU has VT-x/AMD-V)",
        )
    return AccelChoice("qemu", "qemu: no hardware virtualisation (no /dev/kvm, no kvm_intel/kvm_amd)")


def requested_driver(override: str | None) -> Driver | None:
    """The driver ``override`` asks for ("kvm", "qemu"), or None for "auto", "" or None; anything else is refused."""
    choice = (override or "").strip().lower()
    if choice in ("", "auto"):
        return None
    if choice not in DRIVERS:
        raise UsageError(f"unknown accelerator {override!r}", hint="use one of: kvm, qemu, auto")
    return "kvm" if choice == "kvm" else "qemu"


def detect_accel(
    override: str | None = None,
    *,
    sysfs_root: Path | str = "/sys",
    dev_kvm: Path | str = "/dev/kvm",
) -> AccelChoice:
    """Pick ``kvm`` when real KVM is usable, ``qemu`` otherwise; ``override`` ("kvm", "qemu", "auto") wins.

    ``sysfs_root`` and ``dev_kvm`` exist for tests (fake trees).
    """
    detected = _detect(Path(sysfs_root), Path(dev_kvm))
    driver = requested_driver(override)
    if driver is None:
        return detected
    if driver == detected.driver:
        return AccelChoice(detected.driver, f"{detected.reason} (also requested)")
    return AccelChoice(driver, f"{driver}: requested (auto-detection said {detected.reason})")
