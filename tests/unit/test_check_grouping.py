"""Failed checks printed once across nodes: recorded node output through run_checks, then the printed lines.

Each test runs real check kinds on three nodes that replay what a node printed, so the hints are rendered per
node by the scenario's own templates, as `labkit check` does.
"""

from __future__ import annotations

from typing import Any

from labkit.kinds.checks import CheckResult, FindingReport
from labkit.kinds.report.grouping import failures, summary_rows
from labkit.kinds.report.printing import failure_lines
from labkit.kinds.report.varying import vary
from labkit.lab.checking import run_checks
from labkit.model.scenario import Check, Scenario, Stage
from tests.unit.recorded import Out, Replay
from tests.unit.scenario_factory import scenario_data

NODES = ("node1", "node2", "node3")
IPS = {"node1": "192.168.56.11", "node2": "192.168.56.12", "node3": "192.168.56.13"}
DOCKER_HINT = {
    "en": "Docker is not running steadily. Start it with `systemctl enable --now docker`.",
    "ja": "Docker が安定して動いていません。`systemctl enable --now docker` で起動してください。",
}


def three_nodes() -> Scenario:
    data = scenario_data()
    data["nodes"].append({"name": "node3", "roles": ["worker"], "ip": IPS["node3"]})
    return Scenario.model_validate(data)


def check(lang: str, outputs: dict[str, Out | list[Out]], **spec: Any) -> list[CheckResult]:
    stage = Stage(name="cri", title="cri", checks=[Check.model_validate(spec)])
    connections = {node: Replay(*(out if isinstance(out, list) else [out])) for node, out in outputs.items()}
    return run_checks(three_nodes(), stage, connections, {}, lang)


def printed(results: list[CheckResult], lang: str = "en") -> list[str]:
    return failure_lines(failures(results), lang)


def docker_stable(lang: str, states: dict[str, str]) -> list[CheckResult]:
    return check(
        lang,
        # an active unit is asked twice (stable_seconds apart)
        {node: [Out(f"ActiveState={state}\nNRestarts=0\n")] * 2 for node, state in states.items()},
        name="docker-stable",
        kind="service",
        on=["all"],
        args={"unit": "docker.service", "stable_seconds": 0},
        hint=DOCKER_HINT,
    )


# ---- three nodes alike -------------------------------------------------------------------------------------


def test_a_hint_failing_alike_on_three_nodes_is_printed_once() -> None:
    results = docker_stable("en", dict.fromkeys(NODES, "inactive"))
    assert [r.node for r in results] == list(NODES) and all(r.hint == DOCKER_HINT["en"] for r in results)
    assert printed(results) == [
        "docker-stable fails on node1, node2, node3",
        f"  hint: {DOCKER_HINT['en']}",
    ]
    [row] = summary_rows(results)
    assert (row.nodes, row.ok, row.seen) == (NODES, False, "docker.service is inactive")


def test_the_same_block_in_japanese() -> None:
    results = docker_stable("ja", dict.fromkeys(NODES, "inactive"))
    assert printed(results, "ja") == [
        "docker-stable: node1, node2, node3 で失敗",
        f"  ヒント: {DOCKER_HINT['ja']}",
    ]


# ---- three nodes differing ---------------------------------------------------------------------------------


def test_a_hint_templated_per_node_is_printed_once_with_each_nodes_values() -> None:
    hint = {
        "en": "The INTERNAL-IP of {{ node.name }} is not its lab IP {{ node.ip }}. Give kubelet "
        "--node-ip={{ node.ip }} on {{ node.name }}.",
        "ja": "{{ node.name }} の INTERNAL-IP がラボ IP {{ node.ip }} ではありません。--node-ip={{ node.ip }} を"
        "付けてください。",
    }
    outputs = {node: Out("", f"INTERNAL-IP 10.0.2.{15 + i}", 1) for i, node in enumerate(NODES)}
    spec = {"name": "node-ip", "kind": "command", "on": ["all"], "args": {"run": "false"}, "hint": hint}
    results = check("en", outputs, **spec)
    assert results[1].hint == (
        "The INTERNAL-IP of node2 is not its lab IP 192.168.56.12. Give kubelet --node-ip=192.168.56.12 on node2."
    )
    assert printed(results) == [
        "node-ip fails on node1, node2, node3",
        "  hint: The INTERNAL-IP of ‹node› is not its lab IP ‹1›. Give kubelet --node-ip=‹1› on ‹node›.",
        "    node1: ‹1› = 192.168.56.11",
        "    node2: ‹1› = 192.168.56.12",
        "    node3: ‹1› = 192.168.56.13",
    ]
    assert [row.seen for row in summary_rows(results)] == [
        f"exit 1: INTERNAL-IP 10.0.2.{n}" for n in (15, 16, 17)
    ]
    ja = check("ja", {node: Out("", "x", 1) for node in NODES}, **spec)
    assert (
        printed(ja, "ja")[1]
        == "  ヒント: ‹node› の INTERNAL-IP がラボ IP ‹1› ではありません。--node-ip=‹1› を付けてください。"
    )


