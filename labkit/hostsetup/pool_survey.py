"""``labkit hosts list``: every host of the pool as it is now, each visited under one deadline, so a host that
is down is reported as such and never delays or breaks the listing of the others."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from typing import Any

from labkit.hostsetup.accel import detect_accel
from labkit.hostsetup.hostmode import local_host
from labkit.hostsetup.pool import PoolHost, pool_hosts
from labkit.machines.host_facts import HostFacts, visit_hosts
from labkit.machines.libvirt_host import LibvirtHost

SURVEY_TIMEOUT = 10.0


@dataclass(frozen=True)
class HostReport:
    """A host of the pool and what it offers now."""

    host: PoolHost
    facts: HostFacts

    def to_json(self) -> dict[str, Any]:
        return {"max_labs": self.host.max_labs, **self.facts.to_json()}


def libvirt_host(host: PoolHost) -> LibvirtHost:
    """The pool host as a libvirt host: ``local`` with host mode's namespace when it is up."""
    if host.local:
        return local_host()
    return LibvirtHost(name=host.name, uri=host.uri)


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
    return [HostReport(h, f) for h, f in zip(hosts, facts, strict=True)]
