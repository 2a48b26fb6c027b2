"""Snapshot sets on the real three-node lab: take, reset in seconds, all-or-nothing, refusals, lock."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from labkit.errors import LabError, UsageError
from labkit.lab import Lab
from labkit.lock import lab_lock
from labkit.machines.domains import lab_domains
from labkit.machines.libvirt_host import libvirt_connect
from labkit.machines.snapshots import SnapshotRecord, now, take_set

from .lab_helpers import IPS, NODES, labkit_cli

pytestmark = pytest.mark.vm


def _snapshot_names(lab: Lab) -> dict[str, set[str]]:
    return {
        node: {s.getName() for s in dom.listAllSnapshots(0)}
        for node, dom in lab_domains(libvirt_connect(), lab.name, NODES).items()
    }


def test_reset_brings_back_every_node_and_the_clock(three_node_lab: Lab) -> None:
    lab = three_node_lab
    for node in NODES:
        assert lab.run(node, f"echo before-{node} > /tmp/marker").ok
    labkit_cli("snapshot", "s1", "--name", lab.name)
    assert all("s1" in names for names in _snapshot_names(lab).values())
    for node in NODES:
        assert lab.run(node, "echo after > /tmp/marker && sudo rm -f /etc/hostname").ok
    time.sleep(3)  # let the guests' clocks run ahead of the snapshot's, so the clock fix has work to do
    result = labkit_cli("reset", "s1", "--name", lab.name, "--json")
    report = json.loads(result.stdout)
    print(f"reset of {len(NODES)} VMs: {report['seconds']:.1f} s (revert {report['revert_seconds']:.1f} s)")
    for node in NODES:
        assert lab.run(node, "cat /tmp/marker").stdout.strip() == f"before-{node}"
        assert lab.run(node, "cat /etc/hostname").stdout.strip() == node
        guest = float(lab.run(node, "date +%s.%N").stdout)
        assert abs(guest - time.time()) < 2.0, f"{node}'s clock is {guest - time.time():+.1f} s off"
    assert set(report["clock_offsets"]) == set(NODES)


def test_snapshots_lists_the_set_with_its_record(three_node_lab: Lab) -> None:
    listing = json.loads(labkit_cli("snapshots", "--name", three_node_lab.name, "--json").stdout)
    s1 = next(s for s in listing["snapshots"] if s["name"] == "s1")
    assert s1["complete"] is True and sorted(s1["nodes"]) == NODES
    assert s1["taken"] and s1["verified"] is False
    assert s1["vm_state_bytes"] and s1["vm_state_bytes"] > 10 * 2**20
    assert listing["disk_bytes"] > 0
    print(f"snapshot set s1: {s1['vm_state_bytes'] / 2**20:.0f} MiB of VM state over 3 VMs")


def test_snapshot_refuses_to_overwrite_unless_forced(three_node_lab: Lab) -> None:
    refused = labkit_cli("snapshot", "s1", "--name", three_node_lab.name, check=False)
    assert refused.returncode == 2 and "already exists" in refused.stderr
    labkit_cli("snapshot", "s1", "--name", three_node_lab.name, "--force")


def test_reset_refused_when_one_vm_lacks_the_snapshot(three_node_lab: Lab) -> None:
    lab = three_node_lab
    labkit_cli("snapshot", "partial", "--name", lab.name)
    dom3 = lab_domains(libvirt_connect(), lab.name, NODES)["node3"]
    dom3.snapshotLookupByName("partial", 0).delete(0)
    lab.run("node1", "echo untouched > /tmp/marker2")
    result = labkit_cli("reset", "partial", "--name", lab.name, check=False)
    assert result.returncode == 2
    assert "missing on node3" in result.stderr and "nothing was reverted" in result.stderr
    assert lab.run("node1", "cat /tmp/marker2").stdout.strip() == "untouched"
    labkit_cli("snapshot", "delete", "partial", "--name", lab.name)
    assert not any("partial" in names for names in _snapshot_names(lab).values())


def test_reset_refused_while_another_command_holds_the_lab(three_node_lab: Lab) -> None:
    with lab_lock(three_node_lab.paths.lock, three_node_lab.name, "up"):
        result = labkit_cli("reset", "s1", "--name", three_node_lab.name, check=False)
    assert result.returncode == 2 and "is busy: labkit up" in result.stderr


def test_set_rolled_back_when_a_vm_stops_midway(three_node_lab: Lab) -> None:
    lab = three_node_lab
    conn = libvirt_connect()
    domains = lab_domains(conn, lab.name, NODES)
    ordered = {n: domains[n] for n in NODES}

    def stop_node3_after_first(node: str) -> None:
        if node == "node1":
            ordered["node3"].destroy()  # pulled out from under the set, between two snapshots

    with pytest.raises(LabError, match="failed on node3") as caught:
        take_set(ordered, SnapshotRecord(name="doomed", taken=now()), on_node=stop_node3_after_first)
    assert "removed it from the 2 VMs already done" in caught.value.message
    assert not any("doomed" in names for names in _snapshot_names(lab).values())
    # bring node3 back for whatever runs next: a reset to s1 restarts it from its snapshot
    report = lab.reset("s1")
    assert lab.run("node3", "hostname").stdout.strip() == "node3"
    assert report.clock_offsets


def test_retry_goes_back_to_the_previous_verified_stage(three_node_lab: Lab) -> None:
    with pytest.raises(UsageError, match="no verified snapshot of a stage before etcd"):
        three_node_lab.retry("etcd")
    # a cri-ok taken by hand, without the cri checks passing, is not a verified stage: retry refuses it
    labkit_cli("snapshot", "cri-ok", "--name", three_node_lab.name)
    refused = labkit_cli("retry", "etcd", "--name", three_node_lab.name, check=False)
    assert refused.returncode == 2 and "snapshot cri-ok is not verified" in refused.stderr, refused.stderr
    # the set as `labkit solve cri` takes it once the cri checks pass (this test is about retry's choice)
    three_node_lab.snapshot("cri-ok", force=True, stage="cri", verified=True)
    three_node_lab.run("node1", "echo broken > /tmp/retry-marker")
    result = labkit_cli("retry", "etcd", "--name", three_node_lab.name)
    assert "back at cri-ok" in result.stdout
    assert three_node_lab.run("node1", "test -e /tmp/retry-marker").exited != 0


def test_ctrl_c_during_reset_then_reset_again_completes(three_node_lab: Lab) -> None:
    lab = three_node_lab
    for node in NODES:
        assert lab.run(node, "echo after-s1 > /tmp/marker").ok
    command = [sys.executable, "-c", "from labkit.cli import main; main()", "reset", "s1", "--name", lab.name]
    lab.paths.lock.write_text("")
    interrupted = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Interrupt once the reset holds the lab: from there it still has >= 2.6 s of revert and the SSH wait ahead
    # (vm-lab.md), so the interrupt always lands inside the reset, never before it or after it.
    deadline = time.monotonic() + 60
    while "labkit reset" not in lab.paths.lock.read_text():
        assert interrupted.poll() is None and time.monotonic() < deadline, "the reset never took the lock"
        time.sleep(0.05)
    interrupted.send_signal(signal.SIGINT)
    stdout, stderr = interrupted.communicate(timeout=300)
    print(f"interrupted reset exited {interrupted.returncode}: {stderr.strip().splitlines()[-1:]}")
    assert interrupted.returncode == 130, (stdout, stderr)
    assert "interrupted: run the same command again" in stderr and "reset to s1" not in stdout
    report = json.loads(labkit_cli("reset", "s1", "--name", lab.name, "--json").stdout)
    assert set(report["clock_offsets"]) == set(NODES)
    for node in NODES:
        assert lab.run(node, "cat /tmp/marker").stdout.strip() == f"before-{node}"


def _markers(lab: Lab) -> dict[str, str]:
    return {node: lab.run(node, "cat /tmp/replace-marker").stdout.strip() for node in NODES}


def test_failed_forced_replacement_keeps_the_old_set(three_node_lab: Lab) -> None:
    """Fault: node3 paused during `snapshot keep --force` (its snapshot is then not of a running VM). Before the
    fix the old set was deleted on every node first, so the failure left no `keep` at all."""
    lab = three_node_lab
    for node in NODES:
        assert lab.run(node, f"echo keep-{node} > /tmp/replace-marker").ok
    labkit_cli("snapshot", "keep", "--name", lab.name)
    for node in NODES:
        assert lab.run(node, "echo changed > /tmp/replace-marker").ok
    node3 = lab_domains(libvirt_connect(), lab.name, NODES)["node3"]
    node3.suspend()
    try:
        result = labkit_cli("snapshot", "keep", "--name", lab.name, "--force", check=False)
    finally:
        node3.resume()
    assert result.returncode != 0 and "failed on node3" in result.stderr, result.stderr
    assert "the previous one is kept" in result.stderr
    assert _keep_counts(lab) == dict.fromkeys(NODES, 1), "the old set on every node, nothing of the new one"
    listing = json.loads(labkit_cli("snapshots", "--name", lab.name, "--json").stdout)
    assert [s["complete"] for s in listing["snapshots"] if s["name"] == "keep"] == [True]
    labkit_cli("reset", "keep", "--name", lab.name)
    assert _markers(lab) == {node: f"keep-{node}" for node in NODES}


def _keep_counts(lab: Lab) -> dict[str, int]:
    """libvirt snapshots per node that belong to set keep (libvirt names them keep or keep@GEN)."""
    return {
        node: len([n for n in names if n.split("@")[0] == "keep"])
        for node, names in _snapshot_names(lab).items()
    }


KILL_DURING_TAKE = """
import os, signal, sys
from labkit.machines.libvirt_host import libvirt_connect
from labkit.machines.domains import lab_domains
from labkit.machines.snapshots import SnapshotRecord, now, take_set

