"""A lab living on a second host of the pool, without a VM: its host found from its state; its node reached
through the host (fabric's gateway in the library, ProxyJump for `labkit ssh`), with both host keys checked; a
host that stops answering named in one line, quickly; the lab's nftables table written and removed over SSH;
files copied to the host once, checked by sha256, a corrupted copy replaced; a golden disk's backing file and
its overlay copied for a clone there; `hosts list` naming the lab; `destroy` removing it there.

The "node" is an sshd run in the second host's network namespace on the address of the lab's management network
there (a libvirt network labkit defines on that host): reachable from the host only, as a VM would be. It
takes the login `vagrant`, which a passwd file mounted in its own mount namespace maps to root.

One second host for the module, linked to a stand-in network namespace of the test's own (never host mode's
`labkit`). Library calls run in this process after it entered that namespace (and left again at the end);
`labkit` commands run there in a mount namespace with no view of the machine's libvirtd. The home is the
module's own, so the pool, the lab and the host's files are the test's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from labkit.errors import HostError
from labkit.hostsetup.pool import add_host, libvirt_host
from labkit.hostsetup.second_host.layout import SecondHostPaths
from labkit.lab import Lab
from labkit.machines.connections import HostKeyChanged, NodeHostKeys, NodeUnreachable, connect
from labkit.machines.domains import ensure_networks
from labkit.machines.host_files import ensure_file, remote_sha256
from labkit.machines.host_ssh import open_host
from labkit.machines.isolation import is_isolated, isolate, lift_isolation, table_name
from labkit.machines.libvirt_host import enter_netns
from labkit.machines.sshkeys import ensure_lab_key
from labkit.paths import LabPaths, scenarios_dir
from labkit.state import LabState, NodeState, write_state

from .second_hosts import TOOLS, labkit, missing_tool, print_logs

pytestmark = [pytest.mark.host2, pytest.mark.timeout(600)]

LAB = "rt-a"
MGMT = "172.29.77.0/24"
NODE_IP = "172.29.77.1"
"""The management network's address on the second host: nothing outside that host routes to it."""
COPY_MB = int(os.environ.get("LABKIT_TEST_COPY_MB", "500"))
IMAGES = "/var/lib/libvirt/images/labkit-test"


@dataclass(frozen=True)
class Remote:
    name: str
    side: str
    home: Path
    paths: SecondHostPaths
    sshd_pid: int


