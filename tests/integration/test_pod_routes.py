"""The pod-routes scenario end to end on two emulated VMs: real CNI plugins, real pods (network namespaces)
made by them, real routes, and checks that ping from one node's pod to the other's.

The CNI plugins tarball is built from Debian's containernetworking-plugins 1.1.1 (the same release the catalog
pins upstream) and served on the test's loopback (see ``artifact_server``). The lab is this module's own,
``ci-pods``, next to (never instead of) the shared three-node lab.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from labkit.lab import Lab, destroy_by_name

from .artifact_server import ServedArtifacts
from .lab_helpers import dump_lab_logs, labkit_cli, timed_cli

pytestmark = pytest.mark.vm

LAB = "ci-pods"
SCENARIO = "pod-routes"
IPS = {"node1": "192.168.57.11", "node2": "192.168.57.12"}
POD_SUBNETS = {"node1": "10.244.1.0/24", "node2": "10.244.2.0/24"}
POD_IPS = {"node1": "10.244.1.10", "node2": "10.244.2.10"}
OTHER = {"node1": "node2", "node2": "node1"}
ROUTES_DROP_IN = "/etc/systemd/network/20-labkit-lab.network.d/50-pod-routes.conf"

TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def pods_lab(served_cni: ServedArtifacts) -> Iterator[Lab]:
    """`labkit up pod-routes --name ci-pods --until pods`: two VMs, the CNI plugins, one pod on each."""
    destroy_by_name(LAB)  # leftovers of an interrupted earlier run
    result = timed_cli(
        TIMES,
        "labkit up --until pods",
        "up",
        SCENARIO,
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
        report = json.loads(result.stdout)
        assert sorted(report["booted"]) == ["node1", "node2"]
        print(f"boot part of up: {report['seconds']} s, accel {report['accel']}", file=sys.stderr)
        yield Lab.load(LAB)
    finally:
        print(f"\nmeasured: {json.dumps(TIMES)}", file=sys.stderr)
        destroy_by_name(LAB)


def _check(stage: str, *extra: str) -> tuple[int, dict[str, Any]]:
    result = labkit_cli("check", stage, "--name", LAB, "--lang", "en", "--json", *extra, check=False)
    return result.returncode, json.loads(result.stdout)


def _result(report: dict[str, Any], check: str, node: str) -> dict[str, Any]:
    return next(r for r in report["results"] if r["check"] == check and r["node"] == node)


def _solve_routes() -> dict[str, Any]:
    return json.loads(labkit_cli("solve", "routes", "--name", LAB, "--json", timeout=1200).stdout)


def test_up_until_pods_gives_each_node_a_pod_made_by_the_cni_plugins(pods_lab: Lab) -> None:
    passed = timed_cli(TIMES, "labkit check pods", "check", "pods", "--name", LAB, "--json")
    assert json.loads(passed.stdout)["passed"] is True
    snapshots = json.loads(labkit_cli("snapshots", "--name", LAB, "--json").stdout)["snapshots"]
    verified = {s["name"] for s in snapshots if s["verified"]}
    assert {"cni-ok", "pods-ok"} <= verified
    for node, pod_ip in POD_IPS.items():
        address = pods_lab.run(node, "sudo ip netns exec pod1 ip -4 -o addr show dev eth0").stdout
        assert f" {pod_ip}/24 " in address
        # the bridge plugin's own answer, kept like a runtime keeps it
        result = json.loads(pods_lab.run(node, "cat /run/labkit/pod1/result.json").stdout)
        assert [ip["address"] for ip in result["ips"]] == [f"{pod_ip}/24"]
        assert pods_lab.run(
            node, f"test -x /opt/cni/bin/host-local && ls /var/lib/cni/networks/pods/{pod_ip}"
        ).ok


def test_without_routes_the_other_nodes_pod_is_unreachable(pods_lab: Lab) -> None:
    ping = pods_lab.run("node1", f"sudo ip netns exec pod1 ping -c 1 -W 2 {POD_IPS['node2']}")
    assert ping.exited != 0
    assert "Destination Net Unreachable" in ping.stdout  # node1 has no route for node2's pod subnet


def test_check_routes_fails_before_the_routes_exist_and_says_why(pods_lab: Lab) -> None:
    rc, report = _check("routes")
    assert rc == 1 and report["passed"] is False
    for node, other in OTHER.items():
        missing = _result(report, "pod-routes", node)
        assert missing["ok"] is False
        assert f"no route: {POD_SUBNETS[other]} via {IPS[other]}" in missing["seen"]
        assert f"ip route add {POD_SUBNETS[other]} via {IPS[other]}" in missing["hint"]
        assert "host-gw" in missing["hint"] and "join and leave" in missing["hint"]
    assert _result(report, "pod-to-pod-node1-node2", "node1")["ok"] is False
    # the human output shows the hint once for both nodes, in the trainee's language, with each node's values
    shown = labkit_cli("check", "routes", "--name", LAB, "--lang", "ja", check=False)
    assert shown.returncode == 1
    assert "pod-routes: node1, node2 で失敗" in shown.stdout
    assert "ip route add ‹1› via ‹2›" in shown.stdout and shown.stdout.count("host-gw バックエンド") == 1
    assert "node1: ‹1› = 10.244.2.0/24, ‹2› = 192.168.57.12" in shown.stdout


def test_solve_routes_lets_pods_on_different_nodes_reach_each_other(pods_lab: Lab) -> None:
    started = time.monotonic()
    report = _solve_routes()
    TIMES["labkit solve routes"] = round(time.monotonic() - started, 1)
    assert report["failed"] is False, report
    assert report["results"] == {
        node: {"pod-routes-persist": "changed", "pod-routes-now": "changed"} for node in ("node1", "node2")
    }
    assert report["verified"] is True and report["snapshot"] == "routes-ok", report["checks"]

    passed = timed_cli(TIMES, "labkit check routes", "check", "routes", "--name", LAB, "--json")
    assert json.loads(passed.stdout)["passed"] is True
    for node, other in OTHER.items():
        route = pods_lab.run(node, f"ip -4 route show exact {POD_SUBNETS[other]}").stdout
        assert f"via {IPS[other]} dev eth1" in route and "proto static" in route  # set by systemd-networkd
        ping = pods_lab.run(node, f"sudo ip netns exec pod1 ping -c 2 -W 2 {POD_IPS[other]}")
        assert ping.ok, ping.stdout + ping.stderr
        assert "ttl=62" in ping.stdout  # forwarded by both nodes


def test_a_route_removed_by_hand_fails_the_check_and_a_solve_puts_it_back(pods_lab: Lab) -> None:
    assert pods_lab.run("node2", f"sudo ip route del {POD_SUBNETS['node1']}").ok
    rc, report = _check("routes")
    assert rc == 1
    node2 = _result(report, "pod-routes", "node2")
    assert node2["ok"] is False and f"no route: {POD_SUBNETS['node1']} via {IPS['node1']}" in node2["seen"]
    assert f"ip route add {POD_SUBNETS['node1']} via {IPS['node1']}" in node2["hint"]
    assert _result(report, "pod-routes", "node1")["ok"] is True
    # node1's route is there, yet its ping fails: node2 cannot send the reply back
    assert _result(report, "pod-to-pod-node1-node2", "node1")["ok"] is False

    again = _solve_routes()
    assert again["failed"] is False and again["changed"] == 1
    # the drop-in is unchanged: `networkctl reconfigure` makes systemd-networkd put its route back
    assert again["results"]["node2"] == {"pod-routes-persist": "ok", "pod-routes-now": "changed"}
    assert set(again["results"]["node1"].values()) == {"ok"}
    assert again["verified"] is True
    rc, report = _check("routes")
    assert rc == 0, report


def test_a_second_solve_changes_nothing(pods_lab: Lab) -> None:
    report = _solve_routes()
    assert report["failed"] is False and report["changed"] == 0
    plan = json.loads(labkit_cli("solve", "routes", "--name", LAB, "--plan", "--json").stdout)
    assert plan["changed"] == 0


def test_a_lost_pod_is_made_again_although_host_local_still_holds_its_address(pods_lab: Lab) -> None:
    """A pod's namespace lives under /run (gone after a reboot) while host-local's lease is on disk: solving
    `pods` again must release the stale lease (CNI DEL) before ADD, or host-local refuses the only address."""
    lab = pods_lab
    assert lab.run("node2", "sudo ip netns del pod1").ok
    assert lab.run("node2", f"test -e /var/lib/cni/networks/pods/{POD_IPS['node2']}").ok
    rc, report = _check("pods")
    assert rc == 1 and _result(report, "pod1-address", "node2")["ok"] is False

    solved = json.loads(labkit_cli("solve", "pods", "--name", LAB, "--json", timeout=1200).stdout)
    assert solved["failed"] is False, solved
    assert solved["results"]["node2"]["pod1-cni-add"] == "changed"
    assert set(solved["results"]["node1"].values()) == {"ok"}
    assert solved["verified"] is True
    rc, report = _check("routes")
    assert rc == 0, report


def test_routes_and_forwarding_are_kept_for_the_next_boot(pods_lab: Lab) -> None:
    """What systemd-networkd and systemd-sysctl read at boot. A reboot itself costs minutes under emulation;
    that networkd applies the drop-in is shown by the re-solve above (it only runs `networkctl reconfigure`)."""
    for node, other in OTHER.items():
        drop_in = pods_lab.run(node, f"cat {ROUTES_DROP_IN}").stdout
        assert f"Destination={POD_SUBNETS[other]}" in drop_in and f"Gateway={IPS[other]}" in drop_in
        assert "net.ipv4.ip_forward = 1" in pods_lab.run(node, "cat /etc/sysctl.d/60-pod-routes.conf").stdout