lab, how, nodes = sys.argv[1], sys.argv[2], sys.argv[3:]
domains = lab_domains(libvirt_connect(), lab, nodes)

def fault(node):
    if node == "node2":  # node1 and node2 have the new snapshot, node3 not yet
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise KeyboardInterrupt

try:
    take_set({n: domains[n] for n in nodes}, SnapshotRecord(name="keep", taken=now()), force=True, on_node=fault)
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_interrupted_replacement_keeps_the_old_set(three_node_lab: Lab, how: str) -> None:
    """Fault: Ctrl-C, or SIGKILL, after two of three nodes have the replacement. The old set stays the set; what
    the kill left behind is never listed and is deleted by the next command."""
    lab = three_node_lab
    for node in NODES:
        assert lab.run(node, f"echo keep-{node} > /tmp/replace-marker").ok
    labkit_cli("snapshot", "keep", "--name", lab.name, "--force")
    before = {
        s["name"]: s
        for s in json.loads(labkit_cli("snapshots", "--name", lab.name, "--json").stdout)["snapshots"]
    }
    assert before["keep"]["complete"]
    for node in NODES:
        assert lab.run(node, "echo changed > /tmp/replace-marker").ok
    taken = subprocess.run(
        [sys.executable, "-c", KILL_DURING_TAKE, lab.name, how, *NODES], capture_output=True, text=True
    )
    assert taken.returncode == (-9 if how == "kill" else 130), taken.stderr
    counts = _keep_counts(lab)
    print(f"{how}: libvirt snapshots of set keep per node after the interrupted take: {counts}")
    if how == "kill":
        assert counts == {"node1": 2, "node2": 2, "node3": 1}, "the old set, plus the killed take's leftovers"
    else:
        assert counts == dict.fromkeys(NODES, 1), "Ctrl-C rolls the new snapshots back at once"
    listing = json.loads(labkit_cli("snapshots", "--name", lab.name, "--json").stdout)["snapshots"]
    keep = [s for s in listing if s["name"] == "keep"]
    assert len(keep) == 1 and keep[0]["complete"] and keep[0]["taken"] == before["keep"]["taken"]
    labkit_cli("reset", "keep", "--name", lab.name)  # the next command: cleans up, then reverts
    assert _markers(lab) == {node: f"keep-{node}" for node in NODES}
    assert _keep_counts(lab) == dict.fromkeys(NODES, 1), "the next command cleaned the leftovers up"
    # and a replacement that goes through replaces it: one set, the new content
    for node in NODES:
        assert lab.run(node, f"echo new-{node} > /tmp/replace-marker").ok
    started = time.monotonic()
    labkit_cli("snapshot", "keep", "--name", lab.name, "--force")
    print(f"replacing a set of {len(NODES)} VMs: {time.monotonic() - started:.1f} s (CLI included)")
    for node in NODES:
        assert lab.run(node, "echo changed > /tmp/replace-marker").ok
    labkit_cli("reset", "keep", "--name", lab.name)
    assert _markers(lab) == {node: f"new-{node}" for node in NODES}
    assert _keep_counts(lab) == dict.fromkeys(NODES, 1)
    labkit_cli("snapshot", "delete", "keep", "--name", lab.name)
    assert _keep_counts(lab) == dict.fromkeys(NODES, 0)


