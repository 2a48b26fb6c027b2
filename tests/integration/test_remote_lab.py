"""A lab brought up on a second libvirt host, for real: `labkit up one-vm --host ci-h2` renders a Vagrantfile
with the host's qemu+ssh URI, vagrant-libvirt uploads the box into that host's pool and boots the VM there,
and vagrant's SSH, like labkit's, jumps through the host's sshd. Every later command finds the lab's host from
its record: status, ssh, check, reset and destroy, which leaves nothing on that host."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labkit.hostsetup import pool
from labkit.lab import destroy_by_name
from labkit.paths import LabPaths

from .lab_helpers import dump_lab_logs, labkit_cli
from .second_hosts import H2

pytestmark = pytest.mark.vm

LAB = "ci-remote"
SCENARIO = Path(__file__).parent / "scenarios" / "one-vm"


@pytest.fixture(scope="module")
def remote_lab(second_host: str) -> Iterator[dict[str, Any]]:
    """`labkit up one-vm --name ci-remote --host ci-h2 --until hello`; destroyed at the end."""
    destroy_by_name(LAB, None if LabPaths.for_lab(LAB).state.exists() else pool.libvirt_host(H2))
    started = time.monotonic()
    result = labkit_cli(
        "up",
        str(SCENARIO),
        "--name",
        LAB,
        "--host",
        H2,
        "--until",
        "hello",
        "--json",
        check=False,
        timeout=2400,
    )
    print(f"\nup --host {H2}: {time.monotonic() - started:.1f} s\n{result.stderr[-3000:]}", file=sys.stderr)
    try:
        if result.returncode != 0:
            dump_lab_logs(LAB)
            pytest.fail(f"labkit up --host failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        yield json.loads(result.stdout)
    finally:
        labkit_cli("destroy", LAB, check=False, timeout=900)


def _on_h2() -> dict[str, list[str]]:
    conn = pool.libvirt_host(H2).connect()
    prefix = f"labkit-{LAB}-"
    return {
        "domains": [d.name() for d in conn.listAllDomains(0) if d.name().startswith(prefix)],
        "networks": [n.name() for n in conn.listAllNetworks(0) if n.name().startswith(prefix)],
    }


def test_the_vm_runs_on_the_second_host_and_the_stage_is_verified(remote_lab: dict[str, Any]) -> None:
    assert remote_lab["booted"] == ["node1"] and remote_lab["accel"] in ("kvm", "qemu")
    assert _on_h2()["domains"] == [f"labkit-{LAB}-node1"]
    local = pool.libvirt_host("local").connect()
    assert not [d.name() for d in local.listAllDomains(0) if d.name().startswith(f"labkit-{LAB}-")]
    status = json.loads(labkit_cli("status", "--name", LAB, "--json").stdout)
    assert status["host"] == H2, status
    assert [n["state"] for n in status["nodes"]] == ["running"]
    assert "hello-ok" in status["snapshots"] and "hello" in status["verified_stages"]
    listed = {h["name"]: h for h in json.loads(labkit_cli("hosts", "list", "--json").stdout)}
    assert LAB in listed[H2]["labs"]
    rendered = (LabPaths.for_lab(LAB).root / "Vagrantfile").read_text()
    assert "qemu+ssh://" in rendered and "config.ssh.proxy_command" in rendered


def test_ssh_check_and_reset_find_the_lab_on_its_host(remote_lab: dict[str, Any]) -> None:
    assert labkit_cli("ssh", "node1", "--name", LAB, "--", "hostname").stdout.strip() == "node1"
    labkit_cli("ssh", "node1", "--name", LAB, "--", "sudo", "rm", "/etc/labkit-hello")
    failing = labkit_cli("check", "hello", "--name", LAB, "--json", check=False)
    assert failing.returncode == 1, failing.stdout + failing.stderr
    labkit_cli("reset", "hello-ok", "--name", LAB, timeout=900)
    passed = json.loads(labkit_cli("check", "hello", "--name", LAB, "--json").stdout)
    assert passed["passed"] is True


def test_up_again_converges_and_destroy_leaves_nothing_on_the_host(remote_lab: dict[str, Any]) -> None:
    again = json.loads(labkit_cli("up", str(SCENARIO), "--name", LAB, "--json", timeout=900).stdout)
    assert again["booted"] == [] and again["already_running"] == ["node1"]
    labkit_cli("destroy", LAB, timeout=900)
    assert _on_h2() == {"domains": [], "networks": []}
    assert not LabPaths.for_lab(LAB).root.exists()
