"""Where each trainee's lab goes when a class spans several hosts: whole labs only (a lab's VMs share its
host's networks), each on the reachable host with the most RAM left once the labs placed before it are
counted, within the host's disk and its ``--max-labs``."""

from __future__ import annotations

from dataclasses import dataclass

from labkit.classroom.capacity import HOST_RESERVE_MIB
from labkit.errors import HostError


@dataclass(frozen=True)
class HostRoom:
    """What one host of the pool offers a class now."""

    name: str
    reachable: bool
    reason: str = ""
    ram_free_mib: int | None = None
    disk_free_bytes: int | None = None
    labs: int = 0
    max_labs: int | None = None


@dataclass
class _Left:
    room: HostRoom
    ram_mib: float
    disk_bytes: float
    labs: int

    def fits(self, ram_mib: int, disk_bytes: int) -> bool:
        below_max = self.room.max_labs is None or self.labs < self.room.max_labs
        return below_max and self.ram_mib - ram_mib >= HOST_RESERVE_MIB and self.disk_bytes >= disk_bytes


def place(
    class_name: str, trainees: list[str], rooms: list[HostRoom], ram_per_lab_mib: int, disk_per_lab_bytes: int
) -> dict[str, str]:
    """Trainee -> host name. Refused as a whole (nothing placed) when the hosts cannot take every lab."""
    left = [
        _Left(
            room,
            room.ram_free_mib if room.ram_free_mib is not None else float("inf"),
            room.disk_free_bytes if room.disk_free_bytes is not None else float("inf"),
            room.labs,
        )
        for room in rooms
        if room.reachable
    ]
    placed: dict[str, str] = {}
    for trainee in trainees:
        candidates = [h for h in left if h.fits(ram_per_lab_mib, disk_per_lab_bytes)]
        if not candidates:
            raise _refusal(class_name, len(trainees), len(placed), rooms, ram_per_lab_mib, disk_per_lab_bytes)
        best = max(candidates, key=lambda h: h.ram_mib)  # max() keeps the first of equals: the order given
        best.ram_mib -= ram_per_lab_mib
        best.disk_bytes -= disk_per_lab_bytes
        best.labs += 1
        placed[trainee] = best.room.name
    return placed


def _refusal(
    class_name: str, wanted: int, fit: int, rooms: list[HostRoom], ram_mib: int, disk_bytes: int
) -> HostError:
    down = [f"{r.name} ({r.reason or 'unreachable'})" for r in rooms if not r.reachable]
    return HostError(
        f"class {class_name}: {wanted} trainee labs do not fit on {', '.join(r.name for r in rooms)}, {fit} do "
        f"(~{ram_mib} MiB RAM and ~{disk_bytes // 2**20} MiB disk each)"
        + (f"; unreachable: {', '.join(down)}" if down else ""),
        "add hosts (`labkit hosts add`), raise their --max-labs, or take fewer trainees",
    )
