"""A class's labs found in libvirt by the class label on their domains (never by a name prefix), on the class's
own host and on every host of the pool: a trainee lab whose state was lost is still found where it runs."""

from __future__ import annotations

import logging

from labkit.errors import LabkitError
from labkit.hostsetup import pool
from labkit.machines.domains import domain_labels
from labkit.machines.libvirt_host import LibvirtHost

log = logging.getLogger(__name__)


def labs_of_class(host: LibvirtHost, class_name: str) -> list[str]:
    """Labs whose domains on ``host`` carry ``class=<class_name>`` in labkit's labels."""
    labs = set()
    for dom in host.connect().listAllDomains(0):
        labels = domain_labels(dom)
        if labels.get("class") == class_name and labels.get("lab"):
            labs.add(labels["lab"])
    return sorted(labs)


def labelled_labs(class_name: str, own: LibvirtHost) -> tuple[dict[str, LibvirtHost], dict[str, str]]:
    """(lab -> the host its labelled domains are on, host -> why it was not asked) over ``own`` and the
    pool. A host that does not answer is skipped and named: it never stops the sweep of the others."""
    import libvirt

    hosts = {own.name: own}
    for member in pool.pool_hosts():
        hosts.setdefault(member.name, pool.libvirt_host(member))
    found: dict[str, LibvirtHost] = {}
    unreachable: dict[str, str] = {}
    for name, host in hosts.items():
        try:
            labs = labs_of_class(host, class_name)
        except (libvirt.libvirtError, LabkitError, OSError) as error:
            unreachable[name] = str(error).splitlines()[0] if str(error) else type(error).__name__
            log.warning("class %s: host %s not swept for labelled labs: %s", class_name, name, error)
            continue
        for lab in labs:
            found.setdefault(lab, host)
    return found, unreachable
