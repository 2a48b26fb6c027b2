"""Step kinds and the stage runner over real SSH: a private sshd on 127.0.0.1, real fabric, real etcd.

No VM: the "nodes" are connections to one sshd (root, key-only, its own host key and config in a temporary
directory) and every remote file lives under a temporary root. etcd runs from Debian's etcd-server on
random loopback ports, once with the v2 API and once without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labkit import artifacts
from labkit.artifacts import Catalog
from labkit.errors import UsageError
from labkit.lab.checking import run_checks
from labkit.lab.solving import run_stage
from labkit.machines.connections import connect
from labkit.model.scenario import Scenario

SSHD = Path("/usr/sbin/sshd")
ETCD = Path("/usr/bin/etcd")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (sshd runs as root; steps use sudo)"),
    pytest.mark.skipif(not SSHD.is_file(), reason="/usr/sbin/sshd missing (apt-get install openssh-server)"),
    pytest.mark.skipif(shutil.which("sudo") is None, reason="sudo missing (apt-get install sudo)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} in {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


class Sshd:
    def __init__(self, port: int, key: Path) -> None:
        self.port = port
        self.key = key

    def connect(self) -> Any:
        return connect("127.0.0.1", [self.key], user="root", port=self.port)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    yield from run_sshd(tmp_path_factory.mktemp("sshd"))


@pytest.fixture(scope="module")
def read_only_sftp_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """An sshd whose SFTP server refuses every write (``internal-sftp -R``): uploads fail on the node."""
    yield from run_sshd(tmp_path_factory.mktemp("sshd-ro"), sftp="internal-sftp -R")


def run_sshd(d: Path, sftp: str = "internal-sftp") -> Iterator[Sshd]:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client_key")], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    (d / "authorized_keys").chmod(0o600)
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"Subsystem sftp {sftp}\nMaxSessions 50\nMaxStartups 50\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc, "sshd")
        yield Sshd(port, d / "client_key")
    finally:
        stop(proc)


def start_etcd(d: Path, v2: bool) -> tuple[subprocess.Popen[bytes], str]:
    client, peer = free_port(), free_port()
    argv = [
        str(ETCD),
        "--name=t",
        f"--data-dir={d / 'data'}",
        f"--listen-client-urls=http://127.0.0.1:{client}",
        f"--advertise-client-urls=http://127.0.0.1:{client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=t=http://127.0.0.1:{peer}",
    ]
    if v2:
        argv.append("--enable-v2=true")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(d / "etcd.log", "wb"))  # noqa: SIM115
    wait_port(client, proc, "etcd")
    return proc, f"http://127.0.0.1:{client}"


@pytest.fixture(scope="module")
def etcd_v2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not ETCD.is_file():
        pytest.skip("/usr/bin/etcd missing (apt-get install etcd-server etcd-client)")
    proc, endpoint = start_etcd(tmp_path_factory.mktemp("etcd-v2"), v2=True)
    try:
        yield endpoint
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def etcd_v3_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not ETCD.is_file():
        pytest.skip("/usr/bin/etcd missing (apt-get install etcd-server etcd-client)")
    proc, endpoint = start_etcd(tmp_path_factory.mktemp("etcd-v3"), v2=False)
    try:
        yield endpoint
    finally:
        stop(proc)


def scenario(steps: list[dict[str, Any]], directory: Path | None = None) -> Scenario:
    data = {
        "name": "mini",
        "description": "two nodes",
        "network": {"lab": "192.168.56.0/24", "pods": "10.0.0.0/16", "services": "10.32.0.0/24"},
        "versions": {"kubernetes": "1.19.7", "etcd": "3.4.14", "flannel": "0.13.0", "cni_plugins": "0.8.7"},
        "nodes": [
            {"name": "node1", "roles": ["etcd", "worker"], "ip": "192.168.56.11"},
            {"name": "node2", "roles": ["worker"], "ip": "192.168.56.12"},
        ],
        "stages": [{"name": "s", "title": "s", "steps": steps}],
    }
    sc = Scenario.model_validate(data)
    if directory is not None:
        sc = sc.model_copy(update={"source": directory / "scenario.yaml"})
    return sc


@pytest.fixture
def conns(sshd: Sshd) -> Iterator[dict[str, Any]]:
    c = {"node1": sshd.connect(), "node2": sshd.connect()}
    yield c
    for conn in c.values():
        conn.close()


# ---- file ---------------------------------------------------------------------------------------------------


def test_file_from_template_plan_apply_rerun(conns: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "x.conf.j2").write_text('OPTS="--ip={{ node.ip }} --port={{ port }}"\n')
    target = tmp_path / "root" / "{{ node.name }}" / "etc" / "x.conf"
    sc = scenario(
        [
            {
                "name": "conf",
                "kind": "file",
                "on": ["node1"],
                "args": {"path": str(target), "template": "templates/x.conf.j2", "mode": "0640"},
            }
        ],
        tmp_path,
    )
    ctx = {"port": 7890}
    plan = run_stage(sc, "s", conns, plan=True, context=ctx)
    assert plan.changed_count == 1
    diff = plan.changes["node1"]["conf"].diff
    assert '+OPTS="--ip=192.168.56.11 --port=7890"' in diff
    written = tmp_path / "root" / "node1" / "etc" / "x.conf"
    assert not written.exists(), "a plan changes nothing"

    first = run_stage(sc, "s", conns, context=ctx)
    assert first.changed_count == 1 and not first.failed
    assert written.read_text() == 'OPTS="--ip=192.168.56.11 --port=7890"\n'
    assert oct(written.stat().st_mode & 0o7777) == "0o640"

    again = run_stage(sc, "s", conns, context=ctx)
    assert again.changed_count == 0 and again.results["node1"]["conf"].status == "ok"
    assert run_stage(sc, "s", conns, plan=True, context=ctx).changed_count == 0

    # an edit on the node shows as a diff and is reverted; a mode change alone is fixed in place
    written.write_text("edited\n")
    diff = run_stage(sc, "s", conns, plan=True, context=ctx).changes["node1"]["conf"].diff
    assert "-edited" in diff and '+OPTS="--ip=' in diff
    assert run_stage(sc, "s", conns, context=ctx).changed_count == 1
    written.chmod(0o644)
    fixed = run_stage(sc, "s", conns, context=ctx)
    assert fixed.changed_count == 1 and "mode 0644 -> 0640" in fixed.results["node1"]["conf"].message
    assert written.stat().st_mode & 0o7777 == 0o640


def test_template_missing_variable_fails_before_touching_nodes(conns: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_text("{{ nope }}\n")
    sc = scenario(
        [{"name": "f", "kind": "file", "args": {"path": str(tmp_path / "out"), "template": "t.j2"}}], tmp_path
    )
    with pytest.raises(UsageError, match="nope"):
        run_stage(sc, "s", conns, context={})
    assert not (tmp_path / "out").exists()


# ---- command ------------------------------------------------------------------------------------------------


def test_command_guards(conns: dict[str, Any], tmp_path: Path) -> None:
    marker = tmp_path / "made"
    log = tmp_path / "log"
    sc = scenario(
        [
            {
                "name": "make",
                "kind": "command",
                "on": ["node1"],
                "args": {"run": f"echo ran >> {log}; touch {marker}", "creates": str(marker)},
            },
            {
                "name": "unless",
                "kind": "command",
                "on": ["node1"],
                "args": {"run": f"echo unless >> {log}", "unless": f"grep -q unless {log}"},
            },
        ]
    )
    assert run_stage(sc, "s", conns, plan=True, context={}).changed_count == 2
    assert not log.exists()
    assert run_stage(sc, "s", conns, context={}).changed_count == 2
    again = run_stage(sc, "s", conns, context={})
    assert again.changed_count == 0
    assert "exists" in again.results["node1"]["make"].message
    assert log.read_text() == "ran\nunless\n"


# ---- artifact -----------------------------------------------------------------------------------------------


def test_artifact_upload_then_skip(conns: dict[str, Any], tmp_path: Path) -> None:
    payload = b"#!/bin/sh\necho tool\n"
    sha = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "opt" / "bin" / "tool"
    catalog = Catalog.model_validate(
        {
            "artifacts": [
                {
                    "name": "tool",
                    "component": "etcd",
                    "version": "1.0.0",
                    "url": "https://example.invalid/tool",
                    "sha256": sha,
                    "source": "test",
                    "install": [{"path": str(dest), "mode": "0755"}],
                }
            ]
        }
    )
    art = catalog.get("tool")
    cached = artifacts.cache_path(art)  # under the test's LABKIT_HOME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(payload)
    sc = scenario([{"name": "tool", "kind": "artifact", "on": ["node1"], "args": {"name": "tool"}}])
    plan = run_stage(sc, "s", conns, plan=True, context={}, catalog=catalog)
    assert plan.changed_count == 1 and "upload" in plan.changes["node1"]["tool"].summary
    assert run_stage(sc, "s", conns, context={}, catalog=catalog).changed_count == 1
    assert dest.read_bytes() == payload and dest.stat().st_mode & 0o7777 == 0o755
    assert run_stage(sc, "s", conns, context={}, catalog=catalog).changed_count == 0
    assert run_stage(sc, "s", conns, plan=True, context={}, catalog=catalog).changed_count == 0


def test_missing_artifact_stops_before_nodes(conns: dict[str, Any]) -> None:
    catalog = Catalog.model_validate(
        {
            "artifacts": [
                {
                    "name": "absent",
                    "component": "etcd",
                    "version": "1.0.0",
                    "url": "https://example.invalid/absent",
                    "sha256": "0" * 64,
                    "source": "test",
                    "install": [{"path": "/nonexistent/absent"}],
                }
            ]
        }
    )
    sc = scenario([{"name": "a", "kind": "artifact", "args": {"name": "absent"}}])
    with pytest.raises(artifacts.MissingArtifactsError, match="absent"):
        run_stage(sc, "s", conns, context={}, catalog=catalog)


# ---- etcd ---------------------------------------------------------------------------------------------------

NETWORK = {"Network": "10.0.0.0/16", "SubnetLen": 24, "Backend": {"Type": "udp", "Port": 7890}}


def etcd_steps(endpoint: str, api: int, key: str) -> list[dict[str, Any]]:
    return [
        {
            "name": f"net-v{api}",
            "kind": "etcd_put",
            "on": ["node1"],
            "args": {"key": key, "value": NETWORK, "api": api, "endpoint": endpoint},
        }
    ]


@pytest.mark.parametrize("api", [2, 3])
def test_etcd_put_writes_then_ok(conns: dict[str, Any], etcd_v2: str, api: int) -> None:
    key = f"/labkit-test/v{api}/network/config"
    sc = scenario(etcd_steps(etcd_v2, api, key))
    assert run_stage(sc, "s", conns, plan=True, context={}).changed_count == 1
    first = run_stage(sc, "s", conns, context={})
    assert first.changed_count == 1, first.summary()
    got = subprocess.run(
        ["etcdctl", "--endpoints", etcd_v2, "get", key, *([] if api == 2 else ["--print-value-only"])],
        env={**os.environ, "ETCDCTL_API": str(api)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(got.stdout) == NETWORK
    assert run_stage(sc, "s", conns, context={}).changed_count == 0
    assert run_stage(sc, "s", conns, plan=True, context={}).changed_count == 0


def test_etcd_v2_off_says_enable_v2(conns: dict[str, Any], etcd_v3_only: str) -> None:
    sc = scenario(etcd_steps(etcd_v3_only, 2, "/coreos.com/network/config"))
    report = run_stage(sc, "s", conns, context={})
    assert report.failed and report.failure is not None
    assert "--enable-v2=true" in report.failure.message
    assert "invalid json" in report.failure.output
    assert "ETCDCTL_API=2 etcdctl" in report.failure.command


# ---- runner -------------------------------------------------------------------------------------------------


def test_runner_parallel_only_and_stop_at_failure(conns: dict[str, Any], tmp_path: Path) -> None:
    root = tmp_path / "r"
    steps = [
        {
            "name": "a",
            "kind": "file",
            "args": {"path": f"{root}/{{{{ node.name }}}}/a", "content": "{{ node.name }} {{ who }}\n"},
        },
        {
            "name": "slow",
            "kind": "command",
            "args": {
                "run": f"date +%s.%N > {root}/{{{{ node.name }}}}-start; sleep 1; date +%s.%N > {root}/{{{{ node.name }}}}-end"
            },
        },
        {
            "name": "boom",
            "kind": "command",
            "on": ["node2"],
            "args": {"run": "echo first; echo bad >&2; exit 3"},
        },
        {"name": "never", "kind": "file", "args": {"path": f"{root}/never", "content": "x"}},
    ]
    sc = scenario(steps)
    report = run_stage(sc, "s", conns, context={"who": "me"}, only={"a", "slow"})
    assert not report.failed and report.changed_count == 4
    assert (root / "node1" / "a").read_text() == "node1 me\n"
    assert (root / "node2" / "a").read_text() == "node2 me\n"
    starts = [float((root / f"{n}-start").read_text()) for n in ("node1", "node2")]
    ends = [float((root / f"{n}-end").read_text()) for n in ("node1", "node2")]
    assert max(starts) < min(ends), "the two nodes ran the step at the same time"

    with pytest.raises(UsageError, match="a, slow, boom, never"):
        run_stage(sc, "s", conns, context={"who": "me"}, only={"nope"})

    report = run_stage(sc, "s", conns, context={"who": "me"}, only={"a", "boom", "never"})
    assert report.failed and report.failure is not None
    assert report.failure.node == "node2" and report.failure.step == "boom"
    assert "exit 3" in report.failure.command and "bad" in report.failure.output
    assert "boom" in report.summary() and "node2" in report.summary()
    assert not (root / "never").exists()
    assert "never" not in report.results.get("node1", {})


# ---- remote failures stay the node's result (issue 11, item 12) -------------------------------------------


def test_a_remote_sftp_error_is_a_failed_step_not_an_internal_error(
    read_only_sftp_sshd: Sshd, tmp_path: Path
) -> None:
    conn = read_only_sftp_sshd.connect()
    try:
        steps = [{"name": "conf", "kind": "file", "args": {"path": f"{tmp_path}/conf", "content": "x\n"}}]
        report = run_stage(scenario(steps), "s", {"node1": conn, "node2": conn}, nodes={"node1"})
    finally:
        conn.close()
    assert report.failure is not None, report.summary()
    assert report.failure.node == "node1" and report.failure.step == "conf"
    assert "PermissionError" in report.failure.message  # what the node's SFTP server answered ...
    assert "unreachable" not in report.failure.message  # ... so the node did answer
    assert not (tmp_path / "conf").exists()


def test_a_failing_check_on_a_real_node_carries_its_hint(conns: dict[str, Any], tmp_path: Path) -> None:
    hint = "the file must exist: the install step writes it"
    data = scenario([]).model_dump(mode="json", exclude_none=True)
    data["stages"][0]["checks"] = [
        {
            "name": "present",
            "kind": "command",
            "on": ["node1"],
            "args": {"run": f"test -e {tmp_path}/absent"},
            "hint": hint,
        }
    ]
    sc = Scenario.model_validate(data)
    results = run_checks(sc, sc.stages[0], conns, {})
    assert [(r.node, r.status, r.hint) for r in results] == [("node1", "fail", hint)]
