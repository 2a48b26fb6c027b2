"""The three-node flannel stage renders the seed chapter exactly, from the scenario's values, for every node."""

from __future__ import annotations

import json
from typing import Any

from labkit.kinds.compile import build_for_nodes, load_scenario
from labkit.kinds.guides import guide_context
from labkit.kinds.steps.artifact import ArtifactStep
from labkit.kinds.steps.base import StepContext
from labkit.kinds.steps.etcd import EtcdPutStep
from labkit.kinds.steps.file import FileStep
from labkit.kinds.templating import node_variables

SEED_NETWORK_CONFIG = {"Network": "10.0.0.0/16", "SubnetLen": 24, "Backend": {"Type": "udp", "Port": 7890}}


def _rendered(step_name: str) -> dict[str, Any]:
    """node -> (built step, its StepContext) for one flannel step."""
    scenario = load_scenario("three-node")
    stage = scenario.stage("flannel")
    context = guide_context(scenario)
    step = next(s for s in stage.steps if s.name == step_name)
    nodes = [n.name for n in scenario.select(step.on)]
    built = build_for_nodes(scenario, stage, step, context)
    out = {}
    for name, kind in zip(nodes, built, strict=True):
        variables = {**context, "node": node_variables(scenario, name, context)}
        out[name] = (kind, StepContext(name, variables, scenario.directory))
    return out


def _content(step_name: str, node: str) -> str:
    kind, ctx = _rendered(step_name)[node]
    assert isinstance(kind, FileStep)
    return kind.content(ctx).decode()


def test_steps_in_the_seed_order() -> None:
    steps = load_scenario("three-node").stage("flannel").steps
    names = [s.name for s in steps if s.kind != "image"]  # images are loaded from the host's cache first
    assert names == [
        "cni-binaries",
        "flanneld-binary",
        "kubelet-cni-flags",
        "network-config",
        "flanneld-unit",
        "flanneld-conf",
        "cni-conf",
        "flanneld-service",
        "flanneld-ready",
        "kubelet-restart",
        "pods-recreated",
        "client-pod",
    ]


def test_flanneld_conf_has_ip_endpoint_and_lab_iface_on_every_node() -> None:
    for node in ("node1", "node2", "node3"):
        conf = _content("flanneld-conf", node)
        assert conf.startswith('FLANNEL_OPTS=" \\\n'), conf
        assert "-etcd-endpoints=http://192.168.56.11:2379 \\" in conf
        assert "-iface=eth1 \\" in conf
        assert "-etcd-prefix=/coreos.com/network \\" in conf
        assert "-kube-api-url=http://192.168.56.11:8080 \\" in conf
        assert "-kubeconfig-file=/etc/kubernetes/kubeconfig \\" in conf
        assert "node1:" not in conf and "-kube-subnet-mgr" not in conf
        assert conf.rstrip().endswith('"')


def test_flanneld_unit_reads_its_conf() -> None:
    unit = _content("flanneld-unit", "node2")
    assert "EnvironmentFile=/etc/flannel/flanneld.conf" in unit
    assert "ExecStart=/usr/local/bin/flanneld $FLANNEL_OPTS" in unit


def test_network_config_is_the_seed_value_through_v2_on_the_etcd_node() -> None:
    rendered = _rendered("network-config")
    assert list(rendered) == ["node1"]
    kind, _ = rendered["node1"]
    assert isinstance(kind, EtcdPutStep)
    assert kind.args.value == SEED_NETWORK_CONFIG
    assert kind.args.api == 2  # flannel 0.13 reads v2 only
    assert kind.args.key == "/coreos.com/network/config"
    assert kind.args.endpoint == "http://192.168.56.11:2379"


def test_cni_conf_is_the_seed_conf_with_a_cni_version() -> None:
    kind, _ = _rendered("cni-conf")["node3"]
    assert isinstance(kind, FileStep) and kind.args.path == "/etc/cni/net.d/flannel.conf"
    conf = json.loads(_content("cni-conf", "node3"))
    assert conf == {
        "cniVersion": "0.3.1",
        "name": "mynet",
        "type": "flannel",
        "delegate": {"isDefaultGateway": True},
    }


def test_kubelet_gets_the_three_cni_flags_only_in_this_stage() -> None:
    conf = _content("kubelet-cni-flags", "node2")
    for flag in (
        "--network-plugin=cni \\",
        "--cni-conf-dir=/etc/cni/net.d \\",
        "--cni-bin-dir=/opt/cni/bin \\",
    ):
        assert flag in conf
    kubelet_stage = load_scenario("three-node").stage("kubelet")
    templates = [s.args.get("template") for s in kubelet_stage.steps]
    assert "templates/kubelet/kubelet.conf.j2" in templates, "chapter 04 writes the same file without them"


def test_binaries_follow_the_scenario_versions() -> None:
    for step, name in (("cni-binaries", "cni-plugins"), ("flanneld-binary", "flanneld")):
        rendered = _rendered(step)
        assert list(rendered) == ["node1", "node2", "node3"]
        kind, ctx = rendered["node2"]
        assert isinstance(kind, ArtifactStep) and kind.args.name == name
    kind, ctx = _rendered("cni-binaries")["node1"]
    assert isinstance(kind, ArtifactStep)
    from labkit.artifacts import load_catalog

    catalog = load_catalog()
    assert kind._scenario_version(catalog, ctx) == "0.8.7"
    members = catalog.get("cni-plugins", "0.8.7").members
    assert {"flannel", "bridge", "host-local", "loopback", "portmap"} <= set(members)
