"""Snapshot sets as generations (labkit.machines.snapshots): the swap and the clean-up logic, on fake domains.

The fakes only keep snapshot XML per name, as libvirt's metadata does; the vm tests run the same code on real
libvirt (tests/integration/test_snapshots.py)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import libvirt
import pytest

from labkit.errors import LabError
from labkit.machines.snapshots import (
    SnapshotRecord,
    cleanup_sets,
    delete_set,
    find_set,
    list_sets,
    snapshot_xml,
    take_set,
)

NODES = ["node1", "node2", "node3"]


class NoSnapshot(libvirt.libvirtError):
    def get_error_code(self) -> int:
        return libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT


class FakeSnapshot:
    def __init__(self, dom: FakeDomain, name: str) -> None:
        self.dom, self.name = dom, name

    def getName(self) -> str:
        return self.name

    def getXMLDesc(self, flags: int = 0) -> str:
        return self.dom.xml[self.name]

    def isCurrent(self, flags: int = 0) -> bool:
        return False

    def delete(self, flags: int = 0) -> None:
        if self.dom.fail_delete:
            raise libvirt.libvirtError(f"cannot delete on {self.dom.node}")
        del self.dom.xml[self.name]


class FakeDomain:
    def __init__(self, node: str) -> None:
        self.node = node
        self.xml: dict[str, str] = {}
        self.fail_create = False
        self.fail_delete = False

    def name(self) -> str:
        return f"labkit-t-{self.node}"

    def isActive(self) -> bool:
        return True

    def listAllSnapshots(self, flags: int = 0) -> list[FakeSnapshot]:
        return [FakeSnapshot(self, n) for n in self.xml]

    def snapshotLookupByName(self, name: str, flags: int = 0) -> FakeSnapshot:
        if name not in self.xml:
            raise NoSnapshot(f"no snapshot {name}")
        return FakeSnapshot(self, name)

    def snapshotCreateXML(self, xml: str, flags: int = 0) -> FakeSnapshot:
        root = ET.fromstring(xml)
        name = root.findtext("name") or ""
        if flags & libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE:
            assert name in self.xml, "a redefine only rewrites existing metadata here"
            self.xml[name] = xml
            return FakeSnapshot(self, name)
        if self.fail_create:
            raise libvirt.libvirtError(f"{self.node} failed")
        assert name not in self.xml
        self.xml[name] = xml.replace(
            "</domainsnapshot>",
            "<state>running</state><domain type='qemu'><description>d</description></domain></domainsnapshot>",
        )
        return FakeSnapshot(self, name)


@pytest.fixture
def domains() -> dict[str, FakeDomain]:
    return {node: FakeDomain(node) for node in NODES}


def record(name: str = "s1", stage: str | None = None) -> SnapshotRecord:
    return SnapshotRecord(name=name, taken=f"t-{stage}", stage=stage)


def doms(domains: dict[str, FakeDomain]) -> dict[str, Any]:
    return dict(domains)


def test_first_take_uses_the_set_name_and_commits(domains: dict[str, FakeDomain]) -> None:
    take_set(doms(domains), record(stage="a"))
    assert all(list(d.xml) == ["s1"] for d in domains.values())
    found = find_set(doms(domains), "s1")
    assert found is not None and found.complete(NODES) and found.record.stage == "a"
    assert found.record.pending is False and found.record.generation == 1


def test_forced_replacement_is_taken_beside_then_swapped(domains: dict[str, FakeDomain]) -> None:
    take_set(doms(domains), record(stage="a"))
    take_set(doms(domains), record(stage="b"), force=True)
    assert all(list(d.xml) == ["s1@2"] for d in domains.values())
    (only,) = list_sets(doms(domains), sizes=False)
    assert (
        only.record.name == "s1"
        and only.record.stage == "b"
        and only.snapshots == dict.fromkeys(NODES, "s1@2")
    )
    take_set(doms(domains), record(stage="c"), force=True)  # the free name comes back
    assert all(list(d.xml) == ["s1"] for d in domains.values())


def test_failure_on_one_node_keeps_the_old_set(domains: dict[str, FakeDomain]) -> None:
    take_set(doms(domains), record(stage="a"))
    domains["node3"].fail_create = True
    with pytest.raises(LabError, match=r"failed on node3.*2 VMs already done") as caught:
        take_set(doms(domains), record(stage="b"), force=True)
    assert "previous one is kept" in str(caught.value)
    assert all(list(d.xml) == ["s1"] for d in domains.values())
    found = find_set(doms(domains), "s1")
    assert found is not None and found.record.stage == "a" and found.complete(NODES)


def test_ctrl_c_rolls_the_new_take_back(domains: dict[str, FakeDomain]) -> None:
    take_set(doms(domains), record(stage="a"))

    def interrupt(node: str) -> None:
        if node == "node2":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        take_set(doms(domains), record(stage="b"), force=True, on_node=interrupt)
    assert all(list(d.xml) == ["s1"] for d in domains.values())


def test_what_a_kill_leaves_is_hidden_then_cleaned(domains: dict[str, FakeDomain]) -> None:
    take_set(doms(domains), record(stage="a"))
    pending = SnapshotRecord(name="s1", taken="t-b", stage="b", generation=2, nodes=NODES, pending=True)
    for node in ["node1", "node2"]:  # killed before node3 and before the commit
        domains[node].snapshotCreateXML(snapshot_xml(pending, "s1@2"))
    (only,) = list_sets(doms(domains), sizes=False)
    assert only.record.stage == "a" and only.snapshots == dict.fromkeys(NODES, "s1")
    assert sorted(cleanup_sets(doms(domains))) == ["node1/s1@2", "node2/s1@2"]
    assert all(list(d.xml) == ["s1"] for d in domains.values())


def test_a_kill_after_the_commit_leaves_the_new_set(domains: dict[str, FakeDomain]) -> None:
    take_set(doms(domains), record(stage="a"))
    new = SnapshotRecord(name="s1", taken="t-b", stage="b", generation=2, nodes=NODES, pending=True)
    for node in NODES:
        domains[node].snapshotCreateXML(snapshot_xml(new, "s1@2"))
    committed = snapshot_xml(SnapshotRecord(**{**new.__dict__, "pending": False}), "s1@2")
    domains["node1"].snapshotCreateXML(committed, libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE)
    found = find_set(doms(domains), "s1")  # killed here: before the old generation was deleted
    assert found is not None and found.record.stage == "b"
    cleanup_sets(doms(domains))
    assert all(list(d.xml) == ["s1@2"] for d in domains.values())


def test_hand_damaged_set_is_listed_incomplete_not_cleaned(domains: dict[str, FakeDomain]) -> None:
    take_set(doms(domains), record(stage="a"))
    del domains["node3"].xml["s1"]
    assert cleanup_sets(doms(domains)) == []
    found = find_set(doms(domains), "s1")
    assert found is not None and not found.complete(NODES)


def test_interrupted_delete_leaves_no_valid_set(domains: dict[str, FakeDomain]) -> None:
    take_set(doms(domains), record(stage="a"))
    domains["node2"].fail_delete = True
    with pytest.raises(libvirt.libvirtError):
        delete_set(doms(domains), "s1")
    assert find_set(doms(domains), "s1") is None  # the anchor was marked first: the set is gone at once
    domains["node2"].fail_delete = False
    cleanup_sets(doms(domains))
    assert all(d.xml == {} for d in domains.values())


def test_records_from_before_generations_stay_valid(domains: dict[str, FakeDomain]) -> None:
    legacy = "labkit-snapshot " + '{"name": "old", "taken": "t0", "stage": "cri", "verified": true}'
    for dom in domains.values():
        dom.xml["old"] = (
            f"<domainsnapshot><name>old</name><description>{legacy}</description></domainsnapshot>"
        )
    found = find_set(doms(domains), "old")
    assert found is not None and found.complete(NODES) and found.record.verified
    take_set(doms(domains), record("old", stage="etcd"), force=True)
    assert all(list(d.xml) == ["old@1"] for d in domains.values())
    assert re.search(r'"stage": "etcd"', domains["node1"].xml["old@1"])
