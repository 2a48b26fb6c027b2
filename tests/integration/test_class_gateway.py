"""The class gateway over real OpenSSH, without a VM.

The test moves into a network namespace of its own (``labkit-t-gw-<pid>``, deleted at the end), where two sshd
stand in for two trainees' nodes (127.0.0.2 and 127.0.0.3, port 2201, root logins with the keys granted to
them) and labkit's class gateway runs for a class of two trainees. Each trainee's bundle is unpacked from its
tarball as a trainee would, and used with the system's ``ssh``. Every process the test starts is stopped by its
PID; the gateway by labkit's own ``remove_access`` (which checks its command line first).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labkit.classroom.access import AccessOptions, AccessReport, open_access, remove_access
from labkit.classroom.access_paths import AccessPaths
from labkit.classroom.bundle_text import ACCOUNT, TraineeLab
from labkit.classroom.gateway import Listen, running_gateway
from labkit.classroom.record import ClassRecord, write_record
from labkit.cli import app
from labkit.errors import UsageError
from labkit.lab import Lab
from labkit.machines.libvirt_host import enter_netns
from labkit.paths import LabPaths
from labkit.state import LabState, NodeState, write_state

from .test_steps_sshd import SSHD, stop, wait_port

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespace, sshd, the trainee account)"),
    pytest.mark.skipif(not SSHD.is_file(), reason="/usr/sbin/sshd missing (apt-get install openssh-server)"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="ip missing (apt-get install iproute2)"),
]

CLASS = "gw"
NODE_PORT = 2201
GATEWAY_PORT = 2222


@contextlib.contextmanager
def private_netns() -> Iterator[str]:
    """This process inside a new network namespace with only loopback; back outside, and it deleted, after."""
    name = f"labkit-t-gw-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    outer = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        enter_netns(name, Path("/run/netns") / name)
        yield name
    finally:
        enter_netns("the test's own", Path(f"/proc/self/fd/{outer}"))
        os.close(outer)
        subprocess.run(["ip", "netns", "delete", name], check=False)


class FakeNode:
    """An sshd standing in for a trainee's node: root logins with the keys granted to it, on ADDRESS:2201."""

    def __init__(self, d: Path, address: str) -> None:
        d.mkdir()
        self.d = d
        self.address = address
        self.proc: subprocess.Popen[bytes] | None = None
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
        (d / "authorized_keys").write_text("")
        (d / "sshd_config").write_text(
            f"Port {NODE_PORT}\nListenAddress {address}\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {d / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        )

    def host_key_line(self, node: str) -> str:
        """The line ``labkit up`` records for this node in its lab's known_hosts (keyed by node name)."""
        kind, blob = (self.d / "host_key.pub").read_text().split()[:2]
        return f"{node} {kind} {blob}"

    def grant_key(self, label: str, public_key: str) -> None:
        """What ``Lab.grant_key`` does on each node of a real lab."""
        with (self.d / "authorized_keys").open("a") as out:
            out.write(f"{public_key}\n")

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        log = (self.d / "sshd.log").open("wb")
        self.proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(self.d / "sshd_config")], stderr=log)
        wait_port_on(self.address, NODE_PORT, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


def wait_port_on(address: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    if address == "127.0.0.1":
        wait_port(port, proc, "sshd")
        return
    for _ in range(300):
        assert proc.poll() is None, f"sshd on {address} exited with {proc.returncode}"
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
            return
        subprocess.run(["sleep", "0.1"], check=True)
    pytest.fail(f"sshd did not listen on {address}:{port}")


@dataclass
class Classroom:
    """Two trainees whose "labs" are one fake node each, and the gateway labkit runs for them."""

    root: Path
    nodes: dict[str, FakeNode]
    labs: list[TraineeLab]
    report: AccessReport

    def unpack(self, trainee: str) -> Path:
        """The trainee's tarball unpacked on their "laptop", where the bundle's config expects it."""
        laptop = self.root / "laptop"
        shutil.rmtree(laptop, ignore_errors=True)
        laptop.mkdir()
        bundle = next(b for b in self.report.bundles if b.trainee == trainee)
        with tarfile.open(bundle.tarball) as tar:
            tar.extractall(laptop, filter="data")
        return laptop / "labkit-gw"


def options(port: int = GATEWAY_PORT, root: Path | None = None) -> AccessOptions:
    bundle_dir = str(root / "laptop" / "labkit-gw") if root is not None else None
    return AccessOptions(Listen.parse(f"127.0.0.1:{port}"), bundle_dir=bundle_dir)


@contextlib.contextmanager
def account_removed_after() -> Iterator[None]:
    """The trainee account labkit makes is removed after the test, unless it was there before."""
    was_there = subprocess.run(["getent", "passwd", ACCOUNT], capture_output=True).returncode == 0
    try:
        yield
    finally:
        if not was_there:
            subprocess.run(["userdel", ACCOUNT], check=False)


@pytest.fixture
def classroom(tmp_path: Path) -> Iterator[Classroom]:
    nodes = {
        "trainee1": FakeNode(tmp_path / "node-t1", "127.0.0.2"),
        "trainee2": FakeNode(tmp_path / "node-t2", "127.0.0.3"),
    }
    with account_removed_after(), private_netns():
        try:
            for node in nodes.values():
                node.start()
            labs = [
                TraineeLab(
                    trainee,
                    f"{CLASS}-{trainee}",
                    {"node1": node.address},
                    [node.host_key_line("node1")],
                    node_port=NODE_PORT,
                    node_user="root",
                )
                for trainee, node in nodes.items()
            ]
            report = open_access(CLASS, labs, options(root=tmp_path), nodes)
            yield Classroom(tmp_path, nodes, labs, report)
        finally:
            remove_access(CLASS)
            for node in nodes.values():
                node.stop()


def ssh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_each_trainees_bundle_reaches_their_own_node(classroom: Classroom) -> None:
    assert classroom.report.gateway == "started"
    for trainee, node in classroom.nodes.items():
        bundle = classroom.unpack(trainee)
        reached = ssh("-F", str(bundle / "ssh_config"), "node1", "echo on $SSH_CONNECTION")
        assert reached.returncode == 0, reached.stderr
        assert f"{node.address} {NODE_PORT}" in reached.stdout  # the server end is this trainee's node
    assert classroom.report.bundles[0].command == f"ssh -F {classroom.root}/laptop/labkit-gw/ssh_config node1"


def test_trainee1s_key_is_refused_by_trainee2s_lab(classroom: Classroom) -> None:
    config = str(classroom.unpack("trainee1") / "ssh_config")
    other = classroom.nodes["trainee2"].address
    through = ssh("-F", config, "-o", f"HostName={other}", "node1", "true")
    assert through.returncode != 0
    assert "open failed: administratively prohibited" in through.stderr, through.stderr
    forward = ssh("-F", config, "-W", f"{other}:{NODE_PORT}", "labkit-gateway")
    assert forward.returncode != 0 and "administratively prohibited" in forward.stderr
    key = str(classroom.unpack("trainee1") / "id_ed25519")
    direct = ssh(
        *("-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no"),
        *("-o", "UserKnownHostsFile=/dev/null", "-p", str(NODE_PORT), f"root@{other}", "true"),
    )
    assert direct.returncode != 0 and "Permission denied (publickey)" in direct.stderr, direct.stderr


def test_the_gateway_gives_trainee_keys_no_shell_pty_root_or_remote_forward(classroom: Classroom) -> None:
    config = str(classroom.unpack("trainee1") / "ssh_config")
    shell = ssh("-F", config, "labkit-gateway", "id")
    assert "uid=" not in shell.stdout + shell.stderr
    assert shell.returncode != 0 and "not available" in shell.stdout, shell
    pty = ssh("-F", config, "-tt", "labkit-gateway")
    assert "PTY allocation request failed" in pty.stderr and "uid=" not in pty.stdout
    as_root = ssh("-F", config, "-l", "root", "labkit-gateway", "id")
    assert as_root.returncode == 255 and "Permission denied" in as_root.stderr
    remote = ssh(
        "-F", config, "-N", "-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:22", "labkit-gateway"
    )
    assert remote.returncode == 255 and "forwarding failed" in remote.stderr, remote.stderr


def test_a_key_the_class_never_gave_out_is_refused(classroom: Classroom) -> None:
    stranger = classroom.root / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    known = str(classroom.unpack("trainee1") / "known_hosts")
    refused = ssh(
        *("-F", "/dev/null", "-i", str(stranger), "-o", "IdentitiesOnly=yes"),
        *("-o", f"UserKnownHostsFile={known}", "-p", str(GATEWAY_PORT), f"{ACCOUNT}@127.0.0.1"),
        *("-W", f"127.0.0.2:{NODE_PORT}"),
    )
    assert refused.returncode == 255 and "Permission denied (publickey)" in refused.stderr, refused.stderr


def test_access_again_keeps_the_gateway_and_moves_it_only_for_a_new_port(classroom: Classroom) -> None:
    paths = AccessPaths.for_class(CLASS)
    first = running_gateway(paths)
    assert first is not None
    again = open_access(CLASS, classroom.labs, options(root=classroom.root), classroom.nodes)
    assert again.gateway == "running" and running_gateway(paths) == first
    assert not any(b.new_key for b in again.bundles)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 2299))
        busy.listen()
        with pytest.raises(UsageError, match=r"port 2299 on 127\.0\.0\.1 is in use"):
            open_access(CLASS, classroom.labs, options(2299, classroom.root), classroom.nodes)
    assert running_gateway(paths) == first, "a busy port stopped the running gateway"
    moved = open_access(CLASS, classroom.labs, options(2300, classroom.root), classroom.nodes)
    assert moved.gateway == "restarted" and not first.running
    bundle = classroom.unpack("trainee1")
    assert ssh("-F", str(bundle / "ssh_config"), "node1", "true").returncode == 0


