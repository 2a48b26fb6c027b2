"""Nodes that hang, freeze, vanish or change their host key, over real SSH: a private sshd on 127.0.0.1.

No VM. Each test starts its own sshd (root, key-only), so freezing it (SIGSTOP of sshd and every process
under it: what a paused or frozen VM looks like from outside) or replacing its host key harms no other test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labkit.lab.checking import run_checks
from labkit.lab.solving import run_stage
from labkit.machines.connections import (
    WATCHDOG_GRACE,
    HostKeyChanged,
    NodeHostKeys,
    NodeUnreachable,
    connect,
)
from labkit.model.scenario import Scenario

from .test_steps_sshd import SSHD, free_port, stop, wait_port

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (sshd runs as root; steps use sudo)"),
    pytest.mark.skipif(not SSHD.is_file(), reason="/usr/sbin/sshd missing (apt-get install openssh-server)"),
]


def signal_process(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended since the tree was listed
        os.kill(pid, signum)


class Node:
    """One sshd standing in for a VM: its host key can be replaced and the whole process tree frozen."""

    def __init__(self, d: Path) -> None:
        self.d = d
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client")], check=True)
        (d / "authorized_keys").write_text((d / "client.pub").read_text())
        self.new_host_key()

    def new_host_key(self) -> None:
        (d := self.d / "host_key").unlink(missing_ok=True)
        d.with_suffix(".pub").unlink(missing_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d)], check=True)

    def start(self) -> None:
        d = self.d
        (d / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {d / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.proc = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.DEVNULL
        )
        wait_port(self.port, self.proc, "sshd")

    def stop(self) -> None:
        if self.proc is not None:
            self.thaw()
            sessions = self.tree()  # listed first: once the listener is gone they belong to init
            stop(self.proc)
            for pid in sessions:  # session processes of connections still open
                signal_process(pid, signal.SIGKILL)
            self.proc = None

    def tree(self) -> list[int]:
        """sshd's descendants (not sshd itself): the per-connection processes and the commands they run."""
        assert self.proc is not None
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], [self.proc.pid]
        while todo:
            for child in children.get(todo.pop(), []):
                found.append(child)
                todo.append(child)
        return found

    def freeze(self) -> None:
        assert self.proc is not None
        for pid in [self.proc.pid, *self.tree()]:
            signal_process(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        for pid in [self.proc.pid, *self.tree()]:
            signal_process(pid, signal.SIGCONT)

    def connect(self, **kwargs: Any) -> Any:
        return connect("127.0.0.1", [self.d / "client"], user="root", port=self.port, **kwargs)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path)
    n.start()
    try:
        yield n
    finally:
        n.stop()


def scenario(stage: dict[str, Any]) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "mini",
            "description": "two nodes",
            "network": {"lab": "192.168.56.0/24", "pods": "10.0.0.0/16", "services": "10.32.0.0/24"},
            "versions": {},
            "nodes": [
                {"name": "node1", "roles": ["worker"], "ip": "192.168.56.11"},
                {"name": "node2", "roles": ["worker"], "ip": "192.168.56.12"},
            ],
            "stages": [{"name": "s", "title": "s", **stage}],
        }
    )


def remote_processes(marker: str) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in ps.splitlines() if marker in line and "ps -eo" not in line]


# ---- item 11: timeouts, frozen and dead nodes ---------------------------------------------------------------


