"""A class of two trainees on pod-routes, for real: the golden lab solved and verified to `routes` once, then two
trainee labs cloned from its `routes-ok` with their memory (golden shut off, 4 emulated VMs running).

The clones' pods (network namespaces made by the real CNI plugins before the snapshot) still exist and ping
each other across nodes; a route removed in one trainee's lab fails only that trainee's cell; the trainer's
reset of one trainee leaves the other's lab as it was. Each trainee's bundle reaches their own lab only, and
from inside a lab neither another lab nor the host's services answer; the class web page works in a real
browser. A third trainee joining late is cloned alone, on a second libvirt host reached by qemu+ssh; that host
going down is reported while the local labs keep working. `class destroy` leaves nothing on either host, even
for a lab whose state was lost.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from labkit.classroom import Classroom
from labkit.classroom.classroom import labs_of_class
from labkit.classroom.tokens import issue_trainer_token
from labkit.hostsetup import pool
from labkit.hostsetup.hostmode import local_host
from labkit.hostsetup.second_host.layout import SecondHostPaths
from labkit.hostsetup.second_host.record import read_state
from labkit.lab import Lab
from labkit.machines.isolation import lift_isolation
from labkit.paths import LabPaths
from labkit.web import create_app

from .artifact_server import ServedArtifacts
from .browser import chromium, missing_browser, serve_in_thread, wait_until
from .lab_helpers import dump_lab_logs, labkit_cli
from .second_hosts import H2

pytestmark = pytest.mark.vm

CLASS = "ci-class"
TRAINEES = ("trainee1", "trainee2")
LATE = "trainee3"
POD_IPS = {"node1": "10.244.1.10", "node2": "10.244.2.10"}
OTHER = {"node1": "node2", "node2": "node1"}
MARKER = "/home/vagrant/trainee2-was-here"
GATEWAY_PORT = 2299
WEB_PORT = 8099
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output"
"""Kept after the run (git ignores it): the grid as the trainer saw it."""


def _lab(trainee: str) -> Lab:
    return Lab.load(f"{CLASS}-{trainee}")


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
                dump_lab_logs(lab, 60)
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


@pytest.fixture(scope="module")
def access(klass: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`labkit class access`, and trainee 1's bundle unpacked as on their laptop."""
    laptop = tmp_path_factory.mktemp("laptop")
    bundle = laptop / f"labkit-{CLASS}"
    report = json.loads(
        labkit_cli(
            "class", "access", CLASS, "--listen", f"127.0.0.1:{GATEWAY_PORT}", "--bundle-path", str(bundle),
            "--web-url", f"http://127.0.0.1:{WEB_PORT}", "--json",
        ).stdout
    )  # fmt: skip
    mine = next(b for b in report["bundles"] if b["trainee"] == "trainee1")
    with tarfile.open(mine["tarball"]) as tar:
        tar.extractall(laptop, filter="data")
    print(f"trainee 1 types: {mine['command']}", file=sys.stderr)
    return {"report": report, "bundle": bundle}


def _ssh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_trainees_bundle_reaches_their_own_nodes_and_nothing_else(access: dict[str, Any]) -> None:
    config = str(access["bundle"] / "ssh_config")
    for node in ("node1", "node2"):
        mine = _ssh("-F", config, node, "hostname")
        assert mine.returncode == 0 and mine.stdout.strip() == node, mine.stderr
    other = _lab("trainee2").state
    assert other is not None
    theirs = other.nodes["node1"].management_ip
    assert theirs is not None
    # through the gateway: the key may open a tunnel to its own lab's nodes only
    tunnel = _ssh("-F", config, "-o", f"HostName={theirs}", "node1", "hostname")
    assert tunnel.returncode != 0 and "administratively prohibited" in tunnel.stderr, tunnel.stderr
    # straight to trainee 2's node: their VMs never let trainee 1's key in
    straight = _ssh(
        "-i", str(access["bundle"] / "id_ed25519"), "-o", "IdentitiesOnly=yes",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        f"vagrant@{theirs}", "hostname",
    )  # fmt: skip
    assert straight.returncode != 0 and "Permission denied (publickey)" in straight.stderr, straight.stderr
    # the host's shell: the gateway runs no command for a trainee key
    shell = _ssh("-F", config, "labkit-gateway", "id")
    assert shell.returncode != 0 and "uid=" not in shell.stdout, shell.stdout + shell.stderr


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


