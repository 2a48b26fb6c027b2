"""Snapshot sets: one internal snapshot (with memory) of every domain of a lab under one name, all or nothing.

Measured on libvirt 9.0 (vm-lab.md): a live internal snapshot takes 0.7-0.9 s per VM; a revert 2.6-3.3 s, and
three reverts from three threads (one connection each) finish in 3.2-3.6 s. Each snapshot carries a JSON record
in its description, so names, stages and check results are found again from libvirt alone.

A set is found by the name in its record, not by libvirt's snapshot name, so that replacing it never deletes
the old one first. Libvirt cannot rename an internal snapshot: measured on 9.0, a redefine under another name is
accepted, but reverting to it kills the domain ("Snapshot 'x' does not exist in one or more devices"). So a
replacement is taken beside the old set as the next *generation* (libvirt names ``NAME@GEN``), every record
marked ``pending``. Then one metadata write swaps them: the *anchor* node's record (the first node, which is
snapshotted first) is redefined without ``pending`` (``VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE``: 0.02 s, and a
revert afterwards works). Only then is the old generation deleted. A set is valid when its anchor record is
committed and every node has its snapshot; a generation whose anchor is still pending is what a take (or a
delete) that was interrupted, even by SIGKILL, left behind: never shown, and deleted by the next command that
holds the lab's lock.
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
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from xml.sax.saxutils import escape

from labkit.errors import LabError, UsageError
from labkit.machines.domains import domain_disk_paths

RECORD_PREFIX = "labkit-snapshot "
GENERATION_SEPARATOR = "@"  # libvirt names of later generations: NAME@GEN (never valid in a set's name)
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
    generation: int = 0
    """Which take of the set this is (0: a record from before generations, valid as it is)."""
    nodes: list[str] = field(default_factory=list)
    """The nodes the set was taken on, the anchor (whose record commits the set) first."""
    pending: bool = False
    """Being taken or deleted: only the anchor's record is ever switched to False, and that commits the set."""

    def to_description(self) -> str:
        return RECORD_PREFIX + json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_description(cls, name: str, text: str | None) -> SnapshotRecord:
        """The record in a snapshot's description; ``name`` (libvirt's) when it names no set."""
        if text and text.startswith(RECORD_PREFIX):
            try:
                data = json.loads(text[len(RECORD_PREFIX) :])
                if not isinstance(data.get("name"), str) or not data["name"]:
                    data["name"] = name
                return cls(**data)
            except (ValueError, TypeError, AttributeError):
                pass
        return cls(name=name, taken="")  # a snapshot someone made by hand: listed, without a record


@dataclass
class SnapshotSet:
    record: SnapshotRecord
    nodes: list[str]
    size_bytes: int | None = None
    snapshots: dict[str, str] = field(default_factory=dict)
    """node -> libvirt's name of its snapshot in this set."""

    def complete(self, all_nodes: list[str]) -> bool:
        return sorted(self.nodes) == sorted(all_nodes)


@dataclass
class _Generation:
    """The snapshots of one take of a set, over the lab's domains."""

    name: str
    generation: int
    records: dict[str, SnapshotRecord] = field(default_factory=dict)
    snapshots: dict[str, str] = field(default_factory=dict)

    @property
    def nodes(self) -> list[str]:
        recorded = next((r.nodes for r in self.records.values() if r.nodes), None)
        return list(recorded) if recorded else sorted(self.records)

    @property
    def anchor(self) -> SnapshotRecord | None:
        """The record that commits the set (None for records from before generations, or a lost anchor)."""
        recorded = self.nodes
        return self.records.get(recorded[0]) if recorded else None

    @property
    def legacy(self) -> bool:
        return all(not r.nodes for r in self.records.values())

    @property
    def interrupted(self) -> bool:
        """Left by a take or a delete that did not finish: never a valid set."""
        anchor = self.anchor
        return not self.legacy and anchor is not None and anchor.pending

    @property
    def committed(self) -> bool:
        if self.legacy:
            return True
        anchor = self.anchor
        return anchor is not None and not anchor.pending

    def complete_on(self, domains: dict[str, Any]) -> bool:
        wanted = set(domains) if self.legacy else set(self.nodes) | set(domains)
        return wanted <= set(self.snapshots)

    def as_set(self) -> SnapshotSet:
        anchor = self.anchor if self.anchor is not None else next(iter(self.records.values()))
        return SnapshotSet(record=anchor, nodes=sorted(self.snapshots), snapshots=dict(self.snapshots))


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