def test_a_step_that_runs_past_its_timeout_is_ended_and_named(node: Node) -> None:
    marker = f"labkit-hang-{uuid.uuid4().hex[:8]}"
    sc = scenario(
        {
            "steps": [
                {"name": "fast", "kind": "command", "args": {"run": "true"}},
                {
                    "name": "kubelet-ready",
                    "kind": "command",
                    "on": ["node2"],
                    "timeout": 2,
                    "args": {"run": f"sleep 60; echo {marker}"},
                },
            ]
        }
    )
    conns = {"node1": node.connect(node="node1"), "node2": node.connect(node="node2")}
    started = time.monotonic()
    report = run_stage(sc, "s", conns, context={})
    took = time.monotonic() - started
    assert took < 20, f"the step was not ended at its 2 s timeout ({took:.0f} s)"
    assert report.failed and report.failure is not None
    assert report.failure.node == "node2" and report.failure.step == "kubelet-ready"
    text = str(report.failure)
    assert "node2: step kubelet-ready: failed: timed out after 2 s (the command did not finish)" in text, text
    assert "timeout:" in text  # the fix names the scenario field
    deadline = time.monotonic() + 15  # the node ends the command too (coreutils timeout, a few s later)
    while remote_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert remote_processes(marker) == [], "the command still runs on the node"
    assert conns["node1"].run("echo still usable").stdout.strip() == "still usable"
    for conn in conns.values():
        conn.close()


def test_a_node_frozen_mid_step_is_reported_within_the_timeout(node: Node) -> None:
    sc = scenario(
        {"steps": [{"name": "slow", "kind": "command", "timeout": 4, "args": {"run": "sleep 2; echo done"}}]}
    )
    conn = node.connect(node="node1")
    assert conn.run("true").ok  # connected before the freeze, as during a solve
    node.freeze()
    started = time.monotonic()
    report = run_stage(sc.model_copy(update={"nodes": sc.nodes[:1]}), "s", {"node1": conn}, context={})
    took = time.monotonic() - started
    assert took < 4 + WATCHDOG_GRACE + 3, f"a frozen node held the step for {took:.0f} s"
    assert report.failure is not None
    assert "node1: step slow: failed: timed out after 4 s (no answer from the node)" in str(report.failure)
    conn.close()


def test_checks_on_a_frozen_node_say_unreachable_without_the_hint(node: Node) -> None:
    check = {
        "kind": "command",
        "on": ["node2"],
        "timeout": 3,
        "hint": "node2's CNI config must hand out this node's own pod subnet",
        "args": {"run": "true"},
    }
    sc = scenario({"checks": [{"name": "cni", **check}, {"name": "subnet", **check}]})
    healthy = node.connect(node="node2")
    assert run_checks(sc, sc.stages[0], {"node2": healthy}, {})[0].status == "pass"
    node.freeze()
    started = time.monotonic()
    results = run_checks(sc, sc.stages[0], {"node2": healthy}, {})
    took = time.monotonic() - started
    assert took < 3 + WATCHDOG_GRACE + 3, f"checks on a frozen node took {took:.0f} s"
    assert [r.status for r in results] == ["unreachable", "unreachable"]
    assert all(r.hint is None for r in results), "a node that does not answer gets no teaching hint"
    assert "no answer from the node" in results[0].seen
    assert results[1].seen == "not run: node2 did not answer"  # later checks do not wait again
    healthy.close()


def test_a_new_connection_to_a_frozen_node_is_unreachable_within_the_connect_timeout(node: Node) -> None:
    node.freeze()  # the kernel still accepts the TCP connection; no SSH banner ever comes
    conn = node.connect(node="node1", connect_timeout=3)
    started = time.monotonic()
    with pytest.raises(NodeUnreachable) as caught:
        conn.run("true")
    assert time.monotonic() - started < 3 + 5
    assert "node1: unreachable while running a command" in str(caught.value)
    assert "labkit status" in str(caught.value)
    conn.close()


def test_a_refused_connection_is_an_unreachable_check(node: Node) -> None:
    node.stop()  # nothing listens: "connection refused", as for a VM whose sshd is down
    sc = scenario({"checks": [{"name": "cni", "kind": "command", "hint": "a hint", "args": {"run": "true"}}]})
    results = run_checks(sc, sc.stages[0], {n: node.connect(node=n) for n in ("node1", "node2")}, {})
    assert [r.status for r in results] == ["unreachable", "unreachable"]
    assert all(r.hint is None and "unreachable" in r.seen for r in results)