def test_the_trainers_reset_of_one_trainee_leaves_the_other_lab_untouched(
    klass: dict[str, Any], access: dict[str, Any]
) -> None:
    assert _lab("trainee2").run("node1", f"touch {MARKER} && sync").ok
    labkit_cli("class", "reset", CLASS, "trainee1", "routes-ok", timeout=900)
    # the snapshot's disk predates the trainee's key: labkit wrote it again after the revert
    after = _ssh("-F", str(access["bundle"] / "ssh_config"), "node1", "hostname")
    assert after.returncode == 0 and after.stdout.strip() == "node1", after.stderr
    passed = json.loads(labkit_cli("check", "routes", "--name", f"{CLASS}-trainee1", "--json").stdout)
    assert passed["passed"] is True
    assert _lab("trainee2").run("node1", f"test -f {MARKER}").ok
    grid = json.loads(labkit_cli("class", "status", CLASS, "--json").stdout)
    cells = {row["trainee"]: row["cells"]["routes"]["status"] for row in grid["trainees"]}
    assert cells == {"trainee1": "verified", "trainee2": "verified"}


def _cell(browser: Any, trainee: str, stage: str) -> str | None:
    return browser.find_element(By.ID, f"cell-{trainee}-{stage}").get_attribute("data-status")


@pytest.mark.skipif(missing_browser() is not None, reason=missing_browser() or "")
def test_the_class_web_page_in_a_real_browser(access: dict[str, Any]) -> None:
    """The trainer's grid and trainee 1's page (their link from their bundle) in one headless Chromium; the
    trainee's check and reset act on their real lab and show on the grid by themselves."""
    page = (access["bundle"] / "page-url.txt").read_text().strip()
    assert page.startswith(f"http://127.0.0.1:{WEB_PORT}/trainee/trainee1?token=")
    shot = SCREENSHOTS / "class-grid.png"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with serve_in_thread(create_app(CLASS), port=WEB_PORT) as base, chromium() as browser:
        browser.set_page_load_timeout(600)  # a pressed button's page comes back when the lab's action is done
        browser.get(f"{base}/?token={issue_trainer_token(CLASS)}")
        assert _cell(browser, "trainee1", "routes") == "verified"
        grid = browser.current_window_handle
        browser.switch_to.new_window("tab")
        browser.get(page)
        assert browser.find_element(By.ID, "stage").text == "routes"
        assert _lab("trainee1").run("node2", "sudo ip route del 10.244.1.0/24").ok
        browser.find_element(By.ID, "check").click()
        wait_until(browser, lambda b: "failing" in b.find_element(By.ID, "message").text, 300)
        browser.switch_to.window(grid)  # no reload: the grid polls
        wait_until(browser, lambda b: _cell(b, "trainee1", "routes") == "failing", 30)
        assert _cell(browser, "trainee2", "routes") == "verified"
        browser.save_screenshot(str(shot))
        print(f"\nscreenshot of the grid: {shot}", file=sys.stderr)
        browser.switch_to.window(browser.window_handles[1])
        browser.find_element(By.ID, "reset").click()
        wait_until(browser, lambda b: "back at routes-ok" in b.find_element(By.ID, "message").text, 300)
        routes = json.loads(labkit_cli("check", "routes", "--name", f"{CLASS}-trainee1", "--json").stdout)
        assert routes["passed"] is True  # the lab is back at its verified stage
        browser.find_element(By.ID, "check").click()
        wait_until(browser, lambda b: "verified" in b.find_element(By.ID, "message").text, 300)
        browser.switch_to.window(grid)
        wait_until(browser, lambda b: _cell(b, "trainee1", "routes") == "verified", 30)


