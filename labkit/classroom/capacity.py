"""Will N more trainee labs fit on the host? Host RAM and pool disk, and KSM (the kernel merging the clones'
identical memory pages)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labkit.errors import HostError
from labkit.hostsetup.doctor import mem_available_mib

KSM = Path("/sys/kernel/mm/ksm")
# A clone reverted to a memory snapshot starts with only the pages the snapshot holds: measured ~300 MiB of QEMU
# resident memory for an emulated VM (vm-lab.md), against ~1.45 GB for one that booted. It grows as the guest
# runs (emulation's translation cache above all): plan for twice that, and a safety margin for the host.
RAM_PER_CLONE_VM_MIB = {"qemu": 700, "kvm": 500}
HOST_RESERVE_MIB = 1024


@dataclass(frozen=True)
class Capacity:
    ram_available_mib: int | None
    ram_per_lab_mib: int
    disk_free_bytes: int
    disk_per_lab_bytes: int

    def labs_that_fit(self) -> int:
        by_ram = (
            max(0, (self.ram_available_mib - HOST_RESERVE_MIB) // self.ram_per_lab_mib)
            if self.ram_available_mib is not None
            else 10**6
        )
        by_disk = self.disk_free_bytes // max(1, self.disk_per_lab_bytes)
        return int(min(by_ram, by_disk))

    def refuse_beyond(self, wanted: int, class_name: str) -> None:
        fit = self.labs_that_fit()
        if wanted <= fit:
            return
        ram = f"{self.ram_available_mib} MiB RAM available" if self.ram_available_mib is not None else ""
        raise HostError(
            f"class {class_name}: {wanted} more trainee labs do not fit on this host, {fit} do "
            f"(~{self.ram_per_lab_mib} MiB RAM and ~{self.disk_per_lab_bytes // 2**20} MiB disk each; "
            f"{ram}, {self.disk_free_bytes // 2**20} MiB disk free)",
            f"add at most {fit} trainees here, free RAM or disk, or spread the class over more hosts",
        )


def ram_available_mib() -> int | None:
    try:
        return mem_available_mib(Path("/proc/meminfo").read_text())
    except OSError:
        return None


def ksm_state(root: Path = KSM) -> dict[str, int] | None:
    """KSM's ``run`` and how much memory it shares now (MiB); None where the kernel has no KSM."""
    try:
        run = int((root / "run").read_text())
        sharing = int((root / "pages_sharing").read_text())
    except (OSError, ValueError):
        return None
    page = 4096
    return {"run": run, "sharing_mib": sharing * page // 2**20}


def turn_ksm_on(root: Path = KSM) -> bool:
    """Turn KSM on when it is off and the host lets labkit (root); True when labkit turned it on now."""
    state = ksm_state(root)
    if state is None or state["run"] == 1:
        return False
    try:
        (root / "run").write_text("1\n")
    except OSError:
        return False
    return True


def turn_ksm_off(root: Path = KSM) -> None:
    state = ksm_state(root)
    if state is not None and state["run"] == 1:
        try:
            (root / "run").write_text("0\n")
        except OSError:
            return