def _ssh_keygen(key: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return " ".join(key.with_name(key.name + ".pub").read_text().split()[:2])


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    """A second host in the pool of the module's own home, linked to a stand-in namespace."""
    if os.geteuid() != 0:
        pytest.skip("a second host needs root (namespaces, libvirtd, sshd)")
    missing = missing_tool((*TOOLS, "nft", "qemu-img", "dnsmasq"))
    if missing is not None:
        pytest.skip(f"{missing} is not installed")
    home = tmp_path_factory.mktemp("remote-home")
    side, name = f"lkr{os.getpid()}-side", f"r{os.getpid() % 100000}"
    paths = SecondHostPaths(home / "hosts" / name)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LABKIT_HOME", str(home))
        env.setenv("LABKIT_RUN_DIR", str(home / "run"))  # never the machine's host mode
        subprocess.run(["ip", "netns", "add", side], check=True)
        subprocess.run(["ip", "netns", "exec", side, "ip", "link", "set", "lo", "up"], check=True)
        try:
            started = time.monotonic()
            labkit("host", "up", "--name", name, "--peer-netns", side)
            print(f"labkit host up --name {name}: {time.monotonic() - started:.1f} s")
            status = json.loads(labkit("host", "status", "--name", name, "--json").stdout)
            add_host(name, status["uri"])
            sshd = next(d["pid"] for d in status["daemons"] if d["name"] == "sshd")
            yield Remote(name, side, home, paths, sshd)
        finally:
            print_logs(paths)
            labkit("host", "down", "--name", name, "--force", check=False)
            subprocess.run(["ip", "netns", "delete", side], check=False)


@pytest.fixture(autouse=True)
def _module_home(_isolated_labkit_home: None, remote: Remote, monkeypatch: pytest.MonkeyPatch) -> None:
    """The module's home, not the one conftest gives each test."""
    monkeypatch.setenv("LABKIT_HOME", str(remote.home))
    monkeypatch.setenv("LABKIT_RUN_DIR", str(remote.home / "run"))


@pytest.fixture(scope="module")
def on_side(remote: Remote) -> Iterator[None]:
    """This process in the stand-in namespace (labkit's side), back where it was at the end."""
    outer = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        enter_netns(remote.side, Path("/run/netns") / remote.side)
        yield
    finally:
        enter_netns("outer", Path(f"/proc/self/fd/{outer}"))
        os.close(outer)


def _start_node(remote: Remote, work: Path, lab_key: Path) -> subprocess.Popen[bytes]:
    """An sshd at NODE_IP in the second host's namespace taking `vagrant` by the lab's key only."""
    passwd = work / "passwd"
    passwd.write_text(Path("/etc/passwd").read_text() + "vagrant:x:0:0:labkit test node:/root:/bin/sh\n")
    (work / "authorized_keys").write_text(lab_key.with_name(lab_key.name + ".pub").read_text())
    config = work / "sshd_config"
    config.write_text(
        f"ListenAddress {NODE_IP}:22\nHostKey {work / 'host_key'}\nPidFile none\n"
        f"AuthorizedKeysFile {work / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nUseDNS no\n"
    )
    script = f'mount --bind {passwd} /etc/passwd && exec "$@"'
    argv = ["ip", "netns", "exec", f"labkit-{remote.name}", "unshare", "--mount", "--propagation", "private"]
    argv += ["sh", "-c", script, "sh", "/usr/sbin/sshd", "-D", "-e", "-f", str(config)]
    log = (work / "node-sshd.log").open("wb")
    node = subprocess.Popen(argv, stdout=log, stderr=log)
    deadline = time.monotonic() + 15
    while b"Server listening" not in (work / "node-sshd.log").read_bytes():
        assert node.poll() is None and time.monotonic() < deadline, (work / "node-sshd.log").read_text()
        time.sleep(0.1)
    return node


def _lab_state(host: str) -> LabState:
    return LabState(
        lab=LAB,
        scenario="three-node",
        scenario_path=str(scenarios_dir() / "three-node" / "scenario.yaml"),
        accel="kvm",
        accel_reason="kvm: test",
        management_network=f"labkit-{LAB}-mgmt",
        management_cidr=MGMT,
        lab_network=f"labkit-{LAB}-lab",
        created_at="t",
        nodes={"node1": NodeState("node1", f"labkit-{LAB}-node1", management_ip=NODE_IP)},
        host=host,
    )


@pytest.fixture(scope="module")
def node(remote: Remote, on_side: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The lab's state (on the second host), its two networks there, and its node's sshd; the node's key."""
    work = tmp_path_factory.mktemp("node")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LABKIT_HOME", str(remote.home))
        host = libvirt_host(remote.name)
        made = ensure_networks(host.connect(), LAB, MGMT)
        assert made == [f"labkit-{LAB}-mgmt", f"labkit-{LAB}-lab"]
        paths = LabPaths.for_lab(LAB)
        ensure_lab_key(paths)
        write_state(paths.state, _lab_state(remote.name))
        node_key = _ssh_keygen(work / "host_key")
        paths.known_hosts.write_text(f"node1 {node_key}\n")
        sshd = _start_node(remote, work, paths.ssh_key)
        try:
            yield work
        finally:
            print((work / "node-sshd.log").read_text(errors="replace")[-3000:])
            sshd.terminate()
            sshd.wait(timeout=15)
            host.close()


def test_the_node_of_a_lab_on_the_host_is_reached_through_it(remote: Remote, node: Path) -> None:
    lab = Lab.load(LAB)
    assert lab.host.name == remote.name and lab.host.remote
    started = time.monotonic()
    result = lab.run("node1", 'echo "$USER on $(hostname)"')
    first = time.monotonic() - started
    started = time.monotonic()
    again = lab.run("node1", "true")
    print(
        f"lab.run through the host: {first:.2f} s (host login included), then {time.monotonic() - started:.2f} s"
    )
    assert result.ok and result.stdout.startswith("vagrant on ") and again.ok

    direct = connect(NODE_IP, [lab.paths.ssh_key], node="node1", connect_timeout=3)
    with direct, pytest.raises(NodeUnreachable):  # from labkit's side the management network is nowhere
        direct.run("true")
    other = _ssh_keygen(node / "other_key")
    (node / "wrong_known_hosts").write_text(f"node1 {other}\n")
    wrong = NodeHostKeys(node / "wrong_known_hosts")
    through = connect(
        NODE_IP, [lab.paths.ssh_key], node="node1", known_hosts=wrong, gateway=lab.host.gateway()
    )
    with through, pytest.raises(HostKeyChanged):  # through the host, the node's key is still checked
        through.run("true")
    (node / "wrong_host_key").write_text(f"{lab.host.ssh_login().address} {other}\n")
    with pytest.raises(HostError, match="presented another SSH host key"):  # and so is the host's
        open_host(replace(lab.host.ssh_login(), known_hosts=node / "wrong_host_key"), remote.name)
    lab.host.close()


def test_labkit_ssh_jumps_through_the_host(remote: Remote, node: Path) -> None:
    out = labkit("ssh", "node1", "--name", LAB, "--", "echo", "jumped", side=remote.side).stdout
    assert out.strip() == "jumped"
    assert "ProxyJump labkit-host." + remote.name in LabPaths.for_lab(LAB).ssh_config.read_text()


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)  # the host's sshd takes connections (the kernel does) but never answers
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_host_that_does_not_answer_is_one_line_quickly_and_breaks_nothing_else(
    remote: Remote, node: Path
) -> None:
    login = libvirt_host(remote.name).ssh_login()
    with stopped(remote.sshd_pid):
        started = time.monotonic()
        status = labkit("status", "--name", LAB, side=remote.side, check=False)
        seconds = time.monotonic() - started
        print(
            f"labkit status of a lab on a silent host: {seconds:.1f} s, exit {status.returncode}: {status.stderr}"
        )
        assert status.returncode == 3 and seconds < 30
        assert len(status.stderr.strip().splitlines()) == 1
        assert f"host {remote.name} is unreachable" in status.stderr and "labkit hosts list" in status.stderr

        rows = {r["name"]: r for r in json.loads(labkit("hosts", "list", "--json", side=remote.side).stdout)}
        assert not rows[remote.name]["reachable"] and rows[remote.name]["labs"] == [LAB]

        started = time.monotonic()
        with pytest.raises(HostError, match=f"host {remote.name} is unreachable over SSH"):
            open_host(replace(login, connect_timeout=3), remote.name)
        assert time.monotonic() - started < 8
    assert labkit("status", "--name", LAB, side=remote.side).returncode == 0


def test_the_lab_is_kept_to_itself_by_rules_written_on_the_host(remote: Remote, node: Path) -> None:
    host = Lab.load(LAB).host
    bridges = isolate(host, LAB)
    listed = host.run(["nft", "list", "table", "inet", table_name(LAB)])
    assert listed.ok and all(f'"{b}"' in listed.stdout for b in bridges) and "drop" in listed.stdout
    assert is_isolated(host, LAB)
    here = subprocess.run(["nft", "list", "table", "inet", table_name(LAB)], capture_output=True, check=False)
    assert here.returncode != 0  # written there, not on labkit's side
    assert lift_isolation(host, LAB) and not is_isolated(host, LAB)
    assert not lift_isolation(host, LAB)
    host.close()


def _random_file(path: Path, megabytes: int) -> Path:
    with path.open("wb") as f:
        for _ in range(megabytes):
            f.write(os.urandom(1 << 20))
    return path


def test_a_file_reaches_the_host_once_checked_by_sha256(
    remote: Remote, on_side: None, tmp_path: Path
) -> None:
    host = libvirt_host(remote.name)
    box = _random_file(tmp_path / "box.img", COPY_MB)
    target = f"{IMAGES}/{box.name}"
    first = ensure_file(host, box, target)
    second = ensure_file(host, box, target)
    print(
        f"{COPY_MB} MB to {remote.name}: first call {first.seconds:.1f} s (copied), second {second.seconds:.2f} s"
    )
    assert first.copied and not second.copied and second.seconds < 3
    assert first.sha256 == second.sha256 and first.bytes == COPY_MB << 20
    private = remote.paths.private("lib") / "images" / "labkit-test" / box.name  # the host's own directory
    assert private.stat().st_size == box.stat().st_size and not Path(target).exists()

    host.run(["dd", f"of={target}", "bs=1", "seek=4096", "conv=notrunc", "status=none"], stdin="corrupted")
    started = time.monotonic()
    third = ensure_file(host, box, target)
    print(f"a corrupted copy found and replaced: {time.monotonic() - started:.1f} s")
    assert third.copied and remote_sha256(host, target, verify=True) == (first.sha256, first.bytes)
    assert host.run(["ls", IMAGES]).stdout.split() == [box.name]  # no part file left behind

    sparse = tmp_path / "sparse.img"
    with sparse.open("wb") as f:
        f.seek(16 << 20)
        f.write(os.urandom(8 << 20))
        f.truncate(64 << 20)  # a hole at the end too
    copied = ensure_file(host, sparse, f"{IMAGES}/{sparse.name}")
    print(f"64 MiB with 8 MiB of data: {copied.allocated} bytes allocated on the host")
    assert copied.copied and copied.allocated is not None and copied.allocated < 12 << 20
    assert host.run(["stat", "-c", "%s", f"{IMAGES}/{sparse.name}"]).stdout.strip() == str(64 << 20)
    host.run(["rm", "-rf", IMAGES])
    host.close()


CLONE_SCRIPT = """
import json, subprocess, sys
from labkit.hostsetup.pool import libvirt_host
from labkit.machines.host_files import copy_overlay, ensure_backing_chain
from labkit.machines.libvirt_host import LibvirtHost
images, name = sys.argv[1], sys.argv[2]
base, overlay = f"{images}/box.img", f"{images}/golden-node1.img"
subprocess.run(["mkdir", "-p", images], check=True)
subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", base, "64M"], check=True)
subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", overlay], check=True)
here, there = LibvirtHost(), libvirt_host(name)
first = ensure_backing_chain(here, there, overlay)
again = ensure_backing_chain(here, there, overlay)
disk = copy_overlay(here, there, overlay, f"{images}/clone-node1.img")
print(json.dumps([[r.__dict__ for r in first], [r.__dict__ for r in again], disk.__dict__]))
"""


def test_a_golden_disk_and_its_box_go_to_the_host_for_a_clone(remote: Remote, node: Path) -> None:
    """labkit's side in a mount namespace of its own whose pool directory is an empty tmpfs: the box and the
    golden disk are made there, at the path they have on the host too (the overlay names its backing file)."""
    private = 'mount -t tmpfs lk /var/lib/libvirt/images && mount -t tmpfs lk /run/libvirt && exec "$@"'
    argv = ["ip", "netns", "exec", remote.side, "unshare", "--mount", "--propagation", "private", "sh", "-c"]
    argv += [private, "sh", sys.executable, "-c", CLONE_SCRIPT, IMAGES, remote.name]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    first, again, disk = json.loads(done.stdout.splitlines()[-1])
    assert [r["path"] for r in first] == [f"{IMAGES}/box.img"] and first[0]["copied"]
    assert [r["copied"] for r in again] == [False]
    assert disk["copied"] and disk["path"] == f"{IMAGES}/clone-node1.img"
    host = Lab.load(LAB).host
    chain = host.run(
        ["qemu-img", "info", "-U", "--backing-chain", "--output=json", f"{IMAGES}/clone-node1.img"]
    )
    assert chain.ok, chain.stderr
    assert [image["filename"] for image in json.loads(chain.stdout)] == [disk["path"], f"{IMAGES}/box.img"]
    host.run(["rm", "-rf", IMAGES])
    host.close()


def test_hosts_list_names_the_lab_and_destroy_removes_it_there(remote: Remote, node: Path) -> None:
    rows = {r["name"]: r for r in json.loads(labkit("hosts", "list", "--json", side=remote.side).stdout)}
    assert rows[remote.name]["labs_in_states"] == [LAB] and rows[remote.name]["labs_in_libvirt"] == [LAB]
    assert f"{remote.name}: labs {LAB}" in labkit("hosts", "list", side=remote.side).stdout
    out = labkit("destroy", LAB, side=remote.side).stdout
    assert "2 networks" in out
    host = libvirt_host(remote.name)
    assert not [n for n in host.connect().listAllNetworks(0) if n.name().startswith(f"labkit-{LAB}-")]
    assert not LabPaths.for_lab(LAB).root.exists()
    host.close()
