"""The `flannel` scenario on three emulated VMs with the real programs: flanneld v0.13.0 and the CNI plugins
v0.8.7 built from their projects' source (``source_builds``), etcd from Debian's etcd-server, all served on the
test's loopback under their catalog names and with their real sha256 (``artifact_server``).

One lab for the module (``ci-flannel``, `labkit up flannel --until pods`). Every fault test breaks the lab the
way a trainee does, waits until flanneld shows it (its own journal line), checks that labkit's check names the
fault with evidence from the node, and resets to the verified snapshot it started from. Each finding and the
flanneld line it was seen with are printed (``-s`` or the captured output shows them).
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from labkit.lab import Lab, destroy_by_name

from .artifact_server import ServedArtifacts, missing_binaries, serve_artifacts
from .lab_helpers import IPS, dump_lab_logs, labkit_cli, timed_cli

pytestmark = pytest.mark.vm

LAB = "ci-flannel"
SERVED = [("etcd", "3.4.14"), ("flanneld", "0.13.0"), ("cni-plugins", "0.8.7")]
ETCD = "http://192.168.56.11:2379"
CONF = "/etc/flannel/flanneld.conf"
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def served_flannel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedArtifacts]:
    """etcd, and flanneld and the CNI plugins built from ../shared/upstream, served and in the host cache."""
    for name, version in SERVED:
        why = missing_binaries(name, version)
        if why is not None:
            pytest.skip(f"artifact {name} {version}: {why}")
    started = time.monotonic()
    with serve_artifacts(SERVED, tmp_path_factory.mktemp("flannel-real")) as served:
        served.fetch()
        TIMES["builds and fetch"] = round(time.monotonic() - started, 1)
        yield served


@pytest.fixture(scope="module")
def flannel_lab(libvirt_host: Any, served_flannel: ServedArtifacts) -> Iterator[Lab]:
    destroy_by_name(LAB)  # leftovers of an interrupted earlier run
    result = timed_cli(
        TIMES,
        "labkit up flannel --until pods",
        "up",
        "flannel",
        "--name",
        LAB,
        "--until",
        "pods",
        "--json",
        check=False,
    )
    try:
        if result.returncode != 0:
            dump_lab_logs(LAB)
            pytest.fail(f"labkit up failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        yield Lab.load(LAB)
    finally:
        print(f"\nmeasured: {json.dumps(TIMES)}", file=sys.stderr)
        destroy_by_name(LAB)


def _check(stage: str) -> tuple[int, dict[str, Any]]:
    result = labkit_cli("check", stage, "--name", LAB, "--lang", "en", "--json", check=False, timeout=600)
    return result.returncode, json.loads(result.stdout)


def _result(report: dict[str, Any], check: str, node: str) -> dict[str, Any]:
    return next(r for r in report["results"] if r["check"] == check and r["node"] == node)


def _sh(lab: Lab, node: str, script: str) -> str:
    run = lab.run(node, f"sudo sh -c {shlex.quote(script)}")
    assert run.ok, f"{node}: {script}: {run.stdout}{run.stderr}"
    return str(run.stdout)


def _guest_now(lab: Lab, node: str) -> str:
    return str(lab.run(node, "date +%s").stdout).strip()


def _journal_shows(lab: Lab, node: str, text: str, since: str, timeout: float = 60) -> str:
    """Wait until flanneld's journal on ``node`` has a line with ``text`` logged since ``since`` (the guest's
    epoch seconds before the fault); that line."""
    deadline = time.monotonic() + timeout
    while True:
        out = lab.run(
            node,
            f"sudo journalctl -u flanneld --no-pager -o cat --since=@{since} | grep -F -- {shlex.quote(text)}",
        )
        if out.ok and out.stdout.strip():
            return str(out.stdout).strip().splitlines()[-1]
        if time.monotonic() > deadline:
            tail = lab.run(node, "sudo journalctl -u flanneld --no-pager -n 20").stdout
            pytest.fail(f"flanneld on {node} never logged {text!r} in {timeout} s; its journal:\n{tail}")
        time.sleep(2)


def _reset(snapshot: str) -> float:
    started = time.monotonic()
    labkit_cli("reset", snapshot, "--name", LAB, timeout=600)
    return round(time.monotonic() - started, 1)


def test_up_reaches_pods_ok_with_the_real_programs(flannel_lab: Lab) -> None:
    snapshots = json.loads(labkit_cli("snapshots", "--name", LAB, "--json").stdout)["snapshots"]
    verified = {s["name"] for s in snapshots if s["verified"]}
    assert {"etcd-ok", "flannel-ok", "pods-ok"} <= verified
    for node in IPS:
        # the programs the nodes run are the source builds served here, not stand-ins
        assert "v0.13.0" in flannel_lab.run(node, "/usr/local/bin/flanneld --version").stderr
        version = flannel_lab.run(node, "CNI_COMMAND=VERSION /opt/cni/bin/flannel </dev/null").stdout
        assert json.loads(version)["cniVersion"] == "0.4.0"
        env = _sh(flannel_lab, node, "cat /run/flannel/subnet.env")
        assert "FLANNEL_NETWORK=10.0.0.0/16" in env and "FLANNEL_MTU=1472" in env  # udp: 1500 - 28
        assert "flannel0:" in flannel_lab.run(node, "ip -o link show dev flannel0").stdout
    leases = json.loads(
        flannel_lab.run("node2", f"curl -sS {ETCD}/v2/keys/coreos.com/network/subnets").stdout
    )
    announced = sorted(json.loads(n["value"])["PublicIP"] for n in leases["node"]["nodes"])
    assert announced == sorted(IPS.values())


def test_check_pods_passes_with_real_pings_across_nodes(flannel_lab: Lab) -> None:
    rc, report = _check("pods")
    assert rc == 0, report
    for node in IPS:
        seen = _result(report, "pods-across-nodes", node)["seen"]
        others = [n for n in IPS if n != node]
        assert all(f"{other}'s pod 10.0." in seen for other in others), seen
    # the reply crosses both nodes' routing and flannel0 (seen: ttl=60); a pod on the same node answers with 63
    subnet = _sh(flannel_lab, "node2", ". /run/flannel/subnet.env; echo ${FLANNEL_SUBNET%.*}").strip()
    ping = flannel_lab.run("node1", f"sudo ip netns exec pod1 ping -n -c 2 -W 2 {subnet}.10")
    ttls = [int(t) for t in re.findall(r"ttl=(\d+)", ping.stdout)]
    assert ping.ok and ttls and max(ttls) <= 62, ping.stdout


def test_flannel0_down_on_node2_fails_naming_node2_and_reset_brings_it_back(flannel_lab: Lab) -> None:
    _sh(flannel_lab, "node2", "ip link set flannel0 down")
    rc, report = _check("pods")
    assert rc == 1
    device = _result(report, "flannel0-up", "node2")
    assert device["ok"] is False and "flannel0" in device["hint"]
    assert _result(report, "flannel0-up", "node1")["ok"] is True
    from_node1 = _result(report, "pods-across-nodes", "node1")
    assert from_node1["ok"] is False and "no answer from node2's pod" in from_node1["seen"]
    assert "node3's pod" in from_node1["seen"]  # still reached, listed as reached
    TIMES["reset pods-ok"] = _reset("pods-ok")
    rc, report = _check("pods")
    assert rc == 0, report


def test_retry_pods_goes_back_to_flannel_ok_and_solving_pods_passes(flannel_lab: Lab) -> None:
    timed_cli(TIMES, "labkit retry pods", "retry", "pods", "--name", LAB)
    assert not flannel_lab.run("node1", "test -e /run/netns/pod1").ok  # before the pods stage
    rc, report = _check("flannel")
    assert rc == 0, report
    solved = json.loads(
        timed_cli(TIMES, "labkit solve pods", "solve", "pods", "--name", LAB, "--json").stdout
    )
    assert solved["failed"] is False and solved["verified"] is True, solved
    again = json.loads(labkit_cli("solve", "pods", "--name", LAB, "--json").stdout)
    assert again["changed"] == 0


def test_a_hostname_that_resolves_to_etcd_works_and_is_not_a_finding(flannel_lab: Lab) -> None:
    """Seen here: labkit's /etc/hosts maps node1 to its lab IP on every node, and this flanneld leases with
    `http://node1:2379` as with the IP. The finding is for names that do not resolve or resolve elsewhere."""
    since = _guest_now(flannel_lab, "node2")
    _sh(flannel_lab, "node2", f"sed -i 's,{ETCD},http://node1:2379,' {CONF} && systemctl restart flanneld")
    _journal_shows(flannel_lab, "node2", "Wrote subnet file", since)
    rc, report = _check("flannel")
    assert rc == 0, report
    assert "node1" in flannel_lab.run("node2", f"grep -o 'http://node1:2379' {CONF}").stdout
    _reset("flannel-ok")


@dataclass(frozen=True)
class Fault:
    """How a trainee breaks the lab, what flanneld then logs, and what labkit must name."""

    id: str
    stage: str
    breaks: tuple[tuple[str, str], ...]
    """(node, shell script as root), in order."""
    node: str
    finding: str
    evidence: tuple[str, ...]
    log_node: str | None = None
    log_line: str | None = None
    """Text of the flanneld journal line the fault produces (waited for before the check)."""


FAULTS = [
    Fault(
        "etcd-restarted-without-v2",
        "flannel",
        (("node1", "sed -i /enable-v2/d /etc/etcd/etcd.conf && systemctl restart etcd"),),
        node="node3",
        finding="etcd-v2-off",
        evidence=("GET /v2/keys: 404 page not found", "flanneld: ", "response is invalid json"),
        log_node="node3",
        log_line="response is invalid json",
    ),
    Fault(
        "endpoint-name-that-does-not-resolve",
        "flannel",
        (("node2", f"sed -i 's,{ETCD},http://etcd:2379,' {CONF} && systemctl restart flanneld"),),
        node="node2",
        finding="hostname-endpoint",
        evidence=("etcd does not resolve here", "lookup etcd"),
        log_node="node2",
        log_line="lookup etcd",
    ),
    Fault(
        "endpoint-name-that-resolves-to-loopback",
        "flannel",
        # what Vagrant writes for a VM's own name (127.0.X.1), instead of labkit's lab-IP entry
        (
            (
                "node1",
                f"sed -i 's/^192.168.56.11\\tnode1$/127.0.2.1\\tnode1/' /etc/hosts && "
                f"sed -i 's,{ETCD},http://node1:2379,' {CONF} && systemctl restart flanneld",
            ),
        ),
        node="node1",
        finding="hostname-endpoint",
        evidence=("node1 resolves here to 127.0.2.1 (loopback: this node itself)",),
        log_node="node1",
        log_line="127.0.2.1:2379",
    ),
    Fault(
        "iface-on-the-management-nic",
        "flannel",
        (("node3", f"sed -i 's,-iface=eth1,-iface=eth0,' {CONF} && systemctl restart flanneld"),),
        node="node3",
        finding="wrong-iface",
        evidence=("-iface=eth0", "eth1 192.168.56.13", "flanneld: Using interface with name eth0"),
        log_node="node3",
        log_line="Using interface with name eth0",
    ),
    Fault(
        "no-network-config-in-etcd",
        "flannel",
        (
            ("node1", "ETCDCTL_API=2 /usr/local/bin/etcdctl rm /coreos.com/network/config"),
            ("node2", "systemctl restart flanneld"),
        ),
        node="node2",
        finding="network-config-missing",
        evidence=("v2: Key not found", "flanneld: Couldn't fetch network config: 100: Key not found"),
        log_node="node2",
        log_line="Key not found",
    ),
    Fault(
        "flannel-plugin-missing",
        "pods",
        (("node2", "rm /opt/cni/bin/flannel"),),
        node="node2",
        finding="cni-binaries-missing",
        evidence=("ls /opt/cni/bin: bridge host-local loopback portmap",),
    ),
    Fault(
        "cni-conf-not-json",
        "pods",
        (("node3", 'sed -i \'s/"mynet",/"mynet"/\' /etc/cni/net.d/flannel.conf'),),
        node="node3",
        finding="cni-conf-invalid",
        evidence=("/etc/cni/net.d/flannel.conf line",),
    ),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_a_fault_on_the_real_flanneld_is_named_with_evidence(flannel_lab: Lab, fault: Fault) -> None:
    snapshot = f"{fault.stage}-ok"
    _reset(snapshot)
    try:
        since = _guest_now(flannel_lab, fault.log_node or fault.node)
        for node, script in fault.breaks:
            _sh(flannel_lab, node, script)
        logged = ""
        if fault.log_node is not None and fault.log_line is not None:
            logged = _journal_shows(flannel_lab, fault.log_node, fault.log_line, since)
        rc, report = _check(fault.stage)
        assert rc == 1, report
        diagnosis = "flannel-diagnosis" if fault.stage == "flannel" else "pod-network-diagnosis"
        result = _result(report, diagnosis, fault.node)
        findings = {f["id"]: f for f in result["findings"]}
        assert fault.finding in findings, result
        found = findings[fault.finding]
        for text in fault.evidence:
            assert text in found["evidence"], found
        assert found["cause"] and found["fix"]
        print(
            f"\n[{fault.id}] flanneld: {logged}\n[{fault.id}] labkit: {found['id']}: {found['evidence']}",
            file=sys.stderr,
        )
        if fault.log_node is not None:
            # flanneld itself neither crashed nor restarted: the finding needs no restart count
            state = flannel_lab.run(
                fault.log_node, "systemctl show -p ActiveState -p NRestarts flanneld"
            ).stdout
            assert "ActiveState=active" in state and "NRestarts=0" in state, state
    finally:
        _reset(snapshot)
    rc, report = _check(fault.stage)
    assert rc == 0, report
