"""A class's pure parts: clone XML rewrites, the roster, room on the host, grid cells, per-trainee progress."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labkit.classroom.capacity import Capacity, ksm_state, turn_ksm_off, turn_ksm_on
from labkit.classroom.classroom import first_failure
from labkit.classroom.progress import TraineeReporter
from labkit.classroom.record import Cell, ClassRecord
from labkit.classroom.roster import check_names, numbered, read_roster
from labkit.errors import HostError, UsageError
from labkit.kinds.checks import CheckResult
from labkit.machines.clones import CloneSpec, clone_domain_xml, clone_snapshot_xml

GOLDEN = """<domain type='qemu'>
  <name>labkit-c1-golden-node1</name>
  <uuid>11111111-2222-3333-4444-555555555555</uuid>
  <description>labkit lab=c1-golden scenario=pod-routes node=node1 path=/s/scenario.yaml</description>
  <devices>
    <disk type='file' device='disk'>
      <source file='/var/lib/libvirt/images/labkit-c1-golden-node1.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:aa:bb:01'/>
      <source network='labkit-c1-golden-mgmt' portid='abc' bridge='virbr3'/>
      <target dev='vnet4'/>
    </interface>
    <interface type='network'>
      <mac address='52:54:00:aa:bb:02'/>
      <source network='labkit-c1-golden-lab' bridge='virbr4'/>
    </interface>
  </devices>
