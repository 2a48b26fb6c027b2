"""Snapshot sets: one internal snapshot (with memory) of every domain of a lab under one name, all or nothing.

Measured on libvirt 9.0 (vm-lab.md): a live internal snapshot takes 0.7-0.9 s per VM; a revert 2.6-3.3 s, and
three reverts from three threads (one connection each) finish in 3.2-3.6 s. Each snapshot carries a JSON record
in its description, so names, stages and check results are found again from libvirt alone.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from labkit.errors import LabError, UsageError
from labkit.libvirt_lab import domain_disk_paths

RECORD_PREFIX = "labkit-snapshot "
SHUTDOWN_TIMEOUT = 180.0
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass
class SnapshotRecord:
    """What a snapshot set means: when, at which stage, whether that stage's checks had passed."""

    name: str
    taken: str
    stage: str | None = None
    verified: bool = False
    checks: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    disk_only: bool = False
    """Taken with the VMs shut down: disks only, no memory; a reset to it boots the VMs."""
    verified_stages: list[str] | None = None
    """The lab's verified stages when the set was taken: they are verified again after a reset to it
    (None: a set taken before labkit recorded them)."""

    def to_description(self) -> str:
        return RECORD_PREFIX + json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_description(cls, name: str, text: str | None) -> SnapshotRecord:
        if text and text.startswith(RECORD_PREFIX):
            try:
                data = json.loads(text[len(RECORD_PREFIX) :])
                data["name"] = name
                return cls(**data)
            except (ValueError, TypeError):
                pass
        return cls(name=name, taken="")  # a snapshot someone made by hand: listed, without a record


@dataclass
class SnapshotSet:
    record: SnapshotRecord
    nodes: list[str]
    size_bytes: int | None = None

    def complete(self, all_nodes: list[str]) -> bool:
        return sorted(self.nodes) == sorted(all_nodes)


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise UsageError(f"{name!r} is not a valid snapshot name", "use letters, digits, '.', '_' and '-'")
    return name


def _message(exc: BaseException) -> str:
    getter = getattr(exc, "get_error_message", None)
    return (getter() if getter else None) or str(exc)


def _libvirt() -> Any:
    import libvirt

    return libvirt


def snapshot_xml(record: SnapshotRecord) -> str:
    return (
        "<domainsnapshot>"
        f"<name>{escape(record.name)}</name>"
        f"<description>{escape(record.to_description())}</description>"
        "</domainsnapshot>"
    )


def _has_snapshot(dom: Any, name: str) -> bool:
    return name in {s.getName() for s in dom.listAllSnapshots(0)}


def _record_of(dom: Any, name: str) -> SnapshotRecord:
    snap = dom.snapshotLookupByName(name, 0)
    root = ET.fromstring(snap.getXMLDesc(0))
    return SnapshotRecord.from_description(name, root.findtext("description"))


def take_set(
    domains: dict[str, Any],
    record: SnapshotRecord,
    force: bool = False,
    on_node: Callable[[str], None] | None = None,
) -> list[str]:
    """Snapshot every domain under ``record.name``. On any failure the snapshots already taken are deleted.

    Returns the node names snapshotted. Refuses when the name exists somewhere unless ``force``. With
    ``record.disk_only`` the domains are shut down first and started again afterwards, whatever happened.
    """
    if record.disk_only:
        _shut_down(domains)
        try:
            return _take_set(domains, record, force, on_node, expected_state="shutoff")
        finally:
            _start(domains)
    return _take_set(domains, record, force, on_node, expected_state="running")


def _shut_down(domains: dict[str, Any], timeout: float = SHUTDOWN_TIMEOUT) -> None:
    """ACPI shutdown of every running domain at once; LabError naming the VMs still up after ``timeout``."""
    running = {node: dom for node, dom in domains.items() if dom.isActive()}
    for dom in running.values():
        dom.shutdown()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(dom.isActive() for dom in running.values()):
            return
        time.sleep(1)
    up = sorted(node for node, dom in running.items() if dom.isActive())
    _start(domains)
    raise LabError(
        f"{', '.join(up)} did not shut down within {timeout:.0f} s: no disk-only snapshot taken",
        "retry, or take a snapshot with memory (without --disk-only)",
    )


def _start(domains: dict[str, Any]) -> None:
    for dom in domains.values():
        if not dom.isActive():
            dom.create()


