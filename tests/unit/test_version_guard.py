"""Version combinations that cannot work are refused at validation, naming the field and the fix; and a
kubelet conf with --network-plugin is refused for Kubernetes >= 1.24 before any node is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labkit.errors import ScenarioError, UsageError
from labkit.kinds.compile import load_scenario
from labkit.lab.solving import run_stage
from labkit.model.version_guard import flannel_etcd_api, kubelet_takes_cni_flags, version_refusals

from .scenario_factory import scenario_data, write_scenario


@pytest.mark.parametrize(
    ("versions", "field", "words"),
    [
        ({"flannel": "0.13.0", "etcd": "3.6.0"}, "versions.etcd", ["v2 API", "etcd <= 3.5"]),
        ({"flannel": "0.17.0", "etcd": "3.6.4"}, "versions.etcd", ["removed in 3.6"]),
        ({"cni_plugins": "1.1.1"}, "versions.cni_plugins", ["flannel plugin", "flannel_cni_plugin"]),
    ],
)
def test_impossible_combinations_are_refused(
    tmp_path: Path, versions: dict[str, str], field: str, words: list[str]
) -> None:
    data = scenario_data()
    data["versions"].update(versions)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write_scenario(tmp_path, data))
    text = str(caught.value)
    assert "scenario.yaml:" in text and field in text
    for word in words:
        assert word in text


@pytest.mark.parametrize(
    "versions",
    [
        {"flannel": "0.13.0", "etcd": "3.5.9"},  # v2 with --enable-v2=true
        {"flannel": "0.22.0", "etcd": "3.6.0"},  # v3
        {"cni_plugins": "1.1.1", "flannel_cni_plugin": "1.1.2"},
        {"cni_plugins": "0.8.7"},  # still ships the flannel plugin
    ],
)
def test_working_combinations_pass(tmp_path: Path, versions: dict[str, str]) -> None:
    data = scenario_data()
    data["versions"].update(versions)
    load_scenario(write_scenario(tmp_path, data))


def test_unparsable_versions_are_left_to_the_model() -> None:
    assert version_refusals({"flannel": "latest", "etcd": "3.6.0"}) == []


def test_api_and_flag_thresholds() -> None:
    assert flannel_etcd_api("0.17.0") == 2 and flannel_etcd_api("0.18.0") == 3
    assert kubelet_takes_cni_flags("1.23.17") and not kubelet_takes_cni_flags("1.24.0")


class _Untouchable:
    def run(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a node was touched")

    def put(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a node was touched")


def test_network_plugin_flag_for_kubernetes_1_24_is_refused_before_any_node(tmp_path: Path) -> None:
    data = scenario_data()
    data["versions"]["kubernetes"] = "1.24.0"
    data["stages"][1]["steps"] = [
        {
            "name": "kubelet-conf",
            "kind": "file",
            "on": ["worker"],
            "args": {"path": "/etc/kubernetes/kubelet.conf", "content": 'KUBE_OPTS="--network-plugin=cni"\n'},
        }
    ]
    scenario = load_scenario(write_scenario(tmp_path, data))
    nodes = {"node1": _Untouchable(), "node2": _Untouchable()}
    with pytest.raises(UsageError) as caught:
        run_stage(scenario, "flannel", nodes, context={})
    assert "--network-plugin" in caught.value.message and "1.24" in caught.value.message
    assert "containerd" in (caught.value.hint or "")