def test_disk_only_snapshot_and_reset_boot_the_vms(three_node_lab: Lab) -> None:
    lab = three_node_lab
    for node in NODES:
        assert lab.run(node, f"echo disk-{node} | sudo tee /root/disk-marker && sync").ok
    started = time.monotonic()
    labkit_cli("snapshot", "d1", "--disk-only", "--name", lab.name)
    print(
        f"disk-only snapshot of {len(NODES)} VMs (shutdown, snapshot, boot): {time.monotonic() - started:.0f} s"
    )
    listing = json.loads(labkit_cli("snapshots", "--name", lab.name, "--json").stdout)
    d1 = next(s for s in listing["snapshots"] if s["name"] == "d1")
    assert d1["disk_only"] is True and d1["complete"] is True and not d1["vm_state_bytes"]
    for node in NODES:
        assert lab.run(node, "echo changed | sudo tee /root/disk-marker && touch /tmp/since-boot").ok
    report = json.loads(labkit_cli("reset", "d1", "--name", lab.name, "--json").stdout)
    print(f"reset to a disk-only set: {report['seconds']:.0f} s (it boots the VMs)")
    for node in NODES:
        assert lab.run(node, "sudo cat /root/disk-marker").stdout.strip() == f"disk-{node}"
        assert lab.run(node, "test -e /tmp/since-boot").exited != 0, "a reset to a disk-only set boots"
        assert f"inet {IPS[node]}/24" in lab.run(node, "ip -4 -o addr show eth1").stdout
    labkit_cli("snapshot", "delete", "d1", "--name", lab.name)