def _take_set(
    domains: dict[str, Any],
    record: SnapshotRecord,
    force: bool,
    on_node: Callable[[str], None] | None,
    expected_state: str,
) -> list[str]:
    libvirt = _libvirt()
    check_name(record.name)
    existing = [node for node, dom in domains.items() if _has_snapshot(dom, record.name)]
    if existing and not force:
        raise UsageError(
            f"snapshot {record.name} already exists on {', '.join(sorted(existing))}",
            f"choose another name, or `labkit snapshot {record.name} --force` to replace it",
        )
    running = expected_state == "running"
    wrong = [node for node, dom in domains.items() if bool(dom.isActive()) != running]
    if wrong:
        raise LabError(
            f"cannot snapshot: {', '.join(sorted(wrong))} {'not running' if running else 'still running'}",
            "`labkit up` first (snapshots are taken with the VMs running)",
        )
    for node in existing:
        delete_on(domains[node], record.name)
    taken: list[str] = []
    xml = snapshot_xml(record)
    for node, dom in domains.items():
        try:
            if bool(dom.isActive()) != running:
                # a shut-off domain would get a disk-only snapshot: not the running state of the set
                raise libvirt.libvirtError(
                    f"{dom.name()} is no longer {expected_state.replace('shutoff', 'shut off')}"
                )
            snap = dom.snapshotCreateXML(xml, 0)
            if ET.fromstring(snap.getXMLDesc(0)).findtext("state") != expected_state:
                snap.delete(0)
                raise libvirt.libvirtError(f"{dom.name()} changed state while its snapshot was taken")
        except libvirt.libvirtError as exc:
            rollback_errors = []
            for done in taken:
                try:
                    delete_on(domains[done], record.name)
                except libvirt.libvirtError as cleanup:
                    rollback_errors.append(f"{done}: {_message(cleanup)}")
            extra = f"; could not remove it from {', '.join(rollback_errors)}" if rollback_errors else ""
            raise LabError(
                f"snapshot {record.name} failed on {node}: {_message(exc)}; "
                f"removed it from the {len(taken)} VMs already done{extra}",
                "check the VM with `labkit status`; nothing of this snapshot set is kept",
            ) from None
        taken.append(node)
        if on_node:
            on_node(node)
    return taken


def delete_on(dom: Any, name: str) -> None:
    libvirt = _libvirt()
    try:
        dom.snapshotLookupByName(name, 0).delete(0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
            raise


def delete_set(domains: dict[str, Any], name: str) -> list[str]:
    removed = []
    for node, dom in domains.items():
        if _has_snapshot(dom, name):
            delete_on(dom, name)
            removed.append(node)
    if not removed:
        raise UsageError(f"no snapshot named {name}", "see `labkit snapshots`")
    return removed


def list_record(domains: dict[str, Any], name: str) -> SnapshotRecord:
    """The record of snapshot ``name`` (from the first domain that has it)."""
    for dom in domains.values():
        if _has_snapshot(dom, name):
            return _record_of(dom, name)
    raise UsageError(f"no snapshot named {name}", "see `labkit snapshots`")


def list_sets(domains: dict[str, Any]) -> list[SnapshotSet]:
    """Every snapshot name found on the lab's domains, with its record, oldest first."""
    sets: dict[str, SnapshotSet] = {}
    for node, dom in sorted(domains.items()):
        for snap in dom.listAllSnapshots(0):
            name = snap.getName()
            if name not in sets:
                sets[name] = SnapshotSet(record=_record_of(dom, name), nodes=[])
            sets[name].nodes.append(node)
    sizes = _vm_state_sizes(domains)
    for name, snapshot_set in sets.items():
        snapshot_set.size_bytes = sizes.get(name)
    return sorted(sets.values(), key=lambda s: (s.record.taken, s.record.name))


def _vm_state_sizes(domains: dict[str, Any]) -> dict[str, int]:
    """Bytes of saved VM state per snapshot name over all domains (``qemu-img snapshot -l``'s VM SIZE)."""
    totals: dict[str, int] = {}
    for dom in domains.values():
        for path in domain_disk_paths(dom):
            try:
                out = subprocess.run(
                    ["qemu-img", "info", "-U", "--output=json", path],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=True,
                ).stdout
            except (OSError, subprocess.SubprocessError):
                continue
            for snap in json.loads(out).get("snapshots", []):
                totals[snap["name"]] = totals.get(snap["name"], 0) + int(snap.get("vm-state-size", 0))
    return totals


def disk_usage(domains: dict[str, Any]) -> int:
    """Bytes the lab's disks take on the host (their qcow2 files, snapshots included)."""
    total = 0
    for dom in domains.values():
        for path in domain_disk_paths(dom):
            try:
                total += dom.blockInfo(path, 0)[2]
            except Exception:  # a disk that vanished counts as nothing
                continue
    return total


def revert_set(
    domain_names: dict[str, str],
    name: str,
    connect: Callable[[], Any],
    on_node: Callable[[str], None] | None = None,
) -> None:
    """Revert every domain to ``name`` in parallel, one libvirt connection per thread (libvirt serialises calls
    on one connection). Domains are given by name so each thread looks its own up. A disk-only snapshot
    (taken shut off) is reverted and booted."""
    libvirt = _libvirt()
    flags = libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_FORCE | libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING

    def revert(node: str) -> None:
        conn = connect()
        try:
            dom = conn.lookupByName(domain_names[node])
            snap = dom.snapshotLookupByName(name, 0)
            dom.revertToSnapshot(snap, flags)
        finally:
            conn.close()
        if on_node:
            on_node(node)

    with ThreadPoolExecutor(max_workers=len(domain_names)) as pool:
        futures = {node: pool.submit(revert, node) for node in domain_names}
    failures = []
    for node, future in futures.items():
        exc = future.exception()
        if exc is not None:
            failures.append(f"{node}: {_message(exc)}")
    if failures:
        raise LabError(f"reset to {name} failed on {'; '.join(failures)}", f"run `labkit reset {name}` again")


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
