"""Clone a VM with its memory: a new domain that starts at a golden domain's internal snapshot, running.

libvirt has no call for this, but documented operations do it (measured by hand on libvirt 9.0, vm-lab.md):
copy the golden's qcow2 overlay (it holds the snapshot's disk and memory; the box stays its backing file), define
a domain from the golden's definition with a new name, UUID, disk and networks, redefine the snapshot's metadata
for it with the same rewrites, and revert to it: the clone runs at once, its processes alive. ``virDomainSave`` /
``virDomainRestoreFlags`` cannot do it: a restore refuses an XML whose name or UUID differs.

The clone still has the golden's management address: :func:`flap_link` takes its management link down and up,
and the guest asks the new network's DHCP again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.errors import LabError
from labkit.machines.domains import domain_disk_paths
from labkit.machines.libvirt_host import LibvirtHost

COPY_TIMEOUT = 600.0
QEMU_IMG_TIMEOUT = 120.0
LINK_DOWN_SECONDS = 1.0
LIBVIRT_CHANNEL_DIR = "/var/lib/libvirt/qemu/channel/"


@dataclass(frozen=True)
class CloneSpec:
    """What changes from the golden domain to its clone."""

    name: str
    description: str
    disk: Path
    networks: dict[str, str]
    """golden's network name -> the clone's."""
    uuid: str = ""


def _libvirt() -> Any:
    import libvirt

    return libvirt


def _rewrite_domain(domain: ET.Element, spec: CloneSpec) -> None:
    """Name, UUID, description, the first disk's file and every interface's network, in place."""
    for tag, value in (("name", spec.name), ("uuid", spec.uuid), ("description", spec.description)):
        element = domain.find(tag)
        if element is None:
            element = ET.SubElement(domain, tag)
        element.text = value
    disks = domain.findall("./devices/disk[@device='disk']/source")
    if not disks:
        raise LabError(f"the golden domain of {spec.name} has no disk to clone")
    disks[0].set("file", str(spec.disk))
    for iface in domain.findall("./devices/interface"):
        source = iface.find("source")
        if source is None or source.get("network") not in spec.networks:
            continue
        source.set("network", spec.networks[source.get("network", "")])
        for attribute in ("bridge", "portid"):  # the golden's bridge and port: the clone gets its own
            source.attrib.pop(attribute, None)
        target = iface.find("target")
        if target is not None:  # the golden's tap device name (vnetN): libvirt picks a free one
            iface.remove(target)
    for source in domain.findall("./devices/channel[@type='unix']/source"):
        if source.get("path", "").startswith(
            LIBVIRT_CHANNEL_DIR
        ):  # a path libvirt made from the golden's name
            source.attrib.pop("path")


def clone_domain_xml(golden_xml: str, spec: CloneSpec) -> str:
    """The golden's inactive definition rewritten for the clone."""
    domain = ET.fromstring(golden_xml)
    _rewrite_domain(domain, spec)
    return ET.tostring(domain, encoding="unicode")


def clone_snapshot_xml(snapshot_xml: str, spec: CloneSpec) -> str:
    """The golden's snapshot metadata for the clone: its inner domain (what a revert defines) rewritten like
    the clone's own definition, and no parent (the golden's other snapshots are not the clone's)."""
    root = ET.fromstring(snapshot_xml)
    parent = root.find("parent")
    if parent is not None:
        root.remove(parent)
    domain = root.find("domain")
    if domain is None:
        raise LabError(f"the golden's snapshot for {spec.name} has no domain definition: it cannot be cloned")
    _rewrite_domain(domain, spec)
    for disk in root.findall("./disks/disk"):
        source = disk.find("source")
        if source is not None:
            source.set("file", str(spec.disk))
    return ET.tostring(root, encoding="unicode")


def copy_disk(source: Path, target: Path) -> None:
    """Copy a qcow2 overlay sparse (its backing file stays the box), with the source's owner and mode."""
    tmp = target.with_name(f".{target.name}.copy")
    try:
        subprocess.run(
            ["cp", "--sparse=always", "--reflink=auto", str(source), str(tmp)],
            check=True,
            capture_output=True,
            text=True,
            timeout=COPY_TIMEOUT,
        )
        st = source.stat()
        os.chown(tmp, st.st_uid, st.st_gid)
        os.chmod(tmp, st.st_mode & 0o7777)
        tmp.replace(target)
    except subprocess.CalledProcessError as exc:
        raise LabError(f"copying {source} to {target} failed: {exc.stderr.strip()}") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"copying {source} to {target} took over {COPY_TIMEOUT:.0f} s") from None
    finally:
        tmp.unlink(missing_ok=True)


