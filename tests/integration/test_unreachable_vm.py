"""A VM that freezes mid-lab (here: paused by libvirt, as a host under memory pressure or a hung guest looks)
never hangs `labkit check`, holds the lab, or shows the trainee a teaching hint: its node is reported as not
answering, within the SSH connect and keepalive bounds, and the stage's verified state is kept."""

from __future__ import annotations

import json
import time

import pytest

from labkit.lab import Lab
from labkit.machines.domains import lab_domains
from labkit.machines.libvirt_host import libvirt_connect

from .lab_helpers import LAB, labkit_cli

pytestmark = pytest.mark.vm


def test_a_paused_vm_is_unreachable_not_a_failed_check(three_node_lab: Lab) -> None:
    dom = lab_domains(libvirt_connect(), LAB, ["node2"])["node2"]
    dom.suspend()
    try:
        started = time.monotonic()
        result = labkit_cli("check", "cri", "--name", LAB, "--json", check=False, timeout=900)
        took = time.monotonic() - started
    finally:
        dom.resume()
    print(f"labkit check cri with node2 paused: exit {result.returncode} after {took:.1f} s")
    assert result.returncode == 4, result.stdout + result.stderr
    report = json.loads(result.stdout)
    node2 = [r for r in report["results"] if r["node"] == "node2"]
    assert node2 and all(r["status"] == "unreachable" and not r["hint"] for r in node2), node2
    assert all(
        r["node"] != "node2" for group in report["failures"] for r in [group] if "node2" in group["nodes"]
    )
    assert took < 240  # connect 30 s + keepalive bounds, not the hour paramiko would wait by default
    # the lab is free again and node2 answers once resumed
    assert three_node_lab.run("node2", "true").ok