def _tcp_opens(lab: Lab, node: str, address: str, port: int) -> bool:
    """Whether ``node`` of ``lab`` can open a TCP connection to ``address:port`` (3 s)."""
    probe = lab.run(node, f"timeout 3 bash -c 'exec 3<>/dev/tcp/{address}/{port}' && echo OPEN")
    return "OPEN" in probe.stdout


def _dns_answers(lab: Lab, node: str, server: str) -> bool:
    """A real DNS query (A of `labkit.test`) sent over UDP to ``server``: does any answer come back?"""
    query = r"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x06labkit\x04test\x00\x00\x01\x00\x01"
    script = (
        f"exec 3<>/dev/udp/{server}/53; printf '{query}' >&3; "
        "timeout 3 dd bs=512 count=1 <&3 2>/dev/null | wc -c"
    )
    answered = lab.run(node, f"bash -c {shlex.quote(script)}")
    return answered.stdout.strip() not in ("", "0")


@pytest.fixture
def host_service() -> Iterator[int]:
    """A TCP service of the host (in the namespace where the labs' bridges are) on every address."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", 0))
        server.listen(8)
        yield server.getsockname()[1]


def test_a_trainee_lab_reaches_neither_another_lab_nor_the_hosts_services(
    klass: dict[str, Any], host_service: int
) -> None:
    one, two = _lab("trainee1"), _lab("trainee2")
    assert one.state is not None and two.state is not None
    gateway = str(next(ipaddress.IPv4Network(one.state.management_cidr).hosts()))
    grid = json.loads(labkit_cli("class", "status", CLASS, "--json").stdout)
    assert {row["trainee"]: row["isolated"] for row in grid["trainees"]} == dict.fromkeys(TRAINEES, True)
    # trainee 2's management addresses: no SSH, no ping
    for node in two.state.nodes.values():
        assert node.management_ip is not None
        assert not _tcp_opens(one, "node1", node.management_ip, 22)
        assert not one.run("node1", f"ping -c 1 -W 2 {node.management_ip}").ok
    # the host's own service on trainee 1's gateway address; the same probe opens it once the rules are lifted
    assert not _tcp_opens(one, "node1", gateway, host_service)
    assert _dns_answers(one, "node1", gateway)  # the network's own DNS still answers
    leases = _lease_expiry(one)
    iface = one.run("node1", f"ip -o -4 route get {gateway}").stdout.split()[2]
    assert one.run("node1", f"sudo networkctl renew {iface}").ok
    deadline = time.monotonic() + 30
    while _lease_expiry(one) == leases and time.monotonic() < deadline:
        time.sleep(1)
    assert _lease_expiry(one) != leases, "DHCP renewal did not reach the network's dnsmasq"
    lift_isolation(local_host(), one.name)
    try:
        assert _tcp_opens(one, "node1", gateway, host_service)  # the probe can see an open port
    finally:
        Classroom(CLASS).isolate(["trainee1"])
    assert not _tcp_opens(one, "node1", gateway, host_service)
    # trainee 2's node2 has trainee 1's node2's lab address: with that one unplugged, nothing answers it
    lab_ip = one.scenario.node("node2").ip
    iface2 = one.state.nodes["node2"].lab_iface
    assert one.run("node1", f"ping -c 1 -W 2 {lab_ip}").ok
    assert one.run("node2", f"sudo ip link set {iface2} down").ok
    try:
        assert not one.run("node1", f"ping -c 2 -W 2 {lab_ip}").ok
    finally:
        assert one.run("node2", f"sudo ip link set {iface2} up").ok


def _lease_expiry(lab: Lab) -> dict[str, int]:
    assert lab.state is not None
    net = local_host().connect().networkLookupByName(lab.state.management_network)
    return {lease["mac"]: lease["expirytime"] for lease in net.DHCPLeases()}


def test_class_up_again_clones_nobody_and_a_clone_refuses_vagrant_up(klass: dict[str, Any]) -> None:
    again = json.loads(
        labkit_cli(
            "class", "up", CLASS, "pod-routes", "--until", "routes", "--trainees", "2", "--json"
        ).stdout
    )
    assert again["cloned"] == {} and sorted(again["already"]) == list(TRAINEES) and again["golden_reused"]
    refused = labkit_cli("up", "pod-routes", "--name", f"{CLASS}-trainee2", check=False)
    assert refused.returncode == 2 and "is a clone of" in refused.stderr


# ---- a late trainee, placed on a second host -------------------------------------------------------------
# A second libvirt host on this machine (`labkit host up --name`: its own network and mount namespaces,
# libvirtd and sshd), reached by qemu+ssh. Running `class up` again with one more trainee and `--hosts H2`
# clones only the newcomer, there: the box and the golden's disk are copied over SSH (checked by sha256) and the
# lab runs from the golden's memory. One golden serves both hosts.


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
def late_trainee(klass: dict[str, Any], second_host: str) -> dict[str, Any]:
    """`labkit class up CLASS pod-routes --until routes --trainees 3 --hosts ci-h2`: trainee3 joins there."""
    started = time.monotonic()
    result = labkit_cli(
        "class", "up", CLASS, "pod-routes", "--until", "routes", "--trainees", "3", "--hosts", H2, "--json",
        check=False, timeout=1800,
    )  # fmt: skip
    print(f"\nclass up (late): {time.monotonic() - started:.1f} s\n{result.stderr[-3000:]}", file=sys.stderr)
    if result.returncode != 0:
        dump_lab_logs(f"{CLASS}-{LATE}", 60)
        pytest.fail(f"class up failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return json.loads(result.stdout)


def test_a_late_trainee_is_cloned_alone_on_the_second_host_and_passes(late_trainee: dict[str, Any]) -> None:
    assert sorted(late_trainee["already"]) == list(TRAINEES) and late_trainee["golden_reused"]
    cloned = late_trainee["cloned"]
    assert {t: c["host"] for t, c in cloned.items()} == {LATE: H2}
    print(f"{LATE} on {H2}: ready in {cloned[LATE]['seconds']:.1f} s, copies {cloned[LATE]['copy_seconds']}")
    listed = {h["name"]: h for h in json.loads(labkit_cli("hosts", "list", "--json").stdout)}
    assert f"{CLASS}-{LATE}" in listed[H2]["labs"], listed[H2]
    assert f"{CLASS}-trainee1" in listed["local"]["labs"], listed["local"]
    checked = json.loads(labkit_cli("class", "check", CLASS, "routes", "--json").stdout)
    assert {t: c["status"] for t, c in checked.items()} == dict.fromkeys([*TRAINEES, LATE], "verified")
    grid = json.loads(labkit_cli("class", "status", CLASS, "--json").stdout)
    assert {row["trainee"]: row["isolated"] for row in grid["trainees"]}[LATE] is True


def test_ssh_and_reset_work_on_the_remote_lab(late_trainee: dict[str, Any]) -> None:
    lab = f"{CLASS}-{LATE}"
    hostname = labkit_cli("ssh", "node2", "--name", lab, "--", "hostname")
    assert hostname.stdout.strip() == "node2"
    labkit_cli("ssh", "node1", "--name", lab, "--", "sudo", "ip", "route", "del", "10.244.2.0/24")
    failing = labkit_cli("check", "routes", "--name", lab, "--json", check=False)
    assert failing.returncode == 1
    labkit_cli("reset", "routes-ok", "--name", lab, timeout=900)
    passed = json.loads(labkit_cli("check", "routes", "--name", lab, "--json").stdout)
    assert passed["passed"] is True


def test_the_late_trainees_bundle_reaches_their_lab_on_the_second_host(
    late_trainee: dict[str, Any], access: dict[str, Any], tmp_path: Path
) -> None:
    """`class access` again: the newcomer's bundle goes through the class gateway, then a relay through the
    second host's sshd; trainee 1's key does not open that relay."""

    def access_again(bundle: Path) -> dict[str, Any]:
        return json.loads(
            labkit_cli(
                "class", "access", CLASS, "--listen", f"127.0.0.1:{GATEWAY_PORT}", "--bundle-path", str(bundle),
                "--web-url", f"http://127.0.0.1:{WEB_PORT}", "--json",
            ).stdout
        )  # fmt: skip

    bundle = tmp_path / f"labkit-{CLASS}"  # the newcomer's laptop
    report = access_again(bundle)
    assert report["relays"] == {H2: "started"} and report["gateway"] == "running"
    late = next(b for b in report["bundles"] if b["trainee"] == LATE)
    with tarfile.open(late["tarball"]) as tar:
        tar.extractall(tmp_path, filter="data")
    config = bundle / "ssh_config"
    for node in ("node1", "node2"):
        mine = _ssh("-F", str(config), node, "hostname")
        assert mine.returncode == 0 and mine.stdout.strip() == node, mine.stderr
    relay = re.search(r"Host node1\n  HostName 127\.0\.0\.1\n  Port (\d+)", config.read_text())
    assert relay is not None, config.read_text()
    # trainee 1's bundle (its key unchanged) asking the gateway for the newcomer's relay port
    theirs = _ssh(
        "-F", str(access["bundle"] / "ssh_config"), "-o", "HostName=127.0.0.1", "-o", f"Port={relay[1]}",
        "node1", "hostname",
    )  # fmt: skip
    assert theirs.returncode != 0 and "administratively prohibited" in theirs.stderr, theirs.stderr
    assert access_again(bundle)["relays"] == {H2: "running"}


def test_a_host_that_is_down_is_reported_and_the_local_labs_keep_working(
    late_trainee: dict[str, Any],
) -> None:
    os.kill(_libvirtd_pid(), signal.SIGTERM)  # libvirtd stopped; its VMs keep running
    try:
        status = labkit_cli("class", "status", CLASS, "--json", timeout=120)
        rows = {r["trainee"]: r for r in json.loads(status.stdout)["trainees"]}
        assert rows[LATE]["host_unreachable"], rows[LATE]
        assert not any(rows[t]["host_unreachable"] for t in TRAINEES)
        hostname = labkit_cli("ssh", "node1", "--name", f"{CLASS}-trainee1", "--", "hostname")
        assert hostname.stdout.strip() == "node1"
    finally:
        labkit_cli("host", "up", "--name", H2, timeout=300)  # starts the stopped libvirtd again


def test_class_destroy_leaves_nothing(klass: dict[str, Any]) -> None:
    remote = H2 in {h.name for h in pool.pool_hosts()}  # the late trainee's tests ran
    if remote:  # its state lost: the lab is found on the second host by its label alone
        shutil.rmtree(LabPaths.for_lab(f"{CLASS}-{LATE}").root)
    labkit_cli("class", "destroy", CLASS, timeout=900)
    if remote:
        assert _named_for_class(H2) == {"domains": [], "networks": []}
    assert _nothing_left() == {"domains": [], "networks": [], "volumes": [], "labelled": []}
    assert not LabPaths.for_lab(f"{CLASS}-trainee1").root.exists()
    gateways = [p for p in Path("/proc").glob("[0-9]*") if f"{CLASS}.access" in _cmdline(p)]
    assert gateways == []  # the class gateway (sshd) stopped with the class


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
