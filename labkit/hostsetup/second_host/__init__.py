"""A second libvirt host on this machine (``labkit host up --name NAME``), for trying several hosts and for CI.

Its own network namespace (``labkit-NAME``), linked to labkit's by a veth pair on a /30 of 10.251.0.0/24; its
own mount namespace, in which directories under ``$LABKIT_HOME/hosts/NAME/`` replace /etc/libvirt,
/run/libvirt, /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt; its own virtlogd, libvirtd and sshd
there. labkit reaches it as any remote host, at ``qemu+ssh://root@ADDRESS/system`` (see ``ssh_access``).

Modules: ``layout`` (its files), ``record`` (what was started), ``addresses`` (the /30), ``network``
(namespace and veth), ``ssh_access`` (sshd, keys, the URI), ``daemons`` (starting them in the namespaces),
``lifecycle`` (up, down, status).
"""

from __future__ import annotations

from labkit.hostsetup.second_host.layout import SecondHostPaths, check_second_host_name
from labkit.hostsetup.second_host.lifecycle import (
    default_peer,
    second_host_down,
    second_host_status,
    second_host_up,
    second_host_uri,
)
from labkit.hostsetup.second_host.record import SecondHostState

__all__ = [
    "SecondHostPaths",
    "SecondHostState",
    "check_second_host_name",
    "default_peer",
    "second_host_down",
    "second_host_status",
    "second_host_up",
    "second_host_uri",
]