def test_a_hung_check_on_a_live_node_is_a_failed_check_with_its_hint(node: Node) -> None:
    sc = scenario(
        {
            "checks": [
                {
                    "name": "etcd-answers",
                    "kind": "command",
                    "on": ["node1"],
                    "timeout": 2,
                    "hint": "is etcd running?",
                    "args": {"run": "sleep 30"},
                }
            ]
        }
    )
    conn = node.connect(node="node1")
    [result] = run_checks(sc, sc.stages[0], {"node1": conn}, {})
    assert result.status == "fail" and result.hint == "is etcd running?"
    assert "timed out after 2 s (the command did not finish)" in result.seen
    conn.close()


CTRL_C = """
import sys, time
from pathlib import Path
from labkit.machines.connections import connect
from labkit.lab.solving import run_stage
from labkit.model.scenario import Scenario
sys.path.insert(0, sys.argv[3])
from tests.integration.test_ssh_trust_sshd import scenario
sc = scenario({"steps": [{"name": "hang", "kind": "command", "args": {"run": "sleep 120"}}]})
conns = {n: connect("127.0.0.1", [Path(sys.argv[1])], user="root", port=int(sys.argv[2]), node=n) for n in ("node1", "node2")}
print("running", flush=True)
run_stage(sc, "s", conns, context={})
"""


def test_ctrl_c_ends_a_stage_whose_nodes_do_not_answer(node: Node) -> None:
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C, str(node.d / "client"), str(node.port), str(repo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "running"
    time.sleep(2)  # both nodes are inside `sleep 120`
    node.freeze()  # and now they do not answer either
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("Ctrl-C did not end the stage: the worker threads still wait on the nodes")
    assert proc.returncode != 0 and "KeyboardInterrupt" in stderr


# ---- item 9: host keys -------------------------------------------------------------------------------------


def test_a_changed_host_key_is_refused(node: Node, tmp_path: Path) -> None:
    known = NodeHostKeys(tmp_path / "known_hosts")
    first = node.connect(node="node1", known_hosts=NodeHostKeys(known.path, record=True))
    assert first.run("true").ok  # `labkit up`: the first connection records the key
    first.close()
    recorded = known.path.read_text()
    assert recorded.startswith("node1 ssh-ed25519 ")
    again = node.connect(node="node1", known_hosts=known)
    assert again.run("true").ok
    again.close()

    node.stop()
    node.new_host_key()  # another machine answers at the node's address
    node.start()
    marker = tmp_path / "ran"
    for record in (False, True):  # not even `labkit up` replaces a recorded key
        conn = node.connect(node="node1", known_hosts=NodeHostKeys(known.path, record=record))
        with pytest.raises(HostKeyChanged) as caught:
            conn.run(f"touch {marker}")
        conn.close()
    assert not marker.exists(), "nothing ran on a machine with another key"
    message = str(caught.value)
    assert "node1" in message and "presented host key ssh-ed25519 SHA256:" in message
    assert f"remove the line for node1 from {known.path}" in message
    assert known.path.read_text() == recorded


def test_openssh_with_the_lab_ssh_config_refuses_a_changed_key(node: Node, tmp_path: Path) -> None:
    known = NodeHostKeys(tmp_path / "known_hosts", record=True)
    conn = node.connect(node="node1", known_hosts=known)
    conn.run("true")
    conn.close()
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host node1\n  HostName 127.0.0.1\n  Port {node.port}\n  User root\n  IdentityFile {node.d / 'client'}\n"
        f"  IdentitiesOnly yes\n  HostKeyAlias node1\n  UserKnownHostsFile {known.path}\n"
        "  StrictHostKeyChecking yes\n  UpdateHostKeys no\n  BatchMode yes\n"
    )

    def ssh() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-F", str(config), "node1", "echo in"], capture_output=True, text=True, timeout=30
        )

    assert ssh().stdout.strip() == "in"
    node.stop()
    node.new_host_key()
    node.start()
    refused = ssh()
    assert refused.returncode == 255 and "HOST IDENTIFICATION HAS CHANGED" in refused.stderr
