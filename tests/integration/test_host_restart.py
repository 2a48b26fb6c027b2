"""`labkit host up` after libvirtd died: libvirtd starts again in the same namespace and takes the running VMs
back. Before, host up treated the state as stale and SIGTERMed every QEMU in the namespace: every guest died."""

from __future__ import annotations

import os
import signal
import time

import pytest

from labkit.hostsetup.hoststate import HostState, host_state
from labkit.hostsetup.processes import PIDFILES
from labkit.lab import Lab
from labkit.machines.domains import domain_state, lab_domains
from labkit.machines.libvirt_host import libvirt_connect

from .lab_helpers import NODES, labkit_cli

pytestmark = pytest.mark.vm


def _qemu_pids(lab: Lab) -> dict[str, int]:
    return {
        node: int(open(f"/run/libvirt/qemu/labkit-{lab.name}-{node}.pid").read().strip()) for node in NODES
    }


def test_host_up_after_a_libvirtd_crash_keeps_every_vm_and_its_memory(
    three_node_lab: Lab, libvirt_host: HostState | None, host_mode_owned: bool
) -> None:
    if libvirt_host is None or not host_mode_owned:
        pytest.skip("needs the session's own host mode (it kills libvirtd)")
    lab = three_node_lab
    markers = {}
    uptimes = {}
    for node in NODES:
        started = lab.run(node, "setsid sleep 100000 </dev/null >/dev/null 2>&1 & echo $!")
        markers[node] = int(started.stdout.strip())
        uptimes[node] = float(lab.run(node, "cut -d' ' -f1 /proc/uptime").stdout)
    qemu_before = _qemu_pids(lab)
    libvirtd = int(PIDFILES["libvirtd"].read_text().strip())
    os.kill(libvirtd, signal.SIGKILL)  # the fault: libvirtd crashes; QEMU processes live on
    time.sleep(1)
    assert not host_state().healthy  # type: ignore[union-attr]
    started = time.monotonic()
    result = labkit_cli("host", "up")
    print(f"host up after the crash: {time.monotonic() - started:.1f} s: {result.stdout.strip()}")
    assert "started it again" in result.stdout and "took back 3 running VM(s)" in result.stdout
    state = host_state()
    assert state is not None and state.healthy and state.netns == libvirt_host.netns
    assert state.libvirtd_pid != libvirtd
    assert _qemu_pids(lab) == qemu_before, "the same QEMU processes, not restarted ones"
    domains = lab_domains(libvirt_connect(), lab.name, NODES)
    assert {node: domain_state(dom) for node, dom in domains.items()} == dict.fromkeys(NODES, "running")
    for node in NODES:
        assert lab.run(node, f"kill -0 {markers[node]}").ok, f"{node} lost its memory state"
        assert float(lab.run(node, "cut -d' ' -f1 /proc/uptime").stdout) > uptimes[node]
        lab.run(node, f"kill {markers[node]}")
    # libvirt manages them again: a snapshot set can be taken and deleted
    labkit_cli("snapshot", "after-crash", "--name", lab.name)
    labkit_cli("snapshot", "delete", "after-crash", "--name", lab.name)
