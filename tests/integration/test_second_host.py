"""A second libvirt host on this machine (`labkit host up --name`), reached over SSH from a namespace of the
test's own, standing in for labkit's: the pool lists it with real figures, a dead libvirtd there is reported
quickly without breaking the listing, and `host down` leaves nothing behind. No VM is booted.

Every labkit command of "labkit's side" runs in that stand-in namespace and in a mount namespace whose
/run/libvirt is an empty tmpfs: the machine's own libvirtd (host mode's, someone else's) is never contacted,
so `local` is listed as unreachable here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labkit.hostsetup.processes import find_libvirtd, ns_id, pids_in_netns, proc_stat
from labkit.hostsetup.second_host.layout import SecondHostPaths

from .second_hosts import labkit, missing_tool, print_logs

pytestmark = [pytest.mark.host2, pytest.mark.timeout(300)]


@pytest.fixture(autouse=True)
def _root_and_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("a second host needs root (namespaces, libvirtd, sshd)")
    missing = missing_tool()
    if missing is not None:
        pytest.skip(f"{missing} is not installed")
    monkeypatch.setenv("LABKIT_RUN_DIR", str(tmp_path / "run"))  # never the machine's host mode


def netns_names() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


@pytest.fixture
def side() -> Iterator[str]:
    """A network namespace of the test's own, standing in for labkit's (host mode's `labkit` is not ours)."""
    name = f"lkt{os.getpid()}-side"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "delete", name], check=False)


class SecondHost:
    def __init__(self, name: str, side: str) -> None:
        self.name, self.side, self.paths = name, side, SecondHostPaths.for_host(name)

    def up(self) -> tuple[str, float]:
        started = time.monotonic()
        out = labkit("host", "up", "--name", self.name, "--peer-netns", self.side).stdout
        return out, time.monotonic() - started

    def status(self) -> dict[str, Any]:
        return json.loads(labkit("host", "status", "--name", self.name, "--json").stdout)  # type: ignore[no-any-return]

    def down(self) -> str:
        return labkit("host", "down", "--name", self.name, "--force").stdout


@pytest.fixture
def hosts(side: str) -> Iterator[list[SecondHost]]:
    """Second hosts the test starts (append to the list); each is brought down, its logs printed."""
    started: list[SecondHost] = []
    yield started
    for host in started:
        print_logs(host.paths)
        labkit("host", "down", "--name", host.name, "--force", check=False)


def _start(hosts: list[SecondHost], side: str, suffix: str) -> tuple[SecondHost, str, float]:
    host = SecondHost(f"t{os.getpid() % 100000}{suffix}", side)
    hosts.append(host)
    out, seconds = host.up()
    print(f"labkit host up --name {host.name}: {seconds:.2f} s (wall, CLI included)")
    return host, out, seconds


def _list(side: str) -> tuple[dict[str, dict[str, Any]], float]:
    started = time.monotonic()
    rows = json.loads(labkit("hosts", "list", "--json", side=side).stdout)
    return {row["name"]: row for row in rows}, time.monotonic() - started


def networks_seen(side: str, uri: str) -> list[str]:
    cmd = ["ip", "netns", "exec", side, "virsh", "-c", uri, "net-list", "--all", "--name"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout.split()


def _daemons(status: dict[str, Any]) -> dict[str, int]:
    return {d["name"]: d["pid"] for d in status["daemons"]}


def test_a_second_host_joins_the_pool_and_shares_nothing_with_another(
    hosts: list[SecondHost], side: str
) -> None:
    a, out, _ = _start(hosts, side, "a")
    status = a.status()
    assert status["up"] and "add it to the pool: labkit hosts add" in out
    pids = _daemons(status)
    assert set(pids) == {"virtlogd", "libvirtd", "sshd"}
    assert Path(f"/proc/{pids['libvirtd']}/comm").read_text().strip() == "labkit-libvirtd"
    assert find_libvirtd() != pids["libvirtd"]  # host mode's "a libvirtd runs already" check does not see it
    mounts = {os.readlink(f"/proc/{pid}/ns/mnt") for pid in pids.values()}
    nets = {ns_id(f"/proc/{pid}/ns/net") for pid in pids.values()}
    assert len(mounts) == 1 and mounts != {os.readlink("/proc/self/ns/mnt")}  # one private mount namespace
    assert nets == {ns_id(f"/run/netns/{status['netns']}")}

    added = labkit("hosts", "add", a.name, status["uri"], "--max-labs", "2", side=side).stdout
    assert "reachable, " in added and "unreachable" not in added
    rows, seconds = _list(side)
    print(f"labkit hosts list with {a.name} up: {seconds:.2f} s (wall); {a.name}: {rows[a.name]}")
    row = rows[a.name]
    assert row["reachable"] and row["accelerator"] in ("kvm", "qemu") and row["max_labs"] == 2
    assert row["ram_free"] > 2**28 and row["disk_free"] > 2**28 and row["labs"] == []
    assert "local" in rows

    b, _, _ = _start(hosts, side, "b")
    assert b.status()["address"] != status["address"]
    import libvirt

    conn = libvirt.open(a.paths.socket_uri)
    try:
        conn.networkDefineXML(f"<network><name>only-on-{a.name}</name></network>")
    finally:
        conn.close()
    assert f"only-on-{a.name}" in networks_seen(side, status["uri"])  # over ssh, from labkit's side
    assert f"only-on-{a.name}" not in networks_seen(side, b.status()["uri"])
    assert (a.paths.private("etc") / "qemu" / "networks" / f"only-on-{a.name}.xml").exists()
    assert not Path(f"/etc/libvirt/qemu/networks/only-on-{a.name}.xml").exists()  # the machine's: untouched


def test_a_dead_libvirtd_is_reported_quickly_and_down_leaves_nothing(
    hosts: list[SecondHost], side: str
) -> None:
    host, _, _ = _start(hosts, side, "c")
    status = host.status()
    labkit("hosts", "add", host.name, status["uri"], side=side)
    rows, seconds = _list(side)
    assert rows[host.name]["reachable"]

    libvirtd = next(d for d in status["daemons"] if d["name"] == "libvirtd")
    os.kill(libvirtd["pid"], signal.SIGKILL)  # the PID the host's record holds
    rows, seconds = _list(side)
    print(
        f"labkit hosts list with {host.name}'s libvirtd dead: {seconds:.2f} s (wall); reason: {rows[host.name]['reason']}"
    )
    assert seconds < 15
    assert not rows[host.name]["reachable"] and rows[host.name]["reason"]
    assert "local" in rows
    assert "UNREACHABLE" in labkit("hosts", "list", side=side).stdout

    again = labkit("host", "up", "--name", host.name, "--peer-netns", side).stdout
    assert "started libvirtd again" in again
    rows, _ = _list(side)
    assert rows[host.name]["reachable"]

    status = host.status()
    netns = ns_id(f"/run/netns/{status['netns']}")
    pids = [d["pid"] for d in status["daemons"]]
    down = host.down()
    print(down.strip())
    assert all((stat := proc_stat(pid)) is None or stat[0] in ("Z", "X") for pid in pids)  # gone or a zombie
    assert pids_in_netns(netns) == []
    assert status["netns"] not in netns_names()
    link = subprocess.run(
        ["ip", "-n", side, "link", "show", status["peer_veth"]], capture_output=True, check=False
    )
    assert link.returncode != 0
    assert not host.paths.state.exists() and not host.status()["up"]
    assert "nothing to do" in host.down()
