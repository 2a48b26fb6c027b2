"""Host mode for real: libvirtd in a private network namespace, started and stopped by PID.

These tests share the session's ``libvirt_host``. The last one stops host mode and starts it again (only when the
fixture owns it and no VM runs), so that the session ends as it began.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labkit.errors import HostError
from labkit.hostsetup.hostmode import enter_host_namespace, host_down, host_up
from labkit.hostsetup.hoststate import HostState, host_state, state_file
from labkit.hostsetup.processes import PIDFILES, find_libvirtd
from labkit.machines.libvirt_host import libvirt_connect

pytestmark = pytest.mark.vm

TAG = f"lkt{os.getpid() % 10_000_000}"  # bridge names are limited to 15 characters

NETWORK_XML = f"""<network>
  <name>{TAG}</name>
  <bridge name='{TAG}' stp='off'/>
  <ip address='192.168.253.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.253.10' end='192.168.253.20'/></dhcp>
  </ip>
</network>
"""

# A diskless VM that sits in the BIOS: enough for a QEMU process with a tap on the test network.
DOMAIN_XML = f"""<domain type='qemu'>
  <name>{TAG}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <interface type='network'><source network='{TAG}'/><model type='virtio'/></interface>
  </devices>
</domain>
"""


def ns_id(path: str | Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def live_in_netns(ns: tuple[int, int]) -> dict[int, str]:
    """{pid: comm} of live processes other than pytest in network namespace ``ns``."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            if stat[stat.rindex(")") + 2] in "ZX" or ns_id(Path(entry.path, "ns", "net")) != ns:
                continue
            found[int(entry.name)] = Path(entry.path, "comm").read_text().strip()
        except OSError:
            continue
    return found


def run(*cmd: str, pass_fds: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, pass_fds=pass_fds, check=False)


@pytest.fixture
def host_mode(libvirt_host: HostState | None) -> HostState:
    if libvirt_host is None:
        pytest.skip("libvirtd runs without host mode here (workstation)")
    state = host_state()
    assert state is not None
    return state


@pytest.fixture
def lab_network(libvirt_host: HostState | None) -> Iterator[Any]:
    conn = libvirt_connect()
    net = conn.networkDefineXML(NETWORK_XML)
    try:
        net.create()
        yield net
    finally:
        conn = libvirt_connect()  # host mode may have been restarted meanwhile
        net = conn.networkLookupByName(TAG)
        if net.isActive():
            net.destroy()
        net.undefine()
        conn.close()


def test_libvirt_connects_and_pool_is_active(libvirt_host: HostState | None) -> None:
    conn = libvirt_connect()
    try:
        assert conn.getLibVersion() >= 9_000_000
        pool = conn.storagePoolLookupByName("default")
        assert pool.isActive()
        assert pool.autostart()
    finally:
        conn.close()


def test_pytest_runs_inside_the_namespace(host_mode: HostState, outer_netns_fd: int) -> None:
    assert ns_id("/proc/self/ns/net") == ns_id(host_mode.netns_path)
    assert ns_id(f"/proc/self/fd/{outer_netns_fd}") != ns_id(host_mode.netns_path)
    assert enter_host_namespace() == host_mode.netns  # idempotent
    assert ns_id("/proc/self/ns/net") == ns_id(host_mode.netns_path)


def test_bridge_lives_in_the_namespace_not_on_the_host(
    host_mode: HostState, lab_network: Any, outer_netns_fd: int
) -> None:
    inside = run("ip", "netns", "exec", host_mode.netns, "ip", "-br", "link", "show", TAG)
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.startswith(TAG)
    assert run("ip", "-br", "link", "show", TAG).returncode == 0  # pytest's subprocesses are inside too
    outer = f"--net=/proc/self/fd/{outer_netns_fd}"
    on_host = run("nsenter", outer, "ip", "-br", "link", "show", TAG, pass_fds=(outer_netns_fd,))
    assert on_host.returncode != 0
    assert "does not exist" in on_host.stderr
    rules = run("ip", "netns", "exec", host_mode.netns, "iptables", "-S")
    assert TAG in rules.stdout  # libvirt's isolation rules for the bridge live in the namespace
    host_rules = run("nsenter", outer, "iptables", "-S", pass_fds=(outer_netns_fd,))
    assert TAG not in host_rules.stdout


