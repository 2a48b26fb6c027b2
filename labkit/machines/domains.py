"""A lab as libvirt sees it: its two networks, its domains, their addresses, and removing all of it.

Names are deterministic (``labkit-<lab>-<node>`` domains, ``labkit-<lab>-mgmt`` / ``-lab`` networks), so
everything here works from libvirt alone, without the lab directory.
"""

from __future__ import annotations

import ipaddress
import logging
import xml.etree.ElementTree as ET
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from labkit.machines.vagrantfile import domain_prefix, lab_network

log = logging.getLogger(__name__)

DOMAIN_STATES = {
    0: "no state",
    1: "running",
    2: "blocked",
    3: "paused",
    4: "shutting down",
    5: "shut off",
    6: "crashed",
    7: "suspended",
}


def _libvirt() -> Any:
    import libvirt

    return libvirt


def management_network_name(lab: str) -> str:
    return f"labkit-{lab}-mgmt"


def management_network_xml(lab: str, cidr: str) -> str:
    """Isolated network with DHCP, where vagrant and labkit reach the VMs. STP off: a reverted VM's new tap
    port forwards at once instead of after the ~4 s STP listening delay (measured in vm-lab.md)."""
    net = ipaddress.IPv4Network(cidr)
    hosts = list(net.hosts())
    return (
        "<network>"
        f"<name>{management_network_name(lab)}</name>"
        "<bridge stp='off' delay='0'/>"
        f"<ip address='{hosts[0]}' netmask='{net.netmask}'>"
        f"<dhcp><range start='{hosts[1]}' end='{hosts[-1]}'/></dhcp>"
        "</ip>"
        "</network>"
    )


def lab_network_xml(lab: str) -> str:
    """The nodes' own L2 segment: no host address, no DHCP, so labs with the same subnet never collide."""
    return f"<network><name>{lab_network(lab).name}</name><bridge stp='off' delay='0'/></network>"


def _ensure_network(conn: Any, name: str, xml: str) -> bool:
    libvirt = _libvirt()
    created = False
    try:
        net = conn.networkLookupByName(name)
    except libvirt.libvirtError:
        net = conn.networkDefineXML(xml)
        created = True
    if not net.isActive():
        net.create()
        created = True
    if not net.autostart():
        net.setAutostart(1)
    return created


def ensure_networks(conn: Any, lab: str, management_cidr: str) -> list[str]:
    """Create (or start) the lab's two networks; return the names of those that were created or started."""
    changed = []
    if _ensure_network(conn, management_network_name(lab), management_network_xml(lab, management_cidr)):
        changed.append(management_network_name(lab))
    if _ensure_network(conn, lab_network(lab).name, lab_network_xml(lab)):
        changed.append(lab_network(lab).name)
    return changed


def network_cidrs(conn: Any) -> dict[str, str]:
    """CIDR of every libvirt network that has a host address (name -> CIDR)."""
    out = {}
    for net in conn.listAllNetworks(0):
        root = ET.fromstring(net.XMLDesc(0))
        ip = root.find("ip")
        if ip is not None and ip.get("address") and (ip.get("netmask") or ip.get("prefix")):
            mask = ip.get("netmask") or ip.get("prefix")
            out[net.name()] = str(ipaddress.IPv4Network(f"{ip.get('address')}/{mask}", strict=False))
    return out


def lab_domains(conn: Any, lab: str, nodes: Collection[str] | None = None) -> dict[str, Any]:
    """The lab's domains by node name: those whose description, written by labkit, says ``lab=<lab>`` exactly
    and whose name is ``labkit-<lab>-<node>``. Never by name prefix alone: lab ``a``'s prefix also matches
    lab ``a-b``'s domains, and a domain labkit did not label is never labkit's to touch."""
    prefix = domain_prefix(lab)
    found = {}
    for dom in conn.listAllDomains(0):
        name = dom.name()
        if not name.startswith(prefix):
            continue
        labels = domain_labels(dom)
        node = labels.get("node", "")
        if labels.get("lab") != lab or name != prefix + node:
            continue
        if nodes is None or node in nodes:
            found[node] = dom
    return found


def domain_state(dom: Any) -> str:
    state, _reason = dom.state()
    return DOMAIN_STATES.get(state, f"state {state}")