def test_rotating_keys_ends_the_tunnels_opened_with_the_old_ones(classroom: Classroom) -> None:
    """A session through the gateway opened with trainee 1's key is cut by `--rotate`; the gateway stays, and
    the new bundle logs in while the old key is refused."""
    old = classroom.unpack("trainee1")
    kept = old.parent.parent / "old-bundle"
    shutil.copytree(old, kept)
    config = kept / "ssh_config"
    config.write_text(config.read_text().replace(str(old), str(kept)))
    session = subprocess.Popen(
        ["ssh", "-o", "BatchMode=yes", "-F", str(config), "node1", "sleep 120"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        paths = AccessPaths.for_class(CLASS)
        gateway = running_gateway(paths)
        assert gateway is not None
        for _ in range(100):  # the session is up once the gateway forked a process for it
            if session.poll() is None and _sessions_of(gateway.pid):
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert session.poll() is None and _sessions_of(gateway.pid), "no session through the gateway"
        rotated = open_access(
            CLASS, classroom.labs, replace(options(root=classroom.root), rotate=True), classroom.nodes
        )
        assert rotated.sessions_ended >= 1 and rotated.gateway == "running"
        assert session.wait(timeout=30) != 0  # cut, not finished: it was to sleep for two minutes
        assert running_gateway(paths) == gateway
    finally:
        if session.poll() is None:
            session.kill()
        session.wait()
    assert ssh("-F", str(config), "node1", "true").returncode != 0  # the old key is out
    fresh = classroom.unpack("trainee1")
    assert ssh("-F", str(fresh / "ssh_config"), "node1", "true").returncode == 0


def _sessions_of(pid: int) -> list[int]:
    """The gateway's children serving a logged-in trainee (``sshd: labkit-trainee [priv]``), not the short-lived
    ones of a connection that is still being set up or of a port probe."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            data = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes()
            if int(data[data.rindex(")") + 2 :].split()[1]) == pid and ACCOUNT.encode() in cmdline:
                children.append(int(stat.parent.name))
    return children


def test_removing_access_stops_the_gateway_and_forgets_the_bundles(classroom: Classroom) -> None:
    paths = AccessPaths.for_class(CLASS)
    gateway = running_gateway(paths)
    assert gateway is not None
    remove_access(CLASS)
    assert not gateway.running and not paths.root.exists()
    leftovers = [
        p for p in Path("/proc").glob("[0-9]*/cmdline") if str(paths.sshd_config).encode() in _read(p)
    ]
    assert leftovers == []


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def lab_of(trainee: str, address: str) -> None:
    """A trainee's lab as `labkit class up` leaves it: its state, with the node's address, and host keys."""
    lab = f"{CLASS}-{trainee}"
    node = NodeState("node1", f"{lab}-node1", management_ip=address)
    state = LabState(lab, "three-node", "three-node", "kvm", "", "m", "10.0.0.0/24", "l", "", {"node1": node})
    write_state(LabPaths.for_lab(lab).state, state)
    LabPaths.for_lab(lab).known_hosts.write_text("node1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIfake\n")


def test_labkit_class_access_opens_access_for_the_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABKIT_RUN_DIR", str(tmp_path / "run"))  # never the developer's host mode
    granted: list[tuple[str, str, str]] = []
    monkeypatch.setattr(Lab, "grant_key", lambda lab, label, key: granted.append((lab.name, label, key)))
    trainees = {"trainee1": "127.0.0.2", "trainee2": "127.0.0.3"}
    write_record(ClassRecord(CLASS, "three-node", "three-node", "etcd", f"{CLASS}-golden", list(trainees)))
    for trainee, address in trainees.items():
        lab_of(trainee, address)
    command = ["class", "access", CLASS, "--listen", "127.0.0.1:2222", "--address", "192.0.2.10"]
    with account_removed_after(), private_netns():
        try:
            shown = CliRunner().invoke(app, command)
            as_json = CliRunner().invoke(app, [*command, "--json"])
        finally:
            remove_access(CLASS)
    assert shown.exit_code == 0, shown.output
    assert (
        "class gw: gateway started on 127.0.0.1:2222; bundles reach it at 192.0.2.10 port 2222"
        in shown.output
    )
    assert "the trainee types: ssh -F ~/labkit-gw/ssh_config node1" in shown.output
    report = json.loads(as_json.stdout)
    assert report["gateway"] == "running" and [b["new_key"] for b in report["bundles"]] == [False, False]
    assert [b["trainee"] for b in report["bundles"]] == ["trainee1", "trainee2"]
    assert [(lab, label) for lab, label, _ in granted] == [
        ("gw-trainee1", "trainee"),
        ("gw-trainee2", "trainee"),
    ] * 2
    for lab, _, key in granted:  # each lab gets its own trainee's key, the same on the second run
        assert key.startswith("ssh-ed25519 ") and key.endswith(f"labkit-{lab}")
    assert granted[:2] == granted[2:]