</domain>"""

SPEC = CloneSpec(
    name="labkit-c1-alice-node1",
    description="labkit lab=c1-alice scenario=pod-routes node=node1 class=c1 path=/s/scenario.yaml",
    disk=Path("/var/lib/libvirt/images/labkit-c1-alice-node1.img"),
    networks={"labkit-c1-golden-mgmt": "labkit-c1-alice-mgmt", "labkit-c1-golden-lab": "labkit-c1-alice-lab"},
    uuid="99999999-8888-7777-6666-555555555555",
)


def test_the_clone_definition_has_its_own_name_uuid_disk_and_networks_and_the_golden_macs() -> None:
    root = ET.fromstring(clone_domain_xml(GOLDEN, SPEC))
    assert root.findtext("name") == "labkit-c1-alice-node1"
    assert root.findtext("uuid") == SPEC.uuid
    assert "lab=c1-alice" in (root.findtext("description") or "") and "class=c1" in (
        root.findtext("description") or ""
    )
    assert root.find("./devices/disk/source").get("file") == str(SPEC.disk)  # type: ignore[union-attr]
    sources = [i.find("source") for i in root.findall("./devices/interface")]
    assert [s.get("network") for s in sources] == ["labkit-c1-alice-mgmt", "labkit-c1-alice-lab"]  # type: ignore[union-attr]
    assert all(s.get("bridge") is None and s.get("portid") is None for s in sources)  # type: ignore[union-attr]
    assert root.find("./devices/interface/target") is None
    macs = [m.get("address") for m in root.findall("./devices/interface/mac")]
    assert macs == ["52:54:00:aa:bb:01", "52:54:00:aa:bb:02"]  # the memory image knows these


def test_the_clone_snapshot_has_the_same_rewrites_inside_and_no_parent() -> None:
    snapshot = (
        "<domainsnapshot><name>routes-ok@2</name><description>labkit-snapshot {}</description>"
        "<parent><name>nodes-ok</name></parent><memory snapshot='internal'/>"
        "<disks><disk name='vda' snapshot='internal'/></disks>" + GOLDEN + "</domainsnapshot>"
    )
    root = ET.fromstring(clone_snapshot_xml(snapshot, SPEC))
    assert root.findtext("name") == "routes-ok@2"  # libvirt's name of the snapshot inside the copied disk
    assert root.find("parent") is None
    assert root.findtext("description") == "labkit-snapshot {}"
    assert root.findtext("domain/name") == "labkit-c1-alice-node1"
    assert root.findtext("domain/uuid") == SPEC.uuid
    assert root.find("domain/devices/disk/source").get("file") == str(SPEC.disk)  # type: ignore[union-attr]


def test_a_snapshot_without_its_domain_cannot_be_cloned() -> None:
    with pytest.raises(Exception, match="no domain definition"):
        clone_snapshot_xml("<domainsnapshot><name>x</name></domainsnapshot>", SPEC)


def test_roster_names_each_bad_line(tmp_path: Path) -> None:
    roster = tmp_path / "roster.txt"
    roster.write_text("# class of April\nalice\nbob  # late\n\n")
    assert read_roster(roster) == ["alice", "bob"]
    roster.write_text("alice\nBob Smith\n")
    with pytest.raises(UsageError, match=r"roster.txt:2: 'Bob Smith' is not a trainee name"):
        read_roster(roster)
    roster.write_text("alice\nalice\n")
    with pytest.raises(UsageError, match="listed twice"):
        read_roster(roster)
    roster.write_text("golden\n")
    with pytest.raises(UsageError, match="not a trainee name"):
        read_roster(roster)
    assert numbered(3) == ["trainee1", "trainee2", "trainee3"]
    with pytest.raises(UsageError):
        numbered(0)


def test_lab_names_are_checked_before_anything_is_made() -> None:
    check_names("c1", ["alice"])
    with pytest.raises(UsageError, match="longer than 42"):
        check_names("a-rather-long-class-name-for-april", ["a-rather-long-trainee"])
    with pytest.raises(UsageError):
        check_names("Bad Class", ["alice"])


def test_capacity_says_how_many_labs_fit() -> None:
    room = Capacity(
        ram_available_mib=9000, ram_per_lab_mib=1400, disk_free_bytes=10 * 2**30, disk_per_lab_bytes=2**30
    )
    assert room.labs_that_fit() == 5  # (9000 - 1024) // 1400
    room.refuse_beyond(5, "c1")
    with pytest.raises(HostError, match="6 more trainee labs do not fit on this host, 5 do"):
        room.refuse_beyond(6, "c1")
    by_disk = Capacity(
        ram_available_mib=90000, ram_per_lab_mib=1400, disk_free_bytes=3 * 2**30, disk_per_lab_bytes=2**30
    )
    assert by_disk.labs_that_fit() == 3


def test_ksm_is_turned_on_only_when_off(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("0\n")
    (tmp_path / "pages_sharing").write_text("25600\n")
    assert ksm_state(tmp_path) == {"run": 0, "sharing_mib": 100}
    assert turn_ksm_on(tmp_path) is True
    assert turn_ksm_on(tmp_path) is False  # already on: not labkit's to turn off later
    turn_ksm_off(tmp_path)
    assert (tmp_path / "run").read_text().strip() == "0"
    assert ksm_state(tmp_path / "missing") is None


def test_a_cell_names_the_first_failing_check() -> None:
    ok = CheckResult("routes", "node1", True, "ok")
    bad = CheckResult("pod-ping", "node2", False, "100% packet\n loss")
    down = CheckResult("routes", "node2", False, "did not answer", unreachable=True)
    assert first_failure([ok]).status == "verified"
    cell = first_failure([ok, bad])
    assert cell.status == "failing" and cell.detail == "pod-ping on node2: 100% packet loss"
    assert first_failure([bad, down]).status == "unreachable"


def test_the_record_round_trips() -> None:
    record = ClassRecord("c1", "pod-routes", "/s", "routes", "c1-golden", ["alice"])
    record.set_cell("alice", "routes", Cell("failing", "x on node1: y", "2026-11-30T00:00:00+00:00"))
    again = ClassRecord.from_json(record.to_json())
    assert again == record and again.cell("alice", "routes") == Cell(
        "failing", "x on node1: y", "2026-11-30T00:00:00+00:00"
    )


class Rows:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, int | None]] = []

    def start(self, nodes: list[str], total: int) -> None: ...
    def step(self, node: str, text: str, done: int | None = None) -> None:
        self.lines.append((node, text, done))

    def note(self, text: str) -> None: ...
    def finish(self) -> None: ...


def test_a_trainee_row_stands_where_every_node_has_reached() -> None:
    rows = Rows()
    reporter = TraineeReporter(rows, "alice")
    reporter.start(["node1", "node2"], 3)
    reporter.step("node1", "cloned", 1)
    reporter.step("node2", "cloned", 1)
    reporter.step("node1", "clock set", 3)
    assert rows.lines == [
        ("alice", "node1: cloned", 0),
        ("alice", "node2: cloned", 1),
        ("alice", "node1: clock set", 1),
    ]
