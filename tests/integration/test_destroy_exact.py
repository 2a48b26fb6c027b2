"""`labkit destroy` takes exactly the lab it is given, and never one that another command holds.

Both run against the shared lab `ci-three`: before labels were matched exactly, `labkit destroy ci` fell back to
the `labkit-ci-` name prefix and tore `ci-three` down, and a destroy of a busy lab did the same through that
fallback."""

from __future__ import annotations

import pytest

from labkit.lab import Lab
from labkit.lock import lab_lock
from labkit.machines.domains import domain_state, lab_domains
from labkit.machines.libvirt_host import libvirt_connect

from .lab_helpers import LAB, NODES, labkit_cli

pytestmark = pytest.mark.vm


def _running(lab: Lab) -> dict[str, str]:
    return {node: domain_state(dom) for node, dom in lab_domains(libvirt_connect(), lab.name, NODES).items()}


def test_destroy_of_a_name_prefix_leaves_the_longer_lab(three_node_lab: Lab) -> None:
    prefix = LAB.split("-")[0]  # "ci": no such lab, but `labkit-ci-` prefixes every domain of ci-three
    result = labkit_cli("destroy", prefix, check=False)
    assert result.returncode == 0, result.stderr
    assert _running(three_node_lab) == dict.fromkeys(NODES, "running")
    assert three_node_lab.run("node1", "true").ok


def test_destroy_of_a_busy_lab_is_refused(three_node_lab: Lab) -> None:
    with lab_lock(three_node_lab.paths.lock, LAB, "reset"):
        result = labkit_cli("destroy", LAB, check=False)
    assert result.returncode != 0
    assert "busy" in result.stderr, result.stderr
    assert _running(three_node_lab) == dict.fromkeys(NODES, "running")
    assert three_node_lab.paths.state.is_file()
