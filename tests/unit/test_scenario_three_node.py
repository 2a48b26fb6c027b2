"""The course's scenario holds the course's facts (course.md and the seed chapter)."""

from __future__ import annotations

import pytest

from labkit.kinds.compile import load_scenario
from labkit.model.scenario import parse_memory_mib


def test_topology() -> None:
    s = load_scenario("three-node")
    node1, node2, node3 = s.nodes
    assert {"etcd", "apiserver", "worker"} <= set(node1.roles)
    assert node2.roles == ["worker"] and node3.roles == ["worker"]
    assert [n.name for n in s.nodes_with_role("worker")] == ["node1", "node2", "node3"]
    assert all(n.ip.startswith("192.168.56.") for n in s.nodes)


def test_seed_network_config() -> None:
    net = load_scenario("three-node").network
    assert net.pods == "10.0.0.0/16"
    assert net.pod_subnet_len == 24
    assert net.backend.type == "udp" and net.backend.port == 7890


def test_versions_are_the_course_ones() -> None:
    v = load_scenario("three-node").versions
    assert (v.kubernetes, v.etcd, v.flannel) == ("1.19.7", "3.4.14", "0.13.0")
    major = int(v.cni_plugins.split(".")[0])
    assert major == 0, "CNI plugins >= 1.0 no longer ship the flannel plugin"


def test_chapters_in_order() -> None:
    names = [s.name for s in load_scenario("three-node").stages]
    assert names == [
        "ssh",
        "cri",
        "etcd",
        "apiserver",
        "kubelet",
        "scheduler",
        "controller-manager",
        "node-config",
        "kube-proxy",
        "flannel",
        "kube-dns",
    ]


def test_select_by_role_and_name() -> None:
    s = load_scenario("three-node")
    assert [n.name for n in s.select(["etcd"])] == ["node1"]
    assert [n.name for n in s.select(["node3", "etcd"])] == ["node1", "node3"]
    assert len(s.select(["all"])) == 3


@pytest.mark.parametrize(
    ("text", "mib"),
    [(1536, 1536), ("1536M", 1536), ("2G", 2048), ("2GiB", 2048), ("512MiB", 512), ("1T", 1024 * 1024)],
)
def test_memory_sizes(text: object, mib: int) -> None:
    assert parse_memory_mib(text) == mib


@pytest.mark.parametrize("text", ["0", -1, "1.5G", "lots", True, ""])
def test_bad_memory_sizes(text: object) -> None:
    with pytest.raises(ValueError):
        parse_memory_mib(text)
