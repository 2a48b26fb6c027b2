"""The real three-node lab, emulated VMs inside the test's network namespace: up, SSH, converge, destroy.

The lab is the session's shared one (conftest.py); destroying it is marked to run after every other test.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from labkit.lab import Lab
from labkit.machines.domains import lab_domains
from labkit.machines.libvirt_host import libvirt_connect

from .lab_helpers import IPS, LAB, NODES, labkit_cli

pytestmark = pytest.mark.vm

Up = tuple[Lab, dict[str, Any], str]


def test_up_boots_every_node(three_node_up: Up) -> None:
    _, report, progress = three_node_up
    assert sorted(report["booted"]) == NODES
    assert report["already_running"] == []
    for node in NODES:
        assert "/etc/hosts" in report["changed"][node]
        assert "hostname" in report["changed"][node]
    assert "accelerator qemu" in progress or "accelerator kvm" in progress


def test_every_node_has_its_hostname_ip_and_hosts(three_node_up: Up) -> None:
    lab, _, _ = three_node_up
    for node in NODES:
        assert lab.run(node, "hostname").stdout.strip() == node
        addrs = lab.run(node, "ip -4 -o addr show").stdout
        assert f" {IPS[node]}/24 " in addrs, addrs
        hosts = lab.run(node, "cat /etc/hosts").stdout
        for other, ip in IPS.items():
            assert f"{ip}\t{other}" in hosts
        assert "127.0.1.1" not in hosts and "127.0.2.1" not in hosts
        resolved = lab.run(node, f"getent hosts {node}").stdout.split()
        assert resolved[0] == IPS[node], "a node's own name must resolve to its lab IP, not 127.0.X.1"


def test_nodes_reach_each_other_on_the_lab_network(three_node_up: Up) -> None:
    lab, _, _ = three_node_up
    for node in NODES:
        for other in NODES:
            if other != node:
                result = lab.run(node, f"ping -c 1 -W 5 {other}")
                assert result.ok, f"{node} cannot ping {other}: {result.stdout}{result.stderr}"


def test_lab_key_replaced_vagrants_insecure_key(three_node_up: Up) -> None:
    lab, _, _ = three_node_up
    public = lab.paths.ssh_public_key.read_text().strip()
    for node in NODES:
        keys = lab.run(node, "cat ~/.ssh/authorized_keys").stdout.strip().splitlines()
        assert keys == [public]
    from labkit.machines.vagrant_keys import insecure_private_key

    insecure = insecure_private_key()
    assert insecure is not None
    ip = lab.state.nodes["node1"].management_ip if lab.state else None
    assert ip
    refused = subprocess.run(
        [
            "ssh",
            "-i",
            str(insecure),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            f"vagrant@{ip}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused.stderr


def test_labkit_ssh_runs_a_command(three_node_up: Up) -> None:
    result = labkit_cli("ssh", "node2", "--name", LAB, "--", "hostname")
    assert result.stdout.strip() == "node2"


def test_status_json(three_node_up: Up) -> None:
    status = json.loads(labkit_cli("status", "--name", LAB, "--json").stdout)
    assert status["lab"] == LAB and status["scenario"] == "three-node"
    assert [n["state"] for n in status["nodes"]] == ["running"] * 3
    assert status["accel"] in ("kvm", "qemu")
    assert status["nodes"][0]["lab_ip"] == "192.168.56.11"


def test_up_again_converges(three_node_up: Up) -> None:
    result = labkit_cli("up", "three-node", "--name", LAB, "--json")
    data = json.loads(result.stdout)
    assert data["booted"] == []
    assert sorted(data["already_running"]) == NODES
    assert data["changed"] == {n: [] for n in NODES}


def test_status_rediscovers_lab_without_its_state(three_node_up: Up) -> None:
    lab, _, _ = three_node_up
    saved = lab.paths.state.read_bytes()
    lab.paths.state.unlink()
    try:
        status = json.loads(labkit_cli("status", "--name", LAB, "--json").stdout)
        assert status["rediscovered"] is True
        assert status["scenario"] == "three-node"
        assert [n["state"] for n in status["nodes"]] == ["running"] * 3
        assert all(n["management_ip"] for n in status["nodes"])
    finally:
        lab.paths.state.write_bytes(saved)


@pytest.mark.lab_teardown
def test_destroy_leaves_nothing(three_node_up: Up) -> None:
    lab, _, _ = three_node_up
    result = labkit_cli("destroy", LAB, "--json")
    removed = json.loads(result.stdout)
    assert len(removed["domains"]) == 3
    assert len(removed["networks"]) == 2
    conn = libvirt_connect()
    assert lab_domains(conn, LAB) == {}
    assert not [n.name() for n in conn.listAllNetworks(0) if n.name().startswith(f"labkit-{LAB}-")]
    leftovers = [
        v.name()
        for p in conn.listAllStoragePools(0)
        if p.isActive()
        for v in p.listAllVolumes(0)
        if v.name().startswith(f"labkit-{LAB}-")
    ]
    assert leftovers == []
    assert not Path(lab.paths.root).exists()
    again = json.loads(labkit_cli("destroy", LAB, "--json").stdout)
    assert again["domains"] == [] and again["networks"] == []


def test_doctor_is_happy_with_a_working_host(three_node_up: Up) -> None:
    checks = json.loads(labkit_cli("doctor", "--json").stdout)
    failing = [c for c in checks if not c["ok"]]
    assert failing == [], failing
    assert {"vagrant", "libvirtd"} <= {c["name"].split()[0] for c in checks}
