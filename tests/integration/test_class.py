"""A class of two trainees on pod-routes, for real: the golden lab solved and verified to `routes` once, then two
trainee labs cloned from its `routes-ok` with their memory (golden shut off, 4 emulated VMs running).

The clones' pods (network namespaces made by the real CNI plugins before the snapshot) still exist and ping
each other across nodes; a route removed in one trainee's lab fails only that trainee's cell; the trainer's
reset of one trainee leaves the other's lab as it was; `class destroy` leaves nothing in libvirt.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from labkit.classroom import Classroom
from labkit.classroom.classroom import labs_of_class
from labkit.hostsetup.hostmode import local_host
from labkit.lab import Lab
from labkit.paths import LabPaths

from .artifact_server import ServedArtifacts
from .lab_helpers import labkit_cli

pytestmark = pytest.mark.vm

CLASS = "ci-class"
TRAINEES = ("trainee1", "trainee2")
POD_IPS = {"node1": "10.244.1.10", "node2": "10.244.2.10"}
OTHER = {"node1": "node2", "node2": "node1"}
MARKER = "/home/vagrant/trainee2-was-here"


def _lab(trainee: str) -> Lab:
    return Lab.load(f"{CLASS}-{trainee}")


def _dump_logs(lab: str) -> None:
    for log in sorted(LabPaths.for_lab(lab).logs.glob("*.log")):
        print(f"---- {log} (last 60 lines) ----", file=sys.stderr)
        print("\n".join(log.read_text(errors="replace").splitlines()[-60:]), file=sys.stderr)


def _nothing_left() -> dict[str, Any]:
    conn = local_host().connect()
    names = [d.name() for d in conn.listAllDomains(0) if d.name().startswith(f"labkit-{CLASS}-")]
    nets = [n.name() for n in conn.listAllNetworks(0) if n.name().startswith(f"labkit-{CLASS}-")]
    pool = local_host().ensure_pool()
    pool.refresh(0)
    volumes = [v.name() for v in pool.listAllVolumes(0) if v.name().startswith(f"labkit-{CLASS}-")]
    return {
        "domains": names,
        "networks": nets,
        "volumes": volumes,
        "labelled": labs_of_class(local_host(), CLASS),
    }


@pytest.fixture(scope="module")
def klass(served_cni: ServedArtifacts) -> Iterator[dict[str, Any]]:
    """`labkit class up ci-class pod-routes --until routes --trainees 2`; destroyed at the end."""
    Classroom(CLASS).destroy()  # leftovers of an interrupted earlier run
    started = time.monotonic()
    result = labkit_cli(
        "class", "up", CLASS, "pod-routes", "--until", "routes", "--trainees", "2", "--json",
        check=False, timeout=3600,
    )  # fmt: skip
    print(f"\nclass up: {time.monotonic() - started:.1f} s\n{result.stderr[-3000:]}", file=sys.stderr)
    try:
        if result.returncode != 0:
            for lab in (f"{CLASS}-golden", *(f"{CLASS}-{t}" for t in TRAINEES)):
                _dump_logs(lab)
            pytest.fail(f"class up failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        yield json.loads(result.stdout)
    finally:
        labkit_cli("class", "destroy", CLASS, check=False, timeout=900)


def test_each_trainee_gets_a_running_clone_of_the_verified_stage(klass: dict[str, Any]) -> None:
    assert sorted(klass["cloned"]) == list(TRAINEES)
    for trainee in TRAINEES:
        cloned = klass["cloned"][trainee]
        print(
            f"{trainee}: ready in {cloned['seconds']:.1f} s, reverts {cloned['revert_seconds']}",
            file=sys.stderr,
        )
    golden = Lab.load(f"{CLASS}-golden")
    status = {
        t: json.loads(labkit_cli("status", "--name", f"{CLASS}-{t}", "--json").stdout) for t in TRAINEES
    }
    addresses = set()
    for data in status.values():
        assert {n["name"]: n["state"] for n in data["nodes"]} == {"node1": "running", "node2": "running"}
        addresses |= {n["management_ip"] for n in data["nodes"]}
        assert "routes-ok" in data["snapshots"]
        assert "routes" in data["verified_stages"]
    assert len(addresses) == 4  # every clone leased its own management address on its own network
    assert golden.state is not None
    assert not addresses & {n.management_ip for n in golden.state.nodes.values()}
    # the trainee's own key, and the host key recorded for it: `labkit ssh` works on the clone
    hostname = labkit_cli("ssh", "node2", "--name", f"{CLASS}-trainee1", "--", "hostname")
    assert hostname.stdout.strip() == "node2"


def test_the_clones_pods_outlived_the_clone_and_reach_each_other(klass: dict[str, Any]) -> None:
    checked = json.loads(labkit_cli("class", "check", CLASS, "routes", "--json").stdout)
    assert {t: c["status"] for t, c in checked.items()} == dict.fromkeys(TRAINEES, "verified"), checked
    for trainee in TRAINEES:
        lab = _lab(trainee)
        for node, other in OTHER.items():
            ping = lab.run(node, f"sudo ip netns exec pod1 ping -c 2 -W 2 {POD_IPS[other]}")
            assert ping.ok and "ttl=62" in ping.stdout, ping.stdout + ping.stderr


def test_a_route_removed_in_one_lab_fails_only_that_trainees_cell(klass: dict[str, Any]) -> None:
    assert _lab("trainee1").run("node2", "sudo ip route del 10.244.1.0/24").ok
    checked = labkit_cli("class", "check", CLASS, "routes", check=False)
    assert checked.returncode == 1
    grid = json.loads(labkit_cli("class", "status", CLASS, "--json").stdout)
    cells = {row["trainee"]: row["cells"]["routes"] for row in grid["trainees"]}
    assert cells["trainee1"]["status"] == "failing"
    assert "on node" in cells["trainee1"]["detail"]
    assert cells["trainee2"]["status"] == "verified"
    assert grid["host"]["ram_available_mib"] > 0


def test_the_trainers_reset_of_one_trainee_leaves_the_other_lab_untouched(klass: dict[str, Any]) -> None:
    assert _lab("trainee2").run("node1", f"touch {MARKER} && sync").ok
    labkit_cli("class", "reset", CLASS, "trainee1", "routes-ok", timeout=900)
    passed = json.loads(labkit_cli("check", "routes", "--name", f"{CLASS}-trainee1", "--json").stdout)
    assert passed["passed"] is True
    assert _lab("trainee2").run("node1", f"test -f {MARKER}").ok
    grid = json.loads(labkit_cli("class", "status", CLASS, "--json").stdout)
    cells = {row["trainee"]: row["cells"]["routes"]["status"] for row in grid["trainees"]}
    assert cells == {"trainee1": "verified", "trainee2": "verified"}


def test_class_up_again_clones_nobody_and_a_clone_refuses_vagrant_up(klass: dict[str, Any]) -> None:
    again = json.loads(
        labkit_cli(
            "class", "up", CLASS, "pod-routes", "--until", "routes", "--trainees", "2", "--json"
        ).stdout
    )
    assert again["cloned"] == {} and sorted(again["already"]) == list(TRAINEES) and again["golden_reused"]
    refused = labkit_cli("up", "pod-routes", "--name", f"{CLASS}-trainee2", check=False)
    assert refused.returncode == 2 and "is a clone of" in refused.stderr


def test_class_destroy_leaves_nothing(klass: dict[str, Any]) -> None:
    labkit_cli("class", "destroy", CLASS, timeout=900)
    assert _nothing_left() == {"domains": [], "networks": [], "volumes": [], "labelled": []}
    assert not LabPaths.for_lab(f"{CLASS}-trainee1").root.exists()
