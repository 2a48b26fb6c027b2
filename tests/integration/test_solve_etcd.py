"""The etcd chapter solved for real on the three-node lab, from an artifact served on the test's loopback.

The etcd release tarball cannot be downloaded here; the test builds one from Debian's etcd-server binaries
(real etcd 3.4, real sha256), serves it over HTTP on 127.0.0.1 inside the test's namespace, and points a test
catalog at it. Nothing is faked on the nodes: etcd runs there under systemd.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator

import pytest

from labkit import artifacts, paths
from labkit.lab import Lab

from .artifact_server import CATALOG_ENV, missing_binaries, serve_artifacts
from .lab_helpers import IPS, labkit_cli

pytestmark = pytest.mark.vm

NETWORK_CONFIG = {"Network": "10.0.0.0/16", "SubnetLen": 24, "Backend": {"Type": "udp", "Port": 7890}}


@pytest.fixture(scope="module")
def served_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """etcd 3.4.14's release tarball built from Debian's binaries, served on loopback; the mirror URL."""
    why = missing_binaries("etcd", "3.4.14")
    if why is not None:
        pytest.skip(f"artifact etcd: {why}")
    with serve_artifacts([("etcd", "3.4.14")], tmp_path_factory.mktemp("etcd-mirror")) as served:
        yield served.mirror


def test_solve_refuses_before_touching_nodes_when_the_artifact_is_missing(three_node_lab: Lab) -> None:
    shutil.rmtree(
        paths.artifact_cache_dir() / "etcd", ignore_errors=True
    )  # the session's own store (tests/conftest.py)
    result = labkit_cli("solve", "etcd", "--name", three_node_lab.name, check=False)
    assert result.returncode != 0
    assert "etcd" in result.stderr and "labkit artifacts" in result.stderr
    assert three_node_lab.run("node1", "test -e /usr/local/bin/etcd").exited != 0


def test_solve_etcd_runs_etcd_with_v2_on_node1(three_node_lab: Lab, served_etcd: str) -> None:
    # only etcd is served here (the other artifacts cannot be built on this machine)
    artifacts.fetch(artifacts.load_catalog(os.environ[CATALOG_ENV]).get("etcd"), mirror=served_etcd)
    plan = json.loads(labkit_cli("solve", "etcd", "--name", three_node_lab.name, "--plan", "--json").stdout)
    assert plan["changed"] >= 4 and plan["results"] == {}
    assert three_node_lab.run("node1", "test -e /etc/etcd/etcd.conf").exited != 0, (
        "--plan must change nothing"
    )

    first = json.loads(labkit_cli("solve", "etcd", "--name", three_node_lab.name, "--json").stdout)
    assert first["failed"] is False and first["changed"] >= 4
    assert set(first["results"]) == {"node1"}
    assert first["verified"] is True and first["snapshot"] == "etcd-ok", first["checks"]
    health = three_node_lab.run("node1", "ETCDCTL_API=3 /usr/local/bin/etcdctl endpoint health")
    assert health.ok, health.stdout + health.stderr
    conf = three_node_lab.run("node1", "cat /etc/etcd/etcd.conf").stdout
    assert f"--advertise-client-urls=http://{IPS['node1']}:2379" in conf and "--enable-v2=true" in conf


def test_seed_network_config_through_v2_read_back_from_another_node(
    three_node_lab: Lab, served_etcd: str
) -> None:
    value = json.dumps(NETWORK_CONFIG)
    put = three_node_lab.run(
        "node1", f"ETCDCTL_API=2 /usr/local/bin/etcdctl set /coreos.com/network/config '{value}'"
    )
    assert put.ok, put.stdout + put.stderr
    got = three_node_lab.run(
        "node2", f"curl -sf http://{IPS['node1']}:2379/v2/keys/coreos.com/network/config"
    )
    assert got.ok, got.stderr
    assert json.loads(json.loads(got.stdout)["node"]["value"]) == NETWORK_CONFIG


def test_second_solve_changes_nothing(three_node_lab: Lab, served_etcd: str) -> None:
    again = json.loads(labkit_cli("solve", "etcd", "--name", three_node_lab.name, "--json").stdout)
    assert again["failed"] is False and again["changed"] == 0
    plan = json.loads(labkit_cli("solve", "etcd", "--name", three_node_lab.name, "--plan", "--json").stdout)
    assert plan["changed"] == 0


def test_v2_off_gives_the_courses_error_and_solve_repairs_it(three_node_lab: Lab, served_etcd: str) -> None:
    lab = three_node_lab
    assert lab.run(
        "node1", "sudo sed -i '/--enable-v2=true/d' /etc/etcd/etcd.conf && sudo systemctl restart etcd"
    ).ok
    broken = lab.run("node1", "ETCDCTL_API=2 /usr/local/bin/etcdctl set /coreos.com/network/config '{}'")
    assert broken.exited != 0
    assert "response is invalid json" in broken.stdout + broken.stderr
    repaired = json.loads(
        labkit_cli(
            "solve", "etcd", "--name", lab.name, "--only", "etcd-conf,etcd-service,etcd-healthy", "--json"
        ).stdout
    )
    assert repaired["failed"] is False and repaired["changed"] >= 2
    fixed = lab.run("node1", "ETCDCTL_API=2 /usr/local/bin/etcdctl get /coreos.com/network/config")
    assert fixed.ok, fixed.stdout + fixed.stderr


def test_etcd_ok_is_verified_and_a_reset_to_it_heals_a_broken_etcd(
    three_node_lab: Lab, served_etcd: str
) -> None:
    lab = three_node_lab
    listing = json.loads(labkit_cli("snapshots", "--name", lab.name, "--json").stdout)
    etcd_ok = next(s for s in listing["snapshots"] if s["name"] == "etcd-ok")
    assert etcd_ok["verified"] is True and etcd_ok["stage"] == "etcd" and etcd_ok["complete"] is True

    assert lab.run(
        "node1", "sudo sed -i '/--enable-v2=true/d' /etc/etcd/etcd.conf && sudo systemctl restart etcd"
    ).ok
    failed = labkit_cli("check", "etcd", "--name", lab.name, "--lang", "en", "--json", check=False)
    assert failed.returncode == 1
    report = json.loads(failed.stdout)
    v2 = next(r for r in report["results"] if r["check"] == "etcd-v2-api")
    assert v2["ok"] is False and "--enable-v2=true" in v2["hint"] and "invalid json" in v2["seen"]
    assert all(r["ok"] for r in report["results"] if r["check"] != "etcd-v2-api")

    reset = json.loads(labkit_cli("reset", "etcd-ok", "--name", lab.name, "--json").stdout)
    print(f"reset to etcd-ok: {reset['seconds']:.1f} s")
    passed = json.loads(labkit_cli("check", "etcd", "--name", lab.name, "--json").stdout)
    assert passed["passed"] is True
    assert "--enable-v2=true" in lab.run("node1", "cat /etc/etcd/etcd.conf").stdout


def test_up_until_etcd_names_the_missing_sandbox_image_before_touching_a_node(
    three_node_lab: Lab, served_etcd: str
) -> None:
    """The issue's command as a trainer types it. Stage cri loads the sandbox image (registry.k8s.io/pause:3.2)
    from the host's cache, and no registry can be reached here: `up --until etcd` names it, with how to provide
    it, before any step runs (loading a served image is test_images_vm's; solving etcd is the tests above)."""
    lab = three_node_lab
    before = lab.run("node2", "systemctl is-active docker.service || true").stdout.strip()
    result = labkit_cli("up", "three-node", "--name", lab.name, "--until", "etcd", check=False)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "registry.k8s.io/pause:3.2" in result.stderr and "labkit artifacts" in result.stderr, result.stderr
    assert lab.run("node2", "systemctl is-active docker.service || true").stdout.strip() == before
