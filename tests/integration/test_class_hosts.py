"""A class over two libvirt hosts, for real: this machine's (host mode) and a second host started on it
(`labkit host up --name`, its own network and mount namespaces, libvirtd and sshd), reached by `qemu+ssh`.

The golden lab is built here; `class up --hosts local,H2` places one trainee lab on each host: the remote one
gets the box and the golden's disk copied over SSH (checked by sha256) and runs there from the golden's memory.
Its nodes are reached through the host's sshd. The remote host going down is reported, the local lab keeps
working; `class destroy` leaves nothing on either host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from labkit.classroom import Classroom
from labkit.hostsetup import pool
from labkit.hostsetup.second_host.layout import SecondHostPaths
from labkit.hostsetup.second_host.record import read_state

from .artifact_server import ServedArtifacts
from .lab_helpers import labkit_cli
from .second_hosts import missing_tool, print_logs

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(missing_tool() is not None, reason=f"a second host needs {missing_tool()}"),
]

CLASS = "ci-hosts"
H2 = "ci-h2"
TRAINEES = ("trainee1", "trainee2")


def _libvirtd_pid() -> int:
    state = read_state(SecondHostPaths.for_host(H2))
    assert state is not None
    return next(d.pid for d in state.daemons if d.name == "libvirtd")


def _named_for_class(host: str) -> dict[str, list[str]]:
    conn = pool.libvirt_host(host).connect()
    prefix = f"labkit-{CLASS}-"
    return {
        "domains": [d.name() for d in conn.listAllDomains(0) if d.name().startswith(prefix)],
        "networks": [n.name() for n in conn.listAllNetworks(0) if n.name().startswith(prefix)],
    }


@pytest.fixture(scope="module")
def second_host(libvirt_host: Any) -> Iterator[str]:
    """A second host on this machine, in the pool as ci-h2; down and out of the pool at the end."""
    labkit_cli("host", "down", "--name", H2, check=False)
    labkit_cli("hosts", "remove", H2, check=False)
    shutil.rmtree(SecondHostPaths.for_host(H2).root, ignore_errors=True)  # a fresh host: no earlier run's VMs
    up = labkit_cli("host", "up", "--name", H2, timeout=300)
    uri = re.search(r"its URI: (\S+)", up.stdout)
    assert uri is not None, up.stdout
    try:
        labkit_cli("hosts", "add", H2, uri.group(1))
        yield uri.group(1)
    finally:
        print_logs(SecondHostPaths.for_host(H2))
        labkit_cli("hosts", "remove", H2, check=False)
        labkit_cli("host", "down", "--name", H2, check=False, timeout=300)


@pytest.fixture(scope="module")
def klass(second_host: str, served_cni: ServedArtifacts) -> Iterator[dict[str, Any]]:
    Classroom(CLASS).destroy()
    started = time.monotonic()
    result = labkit_cli(
        "class", "up", CLASS, "pod-routes", "--until", "routes", "--trainees", "2", "--hosts", f"local,{H2}",
        "--json", check=False, timeout=3600,
    )  # fmt: skip
    print(f"\nclass up: {time.monotonic() - started:.1f} s\n{result.stderr[-3000:]}", file=sys.stderr)
    try:
        if result.returncode != 0:
            pytest.fail(f"class up failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        yield json.loads(result.stdout)
    finally:
        labkit_cli("class", "destroy", CLASS, check=False, timeout=900)


def test_one_trainee_lab_on_each_host_and_both_pass_their_checks(klass: dict[str, Any]) -> None:
    hosts = {t: c["host"] for t, c in klass["cloned"].items()}
    assert sorted(hosts.values()) == sorted(["local", H2]), hosts
    for trainee, cloned in klass["cloned"].items():
        print(
            f"{trainee} on {cloned['host']}: ready in {cloned['seconds']:.1f} s, copies {cloned['copy_seconds']}"
        )
    listed = {h["name"]: h for h in json.loads(labkit_cli("hosts", "list", "--json").stdout)}
    for trainee, host in hosts.items():
        assert f"{CLASS}-{trainee}" in listed[host]["labs"], listed[host]
    checked = json.loads(labkit_cli("class", "check", CLASS, "routes", "--json").stdout)
    assert {t: c["status"] for t, c in checked.items()} == dict.fromkeys(TRAINEES, "verified"), checked


def test_ssh_and_reset_work_on_the_remote_lab(klass: dict[str, Any]) -> None:
    remote = next(t for t, c in klass["cloned"].items() if c["host"] == H2)
    lab = f"{CLASS}-{remote}"
    hostname = labkit_cli("ssh", "node2", "--name", lab, "--", "hostname")
    assert hostname.stdout.strip() == "node2"
    labkit_cli("ssh", "node1", "--name", lab, "--", "sudo", "ip", "route", "del", "10.244.2.0/24")
    failing = labkit_cli("check", "routes", "--name", lab, "--json", check=False)
    assert failing.returncode == 1
    labkit_cli("reset", "routes-ok", "--name", lab, timeout=900)
    passed = json.loads(labkit_cli("check", "routes", "--name", lab, "--json").stdout)
    assert passed["passed"] is True


def test_a_host_that_is_down_is_reported_and_the_other_lab_keeps_working(klass: dict[str, Any]) -> None:
    local = next(t for t, c in klass["cloned"].items() if c["host"] == "local")
    os.kill(_libvirtd_pid(), signal.SIGTERM)  # libvirtd stopped; its VMs keep running
    try:
        status = labkit_cli("class", "status", CLASS, "--json", timeout=120)
        rows = {r["trainee"]: r for r in json.loads(status.stdout)["trainees"]}
        remote = next(t for t in TRAINEES if t != local)
        assert rows[remote]["host_unreachable"], rows[remote]
        assert not rows[local]["host_unreachable"]
        assert (
            labkit_cli("ssh", "node1", "--name", f"{CLASS}-{local}", "--", "hostname").stdout.strip()
            == "node1"
        )
    finally:
        labkit_cli("host", "up", "--name", H2, timeout=300)  # starts the stopped libvirtd again


def test_class_destroy_leaves_nothing_on_either_host(klass: dict[str, Any]) -> None:
    labkit_cli("class", "destroy", CLASS, timeout=900)
    for host in ("local", H2):
        assert _named_for_class(host) == {"domains": [], "networks": []}, host
