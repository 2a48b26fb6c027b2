"""The flannel chapter's files on the real three-node lab, with etcd and the CNI plugins 0.8.7 only.

What runs for real: the CNI plugins 0.8.7 built from containernetworking/plugins' own source (served on loopback
under the course's cni-plugins name, `flannel` among them), kubelet's CNI flags file, flanneld.conf, the CNI conf
and the network config in etcd through the v2 API. Each is read back from the nodes and compared with what
labkit renders for that node. flanneld itself is not served here (it runs in ``test_flannel_real.py``, on the
flannel scenario's lab), so the stage cannot pass in this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from labkit import artifacts
from labkit.kinds.compile import build_for_nodes
from labkit.kinds.guides import guide_context
from labkit.kinds.steps.base import StepContext
from labkit.kinds.steps.file import FileStep
from labkit.kinds.templating import node_variables
from labkit.lab import Lab

from .artifact_server import ServedArtifacts, missing_binaries, serve_artifacts
from .lab_helpers import IPS, NODES, labkit_cli

pytestmark = pytest.mark.vm

ONLY = "cni-binaries,kubelet-cni-flags,network-config,flanneld-unit,flanneld-conf,cni-conf"
FILE_STEPS = ("kubelet-cni-flags", "flanneld-unit", "flanneld-conf", "cni-conf")
NETWORK_CONFIG = {"Network": "10.0.0.0/16", "SubnetLen": 24, "Backend": {"Type": "udp", "Port": 7890}}
INSTALLED_PLUGINS = ("flannel", "bridge", "host-local", "loopback", "portmap")


def _expected_files(lab: Lab) -> dict[tuple[str, str], tuple[str, str]]:
    """(step, node) -> (remote path, content labkit renders for that node)."""
    scenario = lab.scenario
    stage = scenario.stage("flannel")
    context = guide_context(scenario, lab.state)
    expected = {}
    for step in stage.steps:
        if step.name not in FILE_STEPS:
            continue
        nodes = [n.name for n in scenario.select(step.on)]
        for node, kind in zip(nodes, build_for_nodes(scenario, stage, step, context), strict=True):
            assert isinstance(kind, FileStep)
            ctx = StepContext(
                node, {**context, "node": node_variables(scenario, node, context)}, scenario.directory
            )
            expected[(step.name, node)] = (kind.args.path, kind.content(ctx).decode())
    return expected


def _solve(lab: Lab, *args: str, check: bool = True) -> dict[str, Any]:
    result = labkit_cli("solve", "flannel", "--name", lab.name, "--json", *args, check=check)
    return {
        "rc": result.returncode,
        "stderr": result.stderr,
        **(json.loads(result.stdout) if result.stdout.strip() else {}),
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedArtifacts]:
    """etcd 3.4.14 (Debian's binaries) and the CNI plugins 0.8.7 (built from source), served and fetched."""
    wanted = [("etcd", "3.4.14"), ("cni-plugins", "0.8.7")]
    for name, version in wanted:
        why = missing_binaries(name, version)
        if why is not None:
            pytest.skip(f"artifact {name} {version}: {why}")
    with serve_artifacts(wanted, tmp_path_factory.mktemp("flannel-mirror")) as served:
        served.fetch()
        yield served


@pytest.fixture(scope="module")
def etcd_ready(three_node_up: Any, served: ServedArtifacts) -> None:
    """etcd solved on node1 (a no-op when an earlier module already did it)."""
    solved = json.loads(labkit_cli("solve", "etcd", "--name", three_node_up[0].name, "--json").stdout)
    assert solved["failed"] is False, solved


def test_full_stage_refused_before_any_node_naming_the_missing_artifacts(
    three_node_lab: Lab, served: ServedArtifacts, etcd_ready: None
) -> None:
    result = _solve(three_node_lab, check=False)
    assert result["rc"] != 0
    assert "flanneld" in result["stderr"] and "labkit artifacts" in result["stderr"], result["stderr"]
    for node in NODES:
        assert three_node_lab.run(node, "test -e /etc/flannel/flanneld.conf").exited != 0


def test_plan_shows_every_change_and_changes_nothing(
    three_node_lab: Lab, served: ServedArtifacts, etcd_ready: None
) -> None:
    # the etcd tests may have written the seed's config already: start from a key that is not there
    three_node_lab.run("node1", "ETCDCTL_API=2 /usr/local/bin/etcdctl rm /coreos.com/network/config")
    plan = _solve(three_node_lab, "--only", ONLY, "--plan")
    assert plan["results"] == {}
    for node in NODES:
        changes = plan["changes"][node]
        assert all(changes[step] for step in ("cni-binaries", *FILE_STEPS)), changes
    assert plan["changes"]["node1"]["network-config"] is True
    diff = labkit_cli("solve", "flannel", "--name", three_node_lab.name, "--only", "flanneld-conf", "--plan")
    assert "+-etcd-endpoints=http://192.168.56.11:2379 \\" in diff.stdout, diff.stdout
    for node in NODES:
        assert three_node_lab.run(node, "test -e /etc/flannel/flanneld.conf").exited != 0
    got = three_node_lab.run("node1", "ETCDCTL_API=2 /usr/local/bin/etcdctl get /coreos.com/network/config")
    assert got.exited != 0 or json.loads(got.stdout) != NETWORK_CONFIG


def test_only_applies_the_steps_and_every_file_reads_back(
    three_node_lab: Lab, served: ServedArtifacts, etcd_ready: None
) -> None:
    lab = three_node_lab
    first = _solve(lab, "--only", ONLY)
    assert first["failed"] is False and first["changed"] >= 3 * 5 + 1, first
    assert first["verified"] is None, "a partial solve is not a verified stage"
    for (step, node), (path, content) in _expected_files(lab).items():
        remote = lab.run(node, f"sudo cat {path}")  # containerd makes /etc/cni/net.d root-only
        assert remote.ok, f"{node}: {path} missing after {step}"
        assert remote.stdout == content, f"{node}: {path} differs from what labkit renders"
    for node in NODES:
        conf = lab.run(node, "sudo cat /etc/flannel/flanneld.conf").stdout
        assert f"-etcd-endpoints=http://{IPS['node1']}:2379 \\" in conf and "-iface=eth1 \\" in conf
        kubelet = lab.run(node, "sudo cat /etc/kubernetes/kubelet.conf").stdout
        assert "--network-plugin=cni \\" in kubelet and "--cni-bin-dir=/opt/cni/bin \\" in kubelet
        cni = json.loads(lab.run(node, "sudo cat /etc/cni/net.d/flannel.conf").stdout)
        assert cni["type"] == "flannel" and cni["cniVersion"] and cni["delegate"]["isDefaultGateway"] is True


def test_cni_binaries_answer_version(three_node_lab: Lab, served: ServedArtifacts, etcd_ready: None) -> None:
    members = served.get("cni-plugins").members
    assert set(members) == set(INSTALLED_PLUGINS), "the catalog installs these five of the 17 built"
    for node in NODES:
        for plugin in members:
            ran = three_node_lab.run(node, f"CNI_COMMAND=VERSION /opt/cni/bin/{plugin} </dev/null")
            assert ran.ok, f"{node} {plugin}: {ran.stdout}{ran.stderr}"
            answer = json.loads(ran.stdout)
            assert "0.3.1" in answer["supportedVersions"], answer  # the version flannel.conf declares


def test_network_config_through_v2_read_back_from_another_node(
    three_node_lab: Lab, served: ServedArtifacts, etcd_ready: None
) -> None:
    got = three_node_lab.run(
        "node3", f"curl -sf http://{IPS['node1']}:2379/v2/keys/coreos.com/network/config"
    )
    assert got.ok, got.stderr
    assert json.loads(json.loads(got.stdout)["node"]["value"]) == NETWORK_CONFIG
    v3 = three_node_lab.run("node1", "ETCDCTL_API=3 /usr/local/bin/etcdctl get /coreos.com/network/config")
    assert v3.ok and v3.stdout.strip() == "", "written through v2 only (flannel 0.13 cannot read v3)"


def test_rerun_and_plan_change_nothing(
    three_node_lab: Lab, served: ServedArtifacts, etcd_ready: None
) -> None:
    again = _solve(three_node_lab, "--only", ONLY)
    assert again["failed"] is False and again["changed"] == 0, again
    plan = _solve(three_node_lab, "--only", ONLY, "--plan")
    assert plan["changed"] == 0, plan


def test_a_corrupted_artifact_is_refused(
    three_node_lab: Lab, served: ServedArtifacts, etcd_ready: None
) -> None:
    artifact = served.catalog.get("cni-plugins", "0.8.7")
    cached = artifacts.cache_path(artifact)
    good = cached.read_bytes()
    try:
        cached.write_bytes(good[:-64] + bytes(64))
        assert three_node_lab.run("node2", "sudo rm /opt/cni/bin/bridge").ok
        result = _solve(three_node_lab, "--only", "cni-binaries", check=False)
        assert result["rc"] != 0
        assert "sha256" in result["stderr"] and "refused" in result["stderr"], result["stderr"]
        assert three_node_lab.run("node2", "test -e /opt/cni/bin/bridge").exited != 0, "nothing installed"
    finally:
        cached.write_bytes(good)
    repaired = _solve(three_node_lab, "--only", "cni-binaries")
    assert repaired["changed"] == 1 and repaired["results"]["node2"]["cni-binaries"] == "changed"


# ---- the chapter's known failures, provoked on the real nodes and diagnosed by name --------------------------


def _findings(lab: Lab) -> dict[str, dict[str, dict[str, Any]]]:
    """node -> finding id -> finding (cause, fix, evidence) of the flannel-diagnosis check."""
    result = labkit_cli("check", "flannel", "--name", lab.name, "--json", "--lang", "en", check=False)
    assert result.returncode == 1, "flanneld cannot run here (no binary), so the stage cannot pass"
    report = json.loads(result.stdout)
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for r in report["results"]:
        if r["check"] == "flannel-diagnosis":
            found[r["node"]] = {f["id"]: f for f in r["findings"]}
            for f in r["findings"]:
                assert f["cause"] and f["fix"], f
    return found


def test_solved_files_give_no_configuration_finding(
    three_node_lab: Lab, served: ServedArtifacts, etcd_ready: None
) -> None:
    found = _findings(three_node_lab)
    assert set(found) == set(NODES)
    wrong = {"etcd-v2-off", "hostname-endpoint", "endpoint-no-scheme", "config-in-wrong-api", "wrong-iface"}
    wrong |= {"cni-conf-invalid", "cni-conf-missing", "network-config-missing", "flanneld-conf-missing"}
    for node, ids in found.items():
        assert not set(ids) & wrong, f"{node}: {sorted(ids)}"


def test_hostname_endpoint_is_diagnosed_and_solve_repairs_it(
    three_node_lab: Lab, served: ServedArtifacts, etcd_ready: None
) -> None:
    lab = three_node_lab
    # node1 would work (labkit's /etc/hosts maps it to its lab IP on every node): a name no node knows does not
    assert lab.run(
        "node2", "sudo sed -i 's|http://192.168.56.11:2379|http://etcd:2379|' /etc/flannel/flanneld.conf"
    ).ok
    assert "hostname-endpoint" in _findings(lab)["node2"]
    repaired = _solve(lab, "--only", "flanneld-conf")
    assert repaired["results"]["node2"]["flanneld-conf"] == "changed" and repaired["changed"] == 1
    assert "hostname-endpoint" not in _findings(lab)["node2"]


def test_missing_cni_binary_and_bad_cni_json_are_diagnosed(
    three_node_lab: Lab, served: ServedArtifacts, etcd_ready: None
) -> None:
    lab = three_node_lab
    assert lab.run("node3", "sudo rm /opt/cni/bin/bridge").ok
    assert lab.run(
        "node2", 'echo \'{"name": "mynet", "type": "flannel",\' | sudo tee /etc/cni/net.d/flannel.conf'
    ).ok
    found = _findings(lab)
    assert "cni-binaries-missing" in found["node3"]
    assert "cni-conf-invalid" in found["node2"] and "cni-conf-invalid" not in found["node3"]
    result = labkit_cli("check", "flannel", "--name", lab.name, "--json", check=False)
    node3 = next(
        r
        for r in json.loads(result.stdout)["results"]
        if r["check"] == "flannel-diagnosis" and r["node"] == "node3"
    )
    missing = next(f for f in node3["findings"] if f["id"] == "cni-binaries-missing")
    assert "bridge" in missing["cause"] + missing["evidence"]
    repaired = _solve(lab, "--only", "cni-binaries,cni-conf")
    assert repaired["changed"] == 2, repaired
    found = _findings(lab)
    assert "cni-conf-invalid" not in found["node2"]


def test_etcd_v2_off_is_diagnosed_on_every_node(
    three_node_lab: Lab, served: ServedArtifacts, etcd_ready: None
) -> None:
    lab = three_node_lab
    assert lab.run(
        "node1", "sudo sed -i '/--enable-v2=true/d' /etc/etcd/etcd.conf && sudo systemctl restart etcd"
    ).ok
    try:
        found = _findings(lab)
        for node in NODES:
            assert "etcd-v2-off" in found[node], f"{node}: {found[node]}"
    finally:
        repaired = labkit_cli(
            "solve", "etcd", "--name", lab.name, "--only", "etcd-conf,etcd-service,etcd-healthy", "--json"
        )
        assert json.loads(repaired.stdout)["failed"] is False
    assert "etcd-v2-off" not in _findings(lab)["node2"]