def snapshot_xml(record: SnapshotRecord, libvirt_name: str | None = None) -> str:
    return (
        "<domainsnapshot>"
        f"<name>{escape(libvirt_name or record.name)}</name>"
        f"<description>{escape(record.to_description())}</description>"
        "</domainsnapshot>"
    )


def _generations(domains: dict[str, Any]) -> dict[str, list[_Generation]]:
    """Every set name found on the domains -> its generations, oldest first (one description read each)."""
    found: dict[tuple[str, int], _Generation] = {}
    for node, dom in domains.items():
        for snap in dom.listAllSnapshots(0):
            libvirt_name = snap.getName()
            root = ET.fromstring(snap.getXMLDesc(0))
            record = SnapshotRecord.from_description(libvirt_name, root.findtext("description"))
            key = (record.name, record.generation)
            generation = found.setdefault(key, _Generation(record.name, record.generation))
            generation.records[node] = record
            generation.snapshots[node] = libvirt_name
    sets: dict[str, list[_Generation]] = {}
    for (name, _), generation in sorted(found.items()):
        sets.setdefault(name, []).append(generation)
    return sets


def _current(generations: list[_Generation], domains: dict[str, Any]) -> _Generation | None:
    """The valid generation of a set: the newest committed one with a snapshot on every node."""
    valid = [g for g in generations if g.committed and g.complete_on(domains)]
    return valid[-1] if valid else None


def _visible(generations: list[_Generation], domains: dict[str, Any]) -> _Generation | None:
    """What stands for a set: its valid generation, else the newest not interrupted one (incomplete)."""
    current = _current(generations, domains)
    if current is not None:
        return current
    shown = [g for g in generations if not g.interrupted]
    return shown[-1] if shown else None


def _anchor_last(nodes: list[str], anchor: str | None) -> list[str]:
    """Deletion order: the anchor's snapshot last, so that whatever an interrupted deletion leaves still has
    its pending anchor (and is known as a leftover), never a set without one."""
    return sorted(nodes, key=lambda node: node == anchor)


def _delete_generation(domains: dict[str, Any], generation: _Generation) -> None:
    anchor = generation.nodes[0] if generation.nodes else None
    for node in _anchor_last(list(generation.snapshots), anchor):
        if node in domains:
            delete_on(domains[node], generation.snapshots[node])


def cleanup_sets(domains: dict[str, Any]) -> list[str]:
    """Delete what interrupted takes and deletes left behind, and generations a replacement superseded.

    Call it holding the lab's lock (a take in progress looks interrupted). Best effort: what cannot be deleted
    now stays hidden and is tried again next time. Returns the libvirt snapshot names deleted (node/name).
    """
    libvirt = _libvirt()
    removed = []
    for generations in _generations(domains).values():
        current = _current(generations, domains)
        for generation in generations:
            superseded = current is not None and generation.generation < current.generation
            if not (generation.interrupted or superseded):
                continue
            anchor = generation.nodes[0] if generation.nodes else None
            for node in _anchor_last(list(generation.snapshots), anchor):
                if node in domains:
                    try:
                        delete_on(domains[node], generation.snapshots[node])
                    except libvirt.libvirtError:
                        break  # the anchor stays: the rest is tried again next time
                    removed.append(f"{node}/{generation.snapshots[node]}")
    return removed


