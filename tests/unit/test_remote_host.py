"""A lab on another host of the pool, without that host: its host found from its record, the SSH login read
from the host's URI, node connections and `labkit ssh` that go through the host, nft run there, the class grid
with a host down, and `hosts list` naming the labs of each host."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fabric import Connection
from paramiko import ChannelException
from typer.testing import CliRunner

from labkit.classroom import Classroom
from labkit.classroom.record import ClassRecord, write_record
from labkit.cli import app
from labkit.errors import HostError, LabError, UsageError
from labkit.hostsetup.pool import add_host, lab_host, libvirt_host
from labkit.hostsetup.second_host.layout import SecondHostPaths
from labkit.lab import Lab, destroy_by_name
from labkit.machines import isolation
from labkit.machines.connections import NodeUnreachable, connect
from labkit.machines.host_facts import HostFacts
from labkit.machines.host_ssh import CommandResult, HostSsh, host_ssh_from_uri
from labkit.machines.libvirt_host import LibvirtHost
from labkit.machines.sshkeys import ssh_config_text
from labkit.paths import LabPaths, host_pool_file, labs_dir, scenarios_dir
from labkit.state import LabState, NodeState, write_state
from tests.unit.remote_doubles import H2, FakeHost


@pytest.fixture(autouse=True)
def no_host_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_RUN_DIR", str(tmp_path / "run"))


def remote_lab(name: str, host: str) -> None:
    """The state of a lab of the three-node scenario living on ``host``."""
    state = LabState(
        lab=name,
        scenario="three-node",
        scenario_path=str(scenarios_dir() / "three-node" / "scenario.yaml"),
        accel="kvm",
        accel_reason="kvm",
        management_network=f"labkit-{name}-mgmt",
        management_cidr="172.29.7.0/24",
        lab_network=f"labkit-{name}-lab",
        created_at="t",
        nodes={"node1": NodeState("node1", f"labkit-{name}-node1", management_ip="172.29.7.11")},
        host=host,
    )
    write_state(LabPaths.for_lab(name).state, state)


# ---- the SSH login of a host ---------------------------------------------------------------------------


def test_the_login_comes_from_the_uri() -> None:
    ssh = host_ssh_from_uri("qemu+ssh://admin@h3.example:2222/system?keyfile=/k&known_hosts=/kh&no_tty=1")
    assert ssh == HostSsh("h3.example", "admin", 2222, Path("/k"), Path("/kh"))
    assert ssh.target == "admin@h3.example:2222"
    plain = host_ssh_from_uri("qemu+ssh://h4/system", known_hosts=None)
    assert (
        plain.port == 22 and plain.key_file is None and plain.user
    )  # ssh's default: the user labkit runs as
    assert plain.known_hosts_file == Path.home() / ".ssh" / "known_hosts"  # what the ssh libvirt runs reads
    with pytest.raises(HostError, match="names no remote host"):
        host_ssh_from_uri("qemu:///system")


def test_openssh_logs_in_as_labkit_does_checking_the_host_key() -> None:
    ssh = HostSsh("10.251.0.2", "root", 22, Path("/k"), Path("/kh"))
    argv = ssh.ssh_argv()
    assert argv[:3] == ["ssh", "-F", "/dev/null"] and argv[-1] == "root@10.251.0.2"
    for option in (
        "UserKnownHostsFile=/kh",
        "StrictHostKeyChecking=yes",
        "BatchMode=yes",
        "IdentitiesOnly=yes",
    ):
        assert option in argv
    assert argv[argv.index("-i") + 1] == "/k"
    block = [line.strip() for line in ssh.jump_block("labkit-host.h2").splitlines()]
    assert block[0] == "Host labkit-host.h2"
    assert 'IdentityFile "/k"' in block and 'UserKnownHostsFile "/kh"' in block
    assert "StrictHostKeyChecking yes" in block and "ConnectTimeout 10" in block


def test_a_second_host_is_checked_against_its_own_known_hosts() -> None:
    paths = SecondHostPaths.for_host("h2")
    paths.ssh_dir.mkdir(parents=True)
    paths.known_hosts.write_text("10.251.0.2 ssh-ed25519 AAAA\n")
    uri = f"qemu+ssh://root@10.251.0.2/system?command={paths.ssh_command}&keyfile={paths.client_key}&no_tty=1"
    add_host("h2", uri)
    add_host("h3", H2.replace("10.251.0.2", "h3"))
    host = libvirt_host("h2")
    assert host.remote and host.ssh_login().known_hosts == paths.known_hosts
    assert host.ssh_login().key_file == paths.client_key
    assert libvirt_host("h3").ssh_login().known_hosts is None  # not a second host: ~/.ssh/known_hosts
    assert not libvirt_host("local").remote


def test_labkit_ssh_jumps_through_the_lab_host() -> None:
    lab = LabPaths.for_lab("t1")
    ssh = HostSsh("10.251.0.2", key_file=Path("/k"), known_hosts=Path("/kh"))
    text = ssh_config_text(lab, {"node1": "172.29.7.11"}, ("h2", ssh))
    assert text.startswith("Host labkit-host.h2\n")
    node = text.split("Host node1\n", 1)[1].splitlines()
    assert "  ProxyJump labkit-host.h2" in node and "  HostName 172.29.7.11" in node
    assert "ProxyJump" not in ssh_config_text(lab, {"node1": "172.29.7.11"})


# ---- a lab's host from its record ---------------------------------------------------------------------


def test_a_lab_is_found_on_the_host_its_state_names() -> None:
    add_host("h2", H2)
    remote_lab("t1", "h2")
    lab = Lab.load("t1")
    assert lab.host.name == "h2" and lab.host.remote and lab.host.uri == H2
    with pytest.raises(UsageError, match="lab t1 lives on host h2, not local"):
        Lab.load("t1", LibvirtHost())
    with pytest.raises(UsageError, match="lab t1 lives on host h2, not local"):
        Lab.create("three-node", "t1", LibvirtHost())


def test_a_lab_whose_host_left_the_pool_says_so_in_one_line_and_is_never_destroyed_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    remote_lab("t1", "gone")
    with pytest.raises(HostError) as caught:
        Lab.load("t1")
    assert caught.value.message == "lab t1 lives on host gone, which is not in the pool"
    assert caught.value.hint and "labkit hosts add gone" in caught.value.hint
    monkeypatch.setattr("labkit.lab.lifecycle.destroy_lab", lambda *a: pytest.fail("destroyed elsewhere"))
    with pytest.raises(HostError, match="host gone"):
        destroy_by_name("t1")
    assert LabPaths.for_lab("t1").state.exists()


def test_a_remote_host_is_one_value_per_process_and_a_broken_pool_is_said_as_such() -> None:
    add_host("h2", H2)
    assert libvirt_host("h2") is libvirt_host("h2")  # one libvirt and one SSH connection for all its labs
    assert libvirt_host("local") is not libvirt_host("local")
    remote_lab("t1", "h2")
    assert Lab.load("t1").host is libvirt_host("h2")  # its commands go to its host
    host_pool_file().write_text("{")
    with pytest.raises(UsageError, match="cannot read the host pool"):
        Lab.load("t1")
    assert lab_host("t2", "local").name == "local"  # a local lab needs no pool file


def test_a_new_lab_records_its_host() -> None:
    add_host("h2", H2)
    lab = Lab.create("three-node", "t2", libvirt_host("h2"))
    state = lab._new_state(FakeLibvirt(), accel=FakeAccel())
    assert state.host == "h2"


class FakeLibvirt:
    def listAllNetworks(self, flags: int) -> list[Any]:
        return []


class FakeAccel:
    driver = "qemu"
    reason = "qemu: test"


def test_node_connections_of_a_remote_lab_go_through_its_host(monkeypatch: pytest.MonkeyPatch) -> None:
    add_host("h2", H2)
    remote_lab("t1", "h2")
    lab = Lab.load("t1")
    gateway = Connection("10.251.0.2")
    monkeypatch.setattr(lab.host, "gateway", lambda: gateway)
    assert lab._connection("node1").gateway is gateway
    assert connect("172.29.7.11", []).gateway is False  # a local lab's nodes: straight


class Refusing:
    def open_channel(self, **kwargs: Any) -> Any:
        assert kwargs["kind"] == "direct-tcpip" and kwargs["timeout"] == 30
        raise ChannelException(1, "Administratively prohibited")


def test_a_host_that_does_not_forward_is_named_as_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = Connection("10.251.0.2")
    monkeypatch.setattr(gateway, "open", lambda: None)
    gateway.transport = Refusing()
    conn = connect("172.29.7.11", [], node="node1", gateway=gateway)
    with pytest.raises(NodeUnreachable, match="AllowTcpForwarding local"):
        conn.open_gateway()


# ---- nft on the lab's host --------------------------------------------------------------------------


def test_isolation_runs_nft_on_the_host_and_says_when_it_is_missing() -> None:
    host = FakeHost({"nft -j list": CommandResult(0, json.dumps({"nftables": []}), "")})
    assert not isolation.is_isolated(host, "t1")
    assert host.ran == [(["nft", "-j", "list", "table", "inet", "labkit_lab_t1"], None)]
    missing = FakeHost({"nft": CommandResult(127, "", "sh: 1: nft: not found")})
    with pytest.raises(LabError, match="nft is not installed on host h2"):
        isolation.is_isolated(missing, "t1")
    assert not isolation.lift_isolation(missing, "t1")
    down = FakeHost({"nft": HostError("host h2 is unreachable over SSH (root@10.251.0.2): timed out")})
    with pytest.raises(HostError, match="unreachable"):  # the host, not nft, is what to fix
        isolation.lift_isolation(down, "t1")


# ---- the class grid -------------------------------------------------------------------------------------


def test_the_grid_shows_the_labs_of_a_down_host_as_such_and_asks_it_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_host("h2", H2)
    for trainee, host in (("ann", "h2"), ("bob", "h2"), ("cid", "local")):
        remote_lab(f"c1-{trainee}", host)
    scenario = str(scenarios_dir() / "three-node" / "scenario.yaml")
    write_record(ClassRecord("c1", "three-node", scenario, "etcd", "c1-golden", ["ann", "bob", "cid"]))
    asked: list[str] = []

    def connect(host: LibvirtHost) -> object:  # a remote host's libvirt is asked first
        asked.append(f"{host.name} libvirt")
        if host.name == "h2":
            raise HostError("host h2 is unreachable over SSH (root@10.251.0.2): timed out")
        return object()

    def is_isolated(host: LibvirtHost, lab: str) -> bool:
        asked.append(host.name)
        return True

    monkeypatch.setattr(LibvirtHost, "connect", connect)
    monkeypatch.setattr("labkit.classroom.classroom.is_isolated", is_isolated)
    rows = {row.trainee: row for row in Classroom("c1").status().trainees}
    assert asked == ["h2 libvirt", "local"]
    assert rows["ann"].host == rows["bob"].host == "h2" and not rows["ann"].isolated
    assert rows["bob"].host_unreachable.startswith("host h2 is unreachable")
    assert rows["cid"].host == "local" and rows["cid"].isolated and not rows["cid"].host_unreachable
    shown = CliRunner().invoke(app, ["class", "status", "c1"])
    assert shown.exit_code == 0, shown.output
    assert "host h2 (ann, bob): host h2 is unreachable over SSH" in shown.output


# ---- hosts list ---------------------------------------------------------------------------------------


def test_hosts_list_names_the_labs_of_each_host_even_one_that_is_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    add_host("h2", H2)
    remote_lab("t1", "h2")
    remote_lab("t2", "h2")

    def visit(hosts: list[LibvirtHost], timeout: float) -> list[HostFacts]:
        return [
            HostFacts("local", "qemu:///system", True, labs=("t3",)),
            HostFacts("h2", H2, False, "no answer within 1 s"),
        ]

    monkeypatch.setattr("labkit.hostsetup.pool_survey.visit_hosts", visit)
    result = CliRunner().invoke(app, ["hosts", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["h2"]["labs"] == ["t1", "t2"] and rows["h2"]["labs_in_libvirt"] is None
    assert rows["local"]["labs"] == ["t3"] and rows["local"]["labs_in_states"] == []
    text = CliRunner().invoke(app, ["hosts", "list"]).output
    assert "h2: labs t1, t2" in text and "local: labs t3 (in libvirt only, no state here)" in text
    assert "h2: unreachable: no answer within 1 s" in text
    assert sorted(p.name for p in labs_dir().iterdir()) == ["t1", "t2"]
