"""The etcd endpoint flanneld and kube-apiserver are given: always ``http://<IP>:<port>``.

A scenario may name the etcd node by hostname (``network.etcd_endpoint: http://node1:2379``, how a trainee
thinks of it); labkit writes that node's lab IP instead and says why: a name means what each node's resolver
says. Vagrant maps a VM's own hostname to 127.0.X.1, so on node1 flanneld dials its own loopback (seen:
"dial tcp 127.0.2.1:2379: connect: connection refused"), a node without the name logs "lookup NAME ... connection
refused" every second, and release builds of flanneld (static cgo binaries) can crash in glibc's resolver
(flannel-io/flannel#977). With a name that resolves to etcd's IP on every node, flanneld 0.13.0 works.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from labkit.errors import UsageError

ETCD_CLIENT_PORT = 2379
WHY_IP = (
    "a name means what each node's resolver says (Vagrant maps a VM's own hostname to 127.0.X.1, a node "
    "without the name cannot resolve it, release builds of flanneld can crash resolving it: "
    "flannel-io/flannel#977); an IP is the same on every node"
)


@dataclass(frozen=True)
class Endpoint:
    url: str
    note: str | None = None
    """Set when a hostname of the scenario was replaced by its IP."""


class EndpointError(UsageError):
    """What cannot be written as an IP endpoint; ``message`` and ``hint`` (the fix)."""


def resolve_etcd_endpoint(given: str | None, node_ips: dict[str, str], etcd_node: str) -> Endpoint:
    """``given`` (or the etcd node's default) as an IP URL; EndpointError for what cannot be written."""
    if not given:
        return Endpoint(f"http://{node_ips[etcd_node]}:{ETCD_CLIENT_PORT}")
    if "://" not in given:
        raise EndpointError(
            f"etcd endpoint {given!r} has no scheme", f"write http://{given} (flanneld needs the scheme)"
        )
    parts = urlsplit(given)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError(f"etcd endpoint {given!r} is not an http(s) URL", "write it like http://IP:2379")
    port = parts.port or ETCD_CLIENT_PORT
    host = parts.hostname
    try:
        ipaddress.IPv4Address(host)
        return Endpoint(f"{parts.scheme}://{host}:{port}")
    except ValueError:
        pass
    if host not in node_ips:
        raise EndpointError(
            f"etcd endpoint {given!r} names {host!r}, which is not a node of this scenario",
            f"write the etcd node's IP ({node_ips[etcd_node]}) or its node name",
        )
    url = f"{parts.scheme}://{node_ips[host]}:{port}"
    return Endpoint(url, f"etcd endpoint {given} is written as {url}: {WHY_IP}")