def interface_macs(dom: Any) -> dict[str, str]:
    """MAC address of the domain's interface on each libvirt network (network name -> MAC)."""
    root = ET.fromstring(dom.XMLDesc(0))
    out = {}
    for iface in root.findall("./devices/interface"):
        source = iface.find("source")
        mac = iface.find("mac")
        if source is not None and mac is not None and source.get("network"):
            out[source.get("network", "")] = mac.get("address", "").lower()
    return out


def dhcp_address(conn: Any, network: str, mac: str) -> str | None:
    """The IPv4 address libvirt's dnsmasq leased to ``mac`` on ``network`` (0.02 s, versus 2-3 s for
    ``vagrant ssh-config``)."""
    libvirt = _libvirt()
    try:
        net = conn.networkLookupByName(network)
        leases = net.DHCPLeases(mac)
    except libvirt.libvirtError:
        return None
    v4 = [lease for lease in leases if lease.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4]
    if not v4:
        return None
    newest = max(v4, key=lambda lease: lease.get("expirytime", 0))
    return str(newest["ipaddr"])


@dataclass
class Removal:
    """What ``destroy_lab`` removed, for the user and for tests that verify nothing is left."""

    snapshots: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.snapshots or self.domains or self.volumes or self.networks)


def domain_disk_paths(dom: Any) -> list[str]:
    """Host paths of the domain's disk images."""
    root = ET.fromstring(dom.XMLDesc(0))
    return [
        source.get("file", "")
        for source in root.findall("./devices/disk[@device='disk']/source")
        if source.get("file")
    ]


def destroy_lab(conn: Any, lab: str, nodes: Collection[str] | None = None) -> Removal:
    """Remove the lab's snapshots, domains, their volumes and the lab's networks. Idempotent.

    Domains are the lab's by their labels (:func:`lab_domains`); a left-over volume is removed only when it is
    named after one of ``nodes`` or of the domains found, never by prefix."""
    libvirt = _libvirt()
    removed = Removal()
    domains = lab_domains(conn, lab, nodes)
    volume_names = {f"{domain_prefix(lab)}{node}.img" for node in (*(nodes or ()), *domains)}
    for node, dom in sorted(domains.items()):
        volume_paths = domain_disk_paths(dom)
        # A domain with snapshots cannot be undefined: delete them first (children before parents is what
        # libvirt's "delete metadata and data" does for internal snapshots one by one).
        for snap in dom.listAllSnapshots(0):
            snap.delete(0)
            removed.snapshots.append(f"{node}/{snap.getName()}")
        if dom.isActive():
            dom.destroy()
        flags = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        try:
            dom.undefineFlags(flags)
        except libvirt.libvirtError as exc:
            # a domain libvirtd knew only as running (it lost the definition in a crash) is gone once stopped
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
        removed.domains.append(dom.name())
        for path in volume_paths:
            try:
                vol = conn.storageVolLookupByPath(path)
            except libvirt.libvirtError:
                continue
            vol.delete(0)
            removed.volumes.append(path)
    for pool in conn.listAllStoragePools(0):
        if not pool.isActive():
            continue
        pool.refresh(0)
        for vol in pool.listAllVolumes(0):
            # vagrant-libvirt names a node's disk <domain>.img
            if vol.name() in volume_names and vol.path() not in removed.volumes:
                path = vol.path()
                vol.delete(0)
                removed.volumes.append(path)
    for name in (management_network_name(lab), lab_network(lab).name):
        try:
            net = conn.networkLookupByName(name)
        except libvirt.libvirtError:
            continue
        if net.isActive():
            net.destroy()
        net.undefine()
        removed.networks.append(name)
    return removed


def domain_labels(dom: Any) -> dict[str, str]:
    """The ``key=value`` words labkit writes into each domain's description (lab, scenario, node, path)."""
    root = ET.fromstring(dom.XMLDesc(0))
    text = (root.findtext("description") or "").strip()
    if not text.startswith("labkit "):
        return {}
    head, _, path = text.partition(" path=")
    labels = dict(word.split("=", 1) for word in head.split()[1:] if "=" in word)
    if path:
        labels["path"] = path
    return labels


def labs_in_libvirt(conn: Any) -> set[str]:
    """Lab names found from libvirt alone (their management networks), for rediscovery."""
    names = set()
    for net in conn.listAllNetworks(0):
        name = net.name()
        if name.startswith("labkit-") and name.endswith("-mgmt"):
            names.add(name[len("labkit-") : -len("-mgmt")])
    return names
