"""What a libvirt host offers now, read in one short visit that never raises: whether it answers (and why
not), the accelerator libvirt offers there, free RAM and disk, and labkit's labs on it.

Every host is visited in its own thread, all under one deadline: a host that is down costs the deadline at
most and never delays or breaks the others. Only reading calls are made.
"""

from __future__ import annotations

import functools
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from labkit.machines.domains import domain_labels, labs_in_libvirt
from labkit.machines.libvirt_host import LibvirtHost, silence_libvirt_errors
from labkit.machines.reach import noninteractive, one_line, start

KIB = 1024


@dataclass(frozen=True)
class HostFacts:
    """One host as seen now. Sizes in bytes; None when the host did not say."""

    name: str
    uri: str
    reachable: bool
    reason: str = ""
    accelerator: str | None = None
    accelerator_reason: str = ""
    ram_free: int | None = None
    """Free + buffers + page cache: what new VMs can take."""
    ram_total: int | None = None
    pool: str = "default"
    disk_free: int | None = None
    labs: tuple[str, ...] = ()
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["labs"] = list(self.labs)
        data["seconds"] = round(self.seconds, 2)
        return data


def accelerator_offered(capabilities_xml: str) -> str:
    """``kvm`` when libvirt offers KVM domains on the host, else ``qemu`` (software emulation)."""
    root = ET.fromstring(capabilities_xml)
    return "kvm" if root.find(".//guest/arch/domain[@type='kvm']") is not None else "qemu"


def ram_from_stats(stats: dict[str, int]) -> tuple[int | None, int | None]:
    """(free, total) in bytes from libvirt's node memory stats (KiB)."""
    if "free" not in stats:
        return None, stats.get("total", 0) * KIB or None
    free = sum(stats.get(key, 0) for key in ("free", "buffers", "cached"))
    return free * KIB, stats.get("total", 0) * KIB or None


def _lab_names(conn: Any) -> tuple[str, ...]:
    names = set(labs_in_libvirt(conn))
    for dom in conn.listAllDomains(0):
        lab = domain_labels(dom).get("lab")
        if lab:
            names.add(lab)
    return tuple(sorted(names))


def _disk_free(conn: Any, pool: str) -> int | None:
    import libvirt

    try:
        return int(conn.storagePoolLookupByName(pool).info()[3])
    except libvirt.libvirtError:
        return None


def read_facts(host: LibvirtHost, conn: Any) -> HostFacts:
    """The facts of a host through an open connection (reading calls only)."""
    import libvirt

    free, total = ram_from_stats(conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0))
    return HostFacts(
        name=host.name,
        uri=host.uri,
        reachable=True,
        accelerator=accelerator_offered(conn.getCapabilities()),
        accelerator_reason="offered by libvirt there",
        ram_free=free,
        ram_total=total,
        pool=host.pool,
        disk_free=_disk_free(conn, host.pool),
        labs=_lab_names(conn),
    )


def _visit(host: LibvirtHost) -> HostFacts:
    import libvirt

    started = time.monotonic()
    conn = libvirt.open(noninteractive(host.uri))
    try:
        return replace(read_facts(host, conn), seconds=time.monotonic() - started)
    finally:
        conn.close()


def visit_hosts(hosts: Sequence[LibvirtHost], timeout: float) -> list[HostFacts]:
    """The facts of every host, in order, within ``timeout`` seconds in all. Never raises for a host: one
    that fails or does not answer in time is ``reachable=False`` with the reason."""
    silence_libvirt_errors()
    started = time.monotonic()
    deadline = started + timeout
    visits = [(host, start(functools.partial(_visit, host), f"visit {host.name}")) for host in hosts]
    facts = []
    for host, pending in visits:
        answered = pending.done.wait(max(0.0, deadline - time.monotonic()))
        if not answered:
            pending.abandon()
            reason = f"no answer within {timeout:.0f} s"
        elif pending.error is not None:
            reason = one_line(pending.error)
        else:
            assert pending.value is not None
            facts.append(pending.value)
            continue
        facts.append(HostFacts(host.name, host.uri, False, reason, seconds=time.monotonic() - started))
    return facts