def _redefine(dom: Any, libvirt_name: str, record: SnapshotRecord) -> None:
    """Rewrite a snapshot's record in libvirt's metadata only (the snapshot itself is untouched)."""
    libvirt = _libvirt()
    snap = dom.snapshotLookupByName(libvirt_name, 0)
    xml = snap.getXMLDesc(libvirt.VIR_DOMAIN_SNAPSHOT_XML_SECURE)
    inner = re.search(r"<domain[\s>]", xml)  # the domain's own <description> is inside it: not ours
    split = inner.start() if inner else len(xml)
    head, tail = xml[:split], xml[split:]
    head, count = re.subn(
        r"<description>.*?</description>",
        lambda _m: f"<description>{escape(record.to_description())}</description>",
        head,
        count=1,
        flags=re.S,
    )
    if count != 1:
        raise libvirt.libvirtError(f"snapshot {libvirt_name} of {dom.name()} has no labkit record")
    flags = libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE
    if snap.isCurrent(0):
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT
    dom.snapshotCreateXML(head + tail, flags)


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
    cleanup_sets(domains)  # leftovers of an interrupted take: we hold the lab's lock
    generations = _generations(domains).get(record.name, [])
    shown = _visible(generations, domains)
    if shown is not None and not force:
        raise UsageError(
            f"snapshot {record.name} already exists on {', '.join(sorted(shown.snapshots))}",
            f"choose another name, or `labkit snapshot {record.name} --force` to replace it",
        )
    _refuse_state_other_than(domains, expected_state)
    order = sorted(domains)  # the anchor, whose record commits the set, is snapshotted first
    record.generation = max((g.generation for g in generations), default=0) + 1
    record.nodes = order
    record.pending = True
    libvirt_name = _unused_libvirt_name(domains, record)
    xml = snapshot_xml(record, libvirt_name)
    taken: list[str] = []
    node = order[0]
    try:
        for node in order:
            _snapshot_in_state(domains[node], xml, expected_state)
            taken.append(node)
            if on_node:
                on_node(node)
        node = order[0]
        committed = replace(record, pending=False)
        _redefine(domains[node], libvirt_name, committed)  # the swap: from here on the new set is the set
    except libvirt.libvirtError as exc:
        rollback_errors = _roll_back(domains, taken, libvirt_name)
        raise _take_failed(record, node, exc, taken, rollback_errors, replacing=shown is not None) from None
    except BaseException:  # Ctrl-C, SIGTERM: the new set is still pending, the old one intact
        _roll_back(domains, taken, libvirt_name)
        raise
    record.pending = False
    cleanup_sets(domains)  # the superseded generation; if this is interrupted, the next command finishes it
    return taken


def _refuse_state_other_than(domains: dict[str, Any], expected_state: str) -> None:
    running = expected_state == "running"
    wrong = [node for node, dom in domains.items() if bool(dom.isActive()) != running]
    if wrong:
        raise LabError(
            f"cannot snapshot: {', '.join(sorted(wrong))} {'not running' if running else 'still running'}",
            "`labkit up` first (snapshots are taken with the VMs running)",
        )


def _unused_libvirt_name(domains: dict[str, Any], record: SnapshotRecord) -> str:
    """The set's name, or ``NAME@GEN`` while a snapshot of that name exists (libvirt cannot rename one)."""
    in_use = {s.getName() for dom in domains.values() for s in dom.listAllSnapshots(0)}
    if record.name in in_use:
        return f"{record.name}{GENERATION_SEPARATOR}{record.generation}"
    return record.name


def _snapshot_in_state(dom: Any, xml: str, expected_state: str) -> None:
    """Take one domain's snapshot of the set; a libvirtError, and no snapshot, unless the domain was and stayed
    in ``expected_state``."""
    libvirt = _libvirt()
    if bool(dom.isActive()) != (expected_state == "running"):
        # a shut-off domain would get a disk-only snapshot: not the running state of the set
        raise libvirt.libvirtError(
            f"{dom.name()} is no longer {expected_state.replace('shutoff', 'shut off')}"
        )
    snap = dom.snapshotCreateXML(xml, 0)
    if ET.fromstring(snap.getXMLDesc(0)).findtext("state") != expected_state:
        snap.delete(0)
        raise libvirt.libvirtError(f"{dom.name()} changed state while its snapshot was taken")


def _take_failed(
    record: SnapshotRecord,
    node: str,
    exc: BaseException,
    taken: list[str],
    rollback_errors: list[str],
    replacing: bool,
) -> LabError:
    """The error of a take that failed on ``node`` and was rolled back from the ``taken`` nodes."""
    extra = f"; could not remove it from {', '.join(rollback_errors)}" if rollback_errors else ""
    kept = " (the previous one is kept)" if replacing else ""
    return LabError(
        f"snapshot {record.name} failed on {node}: {_message(exc)}; "
        f"removed it from the {len(taken)} VMs already done{extra}",
        f"check the VM with `labkit status`; nothing of this snapshot set is kept{kept}",
    )