def internal_snapshots(host: LibvirtHost, disk: Path) -> list[str]:
    """Names of the internal snapshots inside a qcow2 file (offline) on ``host``."""
    listed = host.run(["qemu-img", "snapshot", "-U", "-l", str(disk)], timeout=QEMU_IMG_TIMEOUT)
    if not listed.ok:
        raise LabError(
            f"host {host.name}: qemu-img cannot list the snapshots of {disk}: {listed.stderr.strip()}"
        )
    names = []
    for line in listed.stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].isdigit():
            names.append(words[1])
    return names


def keep_only_snapshot(host: LibvirtHost, disk: Path, keep: str) -> list[str]:
    """Delete every internal snapshot of the (offline) copy but ``keep``: the golden's earlier stages are not
    the clone's, and a later snapshot of the clone must not meet a hidden one of the same name."""
    dropped = [name for name in internal_snapshots(host, disk) if name != keep]
    for name in dropped:
        deleted = host.run(["qemu-img", "snapshot", "-d", name, str(disk)], timeout=QEMU_IMG_TIMEOUT)
        if not deleted.ok:
            raise LabError(
                f"host {host.name}: qemu-img cannot delete {name} in {disk}: {deleted.stderr.strip()}"
            )
    return dropped


def golden_disk(dom: Any) -> Path:
    paths = domain_disk_paths(dom)
    if not paths:
        raise LabError(f"{dom.name()} has no disk file to clone")
    return Path(paths[0])


def clone_domain(conn: Any, golden: Any, snapshot: str, spec: CloneSpec, host: LibvirtHost) -> Any:
    """Define the clone of ``golden`` (shut off, so its disk is still) at its snapshot ``snapshot`` on ``host``
    (``conn``), its disk already copied to ``spec.disk`` there, and revert it, running. The caller removes a
    half-made clone on failure (its domain and disk by name)."""
    libvirt = _libvirt()
    if golden.isActive():
        raise LabError(f"{golden.name()} is running: the golden lab must be shut off while it is cloned")
    spec = (
        spec
        if spec.uuid
        else CloneSpec(spec.name, spec.description, spec.disk, spec.networks, str(uuid.uuid4()))
    )
    keep_only_snapshot(host, spec.disk, snapshot)
    definition = clone_domain_xml(golden.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), spec)
    dom = conn.defineXML(definition)
    snap_xml = golden.snapshotLookupByName(snapshot, 0).getXMLDesc(libvirt.VIR_DOMAIN_SNAPSHOT_XML_SECURE)
    flags = libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT
    snap = dom.snapshotCreateXML(clone_snapshot_xml(snap_xml, spec), flags)
    dom.revertToSnapshot(snap, libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING)
    return dom


def interface_xml(dom: Any, network: str) -> str:
    """The live definition of the domain's interface on ``network``."""
    root = ET.fromstring(dom.XMLDesc(0))
    for iface in root.findall("./devices/interface"):
        source = iface.find("source")
        if source is not None and source.get("network") == network:
            return ET.tostring(iface, encoding="unicode")
    raise LabError(f"{dom.name()} has no interface on {network}")


def _with_link(iface: str, state: str) -> str:
    element = ET.fromstring(iface)
    link = element.find("link")
    if link is None:
        link = ET.SubElement(element, "link")
    link.set("state", state)
    return ET.tostring(element, encoding="unicode")


def flap_link(dom: Any, network: str, down_seconds: float = LINK_DOWN_SECONDS) -> None:
    """Take the domain's link on ``network`` down and up again: the guest (systemd-networkd) then asks DHCP."""
    libvirt = _libvirt()
    iface = interface_xml(dom, network)
    dom.updateDeviceFlags(_with_link(iface, "down"), libvirt.VIR_DOMAIN_AFFECT_LIVE)
    time.sleep(down_seconds)
    dom.updateDeviceFlags(_with_link(iface, "up"), libvirt.VIR_DOMAIN_AFFECT_LIVE)


def disk_bytes(path: Path) -> int:
    """Bytes a (sparse) file really takes on disk."""
    return path.stat().st_blocks * 512


def free_bytes(directory: Path) -> int:
    usage = shutil.disk_usage(directory)
    return usage.free