def test_texts_with_little_in_common_are_shown_whole_per_node() -> None:
    texts = {"node1": "etcd is down", "node2": "the disk is full on /var/lib/docker"}
    assert vary(texts).shared is None
    result = [CheckResult("c", node, False, "x", text) for node, text in texts.items()]
    assert printed(result) == [
        "c fails on node1, node2",
        "  hint:",
        "    node1: etcd is down",
        "    node2: the disk is full on /var/lib/docker",
    ]


def test_places_with_the_same_values_share_a_number_and_different_ones_do_not() -> None:
    routes = {
        "node1": "On node1: `ip route add 10.244.2.0/24 via 192.168.57.12`, and keep it",
        "node2": "On node2: `ip route add 10.244.1.0/24 via 192.168.57.11`, and keep it",
    }
    shared = vary(routes)
    assert shared.shared == "On ‹node›: `ip route add ‹1› via ‹2›`, and keep it"
    assert shared.values["node2"] == {"‹1›": "10.244.1.0/24", "‹2›": "192.168.57.11"}


# ---- one node failing --------------------------------------------------------------------------------------


def test_one_node_failing_prints_its_hint_as_rendered() -> None:
    results = docker_stable("en", {"node1": "active", "node2": "failed", "node3": "active"})
    assert [r.ok for r in results] == [True, False, True]
    assert printed(results) == ["docker-stable fails on node2", f"  hint: {DOCKER_HINT['en']}"]
    assert [(row.nodes, row.ok) for row in summary_rows(results)] == [
        (("node1", "node3"), True),
        (("node2",), False),
    ]


def test_nothing_is_printed_when_every_node_passes() -> None:
    assert printed(docker_stable("en", dict.fromkeys(NODES, "active"))) == []


# ---- findings ----------------------------------------------------------------------------------------------


def flannel_results(outputs: dict[str, str]) -> list[CheckResult]:
    return check(
        "en",
        {node: Out(text) for node, text in outputs.items()},
        name="flannel-diagnosis",
        kind="flannel",
        on=["worker"],
        args={"flannel_version": "0.13.0", "lab_ip": "{{ node.ip }}"},
        hint={"en": "flannel does not hold on {{ node.name }}; each finding above names its cause and fix."},
    )


def test_a_finding_on_several_nodes_is_printed_once_with_each_nodes_evidence() -> None:
    from tests.unit.test_flannel_diagnoses import ADDR, FLANNELD_CONF, facts_output

    no_iface = FLANNELD_CONF.replace("-iface=eth1 \\\n", "")
    node = {
        name: facts_output({"conf": no_iface, "addr": ADDR.replace("192.168.56.12", IPS[name])})
        for name in NODES
    }
    node["node1"] = facts_output({"addr": ADDR.replace("192.168.56.12", IPS["node1"])})
    node["node3"] = node["node3"].replace(
        "NRestarts=0\nActiveState=active", "NRestarts=4\nActiveState=active"
    )
    results = flannel_results(node)
    assert [(r.node, r.ok) for r in results] == [("node1", True), ("node2", False), ("node3", False)]
    lines = printed(results)
    nics = "NICs: eth0 192.168.121.57, eth1 {}, flannel0 10.0.2.0"
    assert lines[:9] == [
        "flannel-diagnosis fails on node2, node3",
        "  wrong-iface",
        "    cause: flanneld does not use the lab NIC (no -iface: flanneld takes the default route's NIC, eth0). "
        "It announces the NIC it uses as its PublicIP in its lease, and the other nodes send this node's pod "
        "traffic there. The first NIC of a Vagrant VM is the NAT/management one, not the lab network (on "
        "VirtualBox it even has the same 10.0.2.15 on every VM, so all nodes would announce one IP).",
        "    fix: Add -iface=eth1 (the NIC holding ‹1›) to /etc/flannel/flanneld.conf and restart flanneld.",
        "      node2: ‹1› = 192.168.56.12",
        "      node3: ‹1› = 192.168.56.13",
        "    seen on node2: no -iface in flanneld.conf; default route via eth0; " + nics.format(IPS["node2"]),
        "    seen on node3: no -iface in flanneld.conf; default route via eth0; " + nics.format(IPS["node3"]),
        "  flanneld-restarting on node3",
    ]
    assert lines[-1] == "  hint: flannel does not hold on ‹node›; each finding above names its cause and fix."
    assert (
        sum(line.startswith("    cause:") for line in lines) == 2
    )  # wrong-iface once, flanneld-restarting once


def test_identical_evidence_is_one_line_and_multiline_evidence_stays_aligned() -> None:
    finding = FindingReport(
        "etcd-v2-off", "v2 is off", "enable it", "ActiveState=failed; journal:\nline 1\nline 2"
    )
    results = [
        CheckResult("flannel", node, False, "1 finding", None, (finding,)) for node in ("node2", "node3")
    ]
    assert printed(results) == [
        "flannel fails on node2, node3",
        "  etcd-v2-off",
        "    cause: v2 is off",
        "    fix: enable it",
        "    seen: ActiveState=failed; journal:",
        "          line 1",
        "          line 2",
    ]
    assert failures(results)[0].to_json()["findings"][0]["evidence"] == {
        "node2": finding.evidence,
        "node3": finding.evidence,
    }