def _roll_back(domains: dict[str, Any], taken: list[str], libvirt_name: str) -> list[str]:
    """Delete a pending take's snapshots; what fails stays pending (hidden, deleted by the next command)."""
    libvirt = _libvirt()
    errors: list[str] = []
    anchor = taken[0] if taken else None  # the anchor is taken first
    for done in _anchor_last(taken, anchor):
        if done == anchor and errors:
            errors.append(f"{done}: kept, pending, until the others are gone")
            break
        try:
            delete_on(domains[done], libvirt_name)
        except libvirt.libvirtError as cleanup:
            errors.append(f"{done}: {_message(cleanup)}")
    return errors


def delete_on(dom: Any, name: str) -> None:
    libvirt = _libvirt()
    try:
        dom.snapshotLookupByName(name, 0).delete(0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
            raise


def delete_set(domains: dict[str, Any], name: str) -> list[str]:
    """Delete every generation of set ``name``. Each anchor record is marked pending first (one metadata write
    each), so an interrupted delete leaves no valid set behind, only leftovers the next command deletes."""
    cleanup_sets(domains)
    generations = [g for g in _generations(domains).get(name, []) if not g.interrupted]
    if not generations:
        raise UsageError(f"no snapshot named {name}", "see `labkit snapshots`")
    for generation in reversed(generations):  # the valid one first
        anchor = generation.anchor
        if anchor is not None and not generation.legacy:
            node = generation.nodes[0]
            _redefine(domains[node], generation.snapshots[node], replace(anchor, pending=True))
    removed: set[str] = set()
    for generation in generations:
        _delete_generation(domains, generation)
        removed.update(n for n in generation.snapshots if n in domains)
    return sorted(removed)


def find_set(domains: dict[str, Any], name: str) -> SnapshotSet | None:
    """Set ``name`` as it stands (its valid generation, else what is left of it), or None if there is none."""
    shown = _visible(_generations(domains).get(name, []), domains)
    return shown.as_set() if shown is not None else None


def list_record(domains: dict[str, Any], name: str) -> SnapshotRecord:
    """The record of snapshot set ``name``."""
    found = find_set(domains, name)
    if found is None:
        raise UsageError(f"no snapshot named {name}", "see `labkit snapshots`")
    return found.record


def list_sets(domains: dict[str, Any], sizes: bool = True) -> list[SnapshotSet]:
    """Every snapshot set of the lab's domains, with its record, oldest first; leftovers of interrupted takes
    are never listed."""
    sets = []
    for generations in _generations(domains).values():
        shown = _visible(generations, domains)
        if shown is not None:
            sets.append(shown.as_set())
    if sizes:
        state_sizes = _vm_state_sizes(domains)
        for snapshot_set in sets:
            names = set(snapshot_set.snapshots.values())
            found = [state_sizes[n] for n in names if n in state_sizes]
            snapshot_set.size_bytes = sum(found) if found else None
    return sorted(sets, key=lambda s: (s.record.taken, s.record.name))


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
    import libvirt

    total = 0
    for dom in domains.values():
        for path in domain_disk_paths(dom):
            try:
                total += dom.blockInfo(path, 0)[2]
            except libvirt.libvirtError:  # a disk that vanished counts as nothing
                continue
    return total


def revert_set(
    domain_names: dict[str, str],
    name: str,
    connect: Callable[[], Any],
    on_node: Callable[[str], None] | None = None,
    snapshots: dict[str, str] | None = None,
) -> None:
    """Revert every domain to set ``name`` in parallel, one libvirt connection per thread (libvirt serialises
    calls on one connection). Domains are given by name so each thread looks its own up; ``snapshots`` gives
    libvirt's snapshot name per node (see :func:`find_set`; default ``name``). A disk-only snapshot (taken shut
    off) is reverted and booted."""
    libvirt = _libvirt()
    flags = libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_FORCE | libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING

    def revert(node: str) -> None:
        conn = connect()
        try:
            dom = conn.lookupByName(domain_names[node])
            snap = dom.snapshotLookupByName((snapshots or {}).get(node, name), 0)
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