def test_up_again_is_idempotent(host_mode: HostState) -> None:
    again = host_up(host_mode.netns)
    assert again.already_up
    assert again == host_mode
    with pytest.raises(HostError, match="already up in network namespace"):
        host_up(host_mode.netns + "-other")
    assert not Path("/run/netns", host_mode.netns + "-other").exists()


def test_up_refuses_a_libvirtd_labkit_did_not_start(
    libvirt_host: HostState | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen from another LABKIT_RUN_DIR, the running libvirtd is someone else's (as on a workstation)."""
    monkeypatch.setenv("LABKIT_RUN_DIR", str(tmp_path))
    with pytest.raises(HostError, match="not needed here"):
        host_up("labkit-test-refused")
    assert not Path("/run/netns/labkit-test-refused").exists()
    assert not state_file().exists()


def test_down_stops_exactly_what_up_started_then_up_restores(
    host_mode: HostState, host_mode_owned: bool, lab_network: Any
) -> None:
    if not host_mode_owned:
        pytest.skip("host mode was started outside this test session: not stopping it")
    conn = libvirt_connect()
    others = [d.name() for d in conn.listAllDomains() if d.isActive()]
    if others:
        pytest.skip(f"VMs of other tests still run ({', '.join(others)}): stopping libvirtd would kill them")
    started = time.monotonic()
    dom = conn.createXML(DOMAIN_XML, 0)  # a QEMU process with a tap device on the test network
    took = time.monotonic() - started
    conn.close()
    print(f"starting a diskless TCG domain took {took:.2f} s")
    # Without the qemu.conf overlay (qemu_needs_root) libvirt re-probes QEMU for 37-40 s here.
    assert took < 20, f"domain start took {took:.0f} s: is libvirt re-probing QEMU capabilities?"
    ns = ns_id(host_mode.netns_path)
    before = live_in_netns(ns)
    assert {"libvirtd", "virtlogd", "dnsmasq"} <= set(before.values()), before
    assert any(c.startswith("qemu-system") for c in before.values()), before
    # A process of someone else's in the namespace: host_down must leave it alone.
    bystander = subprocess.Popen(["ip", "netns", "exec", host_mode.netns, "sleep", "300"])
    try:
        deadline = time.monotonic() + 10
        while live_in_netns(ns).get(bystander.pid) != "sleep" and time.monotonic() < deadline:
            time.sleep(0.05)
        ports = run("ip", "-br", "link", "show", "master", TAG)
        assert dom.isActive() and "vnet" in ports.stdout, ports  # the VM's tap is on the bridge

        with pytest.raises(HostError, match=f"still running under host mode: {TAG}"):
            host_down()
        assert host_state() == host_mode  # refused: nothing stopped

        started = time.monotonic()
        host_down(force=True)
        took = time.monotonic() - started
        print(f"host down (1 VM, 1 network) took {took:.2f} s")

        for daemon in host_mode.daemons:
            assert not daemon.running, daemon
        for pidfile in PIDFILES.values():
            assert not pidfile.exists(), pidfile
        assert host_mode.netns not in run("ip", "netns", "list").stdout
        assert not host_mode.netns_path.exists()
        assert host_state() is None
        assert not state_file().exists()
        assert find_libvirtd() is None
        assert live_in_netns(ns) == {bystander.pid: "sleep"}  # libvirt's dnsmasq and QEMU are gone too
        host_down()  # safe when nothing is up
    finally:
        bystander.terminate()
        bystander.wait(10)

    started = time.monotonic()
    state = host_up(host_mode.netns)
    print(f"host up took {time.monotonic() - started:.2f} s")
    assert not state.already_up
    assert {d.pid for d in state.daemons}.isdisjoint({d.pid for d in host_mode.daemons})
    assert enter_host_namespace() == state.netns
    assert ns_id("/proc/self/ns/net") == ns_id(state.netns_path) != ns
    conn = libvirt_connect()
    try:
        assert conn.storagePoolLookupByName("default").isActive()
        assert not conn.networkLookupByName(TAG).isActive()  # stopped by host_down, definition kept
        assert TAG not in [d.name() for d in conn.listAllDomains()]  # the transient VM is gone
    finally:
        conn.close()
