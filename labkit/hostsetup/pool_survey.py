"""``labkit hosts list``: every host of the pool as it is now, each visited under one deadline, so a host that
is down is reported as such and never delays or breaks the listing of the others."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from typing import Any

from labkit.hostsetup.accel import detect_accel
from labkit.hostsetup.pool import PoolHost, labs_on, libvirt_host, pool_hosts
from labkit.machines.host_facts import HostFacts, visit_hosts
from labkit.machines.libvirt_host import LibvirtHost

SURVEY_TIMEOUT = 10.0


@dataclass(frozen=True)
class HostReport:
    """A host of the pool, what it offers now, and the labs living there: those whose state names it and
    those its libvirt holds (labkit's networks and labelled domains), which a lost state leaves behind."""

    host: PoolHost
    facts: HostFacts
    labs_in_states: tuple[str, ...] = ()

    @property
    def labs(self) -> tuple[str, ...]:
        return tuple(sorted({*self.labs_in_states, *self.facts.labs}))

    def lab_notes(self) -> list[str]:
        """Each lab of the host, said to be only in its state or only in libvirt where the two disagree (a
        host that does not answer says nothing of its libvirt)."""
        notes = []
        for lab in self.labs:
            if lab not in self.labs_in_states:
                notes.append(f"{lab} (in libvirt only, no state here)")
            elif self.facts.reachable and lab not in self.facts.labs:
                notes.append(f"{lab} (its state only, nothing in libvirt)")
            else:
                notes.append(lab)
        return notes

    def to_json(self) -> dict[str, Any]:
        return {
            "max_labs": self.host.max_labs,
            **self.facts.to_json(),
            "labs": list(self.labs),
            "labs_in_states": list(self.labs_in_states),
            "labs_in_libvirt": list(self.facts.labs) if self.facts.reachable else None,
        }


def _local_view(facts: HostFacts, host: LibvirtHost) -> HostFacts:
    """For this machine labkit knows better than libvirt: its own accelerator choice (libvirt offers KVM on
    a PVM /dev/kvm that cannot boot a stock kernel) and the pool directory's free space right now."""
    accel = detect_accel()
    facts = replace(facts, accelerator=accel.driver, accelerator_reason=accel.reason)
    if facts.reachable and host.pool_path.is_dir():
        facts = replace(facts, disk_free=shutil.disk_usage(host.pool_path).free)
    return facts


def survey(timeout: float = SURVEY_TIMEOUT) -> list[HostReport]:
    """Every host of the pool with its facts, ``local`` first; takes ``timeout`` seconds at most."""
    hosts = pool_hosts()
    targets = [libvirt_host(h) for h in hosts]
    facts = visit_hosts(targets, timeout)
    facts[0] = _local_view(facts[0], targets[0])
    return [HostReport(h, f, tuple(labs_on(h.name))) for h, f in zip(hosts, facts, strict=True)]
