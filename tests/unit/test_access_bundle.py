"""A trainee's access bundle as text, and the class gateway's config: no sshd, no VM, no account."""

from __future__ import annotations

import shlex
import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from labkit.classroom import gateway, tokens
from labkit.classroom.access import AccessOptions, gateway_address, remove_access, trainee_labs
from labkit.classroom.access_paths import AccessPaths
from labkit.classroom.bundle_text import (
    Endpoint,
    TraineeLab,
    authorized_keys_line,
    check_bundle_dir,
    known_hosts_text,
    login_command,
    page_url,
    readme_text,
    ssh_config_text,
    token_in,
)
from labkit.classroom.bundles import write_bundle
from labkit.classroom.gateway import Listen, sshd_config_text
from labkit.classroom.record import ClassRecord, write_record
from labkit.cli import app
from labkit.errors import UsageError
from labkit.paths import LabPaths
from labkit.state import LabState, NodeState, write_state

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx3ZfakekeyfakekeyfakekeyfakekeyfakekeyfakekeyX root@laptop"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGatewayhostkeygatewayhostkeygatewayhostkeyAB"
GATEWAY = Endpoint("203.0.113.7", 2222, HOST_KEY)


def alice_lab() -> TraineeLab:
    return TraineeLab(
        trainee="alice",
        lab="k8s-alice",
        nodes={"node1": "10.20.0.11", "node2": "10.20.0.12"},
        host_keys=[
            "node1 ssh-ed25519 AAAAnode1",
            "node2 ssh-ed25519 AAAAnode2",
            "node9 ssh-ed25519 AAAAother",
        ],
    )


# ---- the gateway's authorized_keys line ----------------------------------------------------------------


def test_a_trainee_key_opens_its_own_nodes_ssh_port_and_nothing_else() -> None:
    line = authorized_keys_line("k8s", alice_lab(), KEY)
    options, kind, blob, comment = line.split(" ")
    assert options == (
        'restrict,port-forwarding,permitopen="10.20.0.11:22",permitopen="10.20.0.12:22",'
        'command="/usr/sbin/nologin"'
    )
    assert (kind, blob) == tuple(KEY.split()[:2])
    assert comment == "labkit-k8s-alice"  # the trainee's own comment (root@laptop) is not carried over


def test_the_line_names_the_node_port_and_brackets_ipv6() -> None:
    lab = TraineeLab("bob", "k8s-bob", {"node1": "fd00::11"}, node_port=2201)
    assert 'permitopen="[fd00::11]:2201"' in authorized_keys_line("k8s", lab, KEY)


@pytest.mark.parametrize(
    "nodes",
    [{"node1": '10.0.0.1",permitopen="*:*'}, {"node1": "node1.example"}, {}],
    ids=["a quote in an address", "a name, not an address", "no node"],
)
def test_an_address_that_is_not_one_never_reaches_the_options(nodes: dict[str, str]) -> None:
    with pytest.raises(UsageError):
        authorized_keys_line("k8s", TraineeLab("bob", "k8s-bob", nodes), KEY)


def test_a_key_that_is_not_one_is_refused() -> None:
    with pytest.raises(UsageError):
        authorized_keys_line("k8s", alice_lab(), 'ssh-ed25519 AAAA" command="sh')


# ---- ssh_config, known_hosts, README --------------------------------------------------------------------


def blocks(text: str) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("Host "):
            current = found.setdefault(line.split()[1], {})
        elif line.startswith("  "):
            key, value = line.split(maxsplit=1)
            current[key] = value
    return found


def test_the_config_reaches_each_node_through_the_gateway() -> None:
    config = blocks(ssh_config_text("k8s", alice_lab(), GATEWAY, "~/labkit-k8s"))
    assert list(config) == ["labkit-gateway", "node1", "node2"]
    gateway = config["labkit-gateway"]
    assert gateway["HostName"] == "203.0.113.7" and gateway["Port"] == "2222"
    assert gateway["User"] == "labkit-trainee" and gateway["RequestTTY"] == "no"
    node = config["node2"]
    assert node["HostName"] == "10.20.0.12" and node["User"] == "vagrant"
    assert node["ProxyJump"] == "labkit-gateway" and node["HostKeyAlias"] == "node2"
    assert "Port" not in node  # the SSH port
    for block in config.values():
        assert block["IdentityFile"] == "~/labkit-k8s/id_ed25519"
        assert block["UserKnownHostsFile"] == "~/labkit-k8s/known_hosts"
        assert block["IdentitiesOnly"] == "yes" and block["StrictHostKeyChecking"] == "yes"
        assert block["ForwardAgent"] == "no"


def test_a_bundle_path_with_a_space_is_quoted_and_one_with_a_quote_refused() -> None:
    config = blocks(ssh_config_text("k8s", alice_lab(), GATEWAY, "/home/al ice/lab"))
    assert config["node1"]["IdentityFile"] == '"/home/al ice/lab/id_ed25519"'
    for bad in ('~/lab"x', "relative/dir", "~/a\nHost *"):
        with pytest.raises(UsageError):
            check_bundle_dir(bad)


def test_known_hosts_pins_the_gateway_and_only_this_labs_nodes() -> None:
    lines = known_hosts_text(GATEWAY, alice_lab()).splitlines()
    assert lines == [
        f"[203.0.113.7]:2222 {HOST_KEY}",
        "node1 ssh-ed25519 AAAAnode1",
        "node2 ssh-ed25519 AAAAnode2",
    ]
    on_22 = known_hosts_text(Endpoint("class.example.org", 22, HOST_KEY), alice_lab())
    assert on_22.splitlines()[0] == f"class.example.org {HOST_KEY}"


def test_the_readme_says_what_to_type() -> None:
    url = page_url("http://class.example.org:8080/", "alice", "tok-en_1")
    text = readme_text("k8s", alice_lab(), "~/labkit-k8s", "labkit-k8s-alice.tar.gz", url)
    assert "tar -xzf labkit-k8s-alice.tar.gz -C ~\n" in text
    assert "ssh -F ~/labkit-k8s/ssh_config node1" in text
    assert "Your nodes: node1, node2" in text
    assert "http://class.example.org:8080/trainee/alice?token=tok-en_1" in text
    assert token_in(url) == "tok-en_1"


def test_the_login_command_survives_a_shell() -> None:
    command = login_command("/srv/class bundles/k8s", "node1")
    assert shlex.split(command) == ["ssh", "-F", "/srv/class bundles/k8s/ssh_config", "node1"]
    assert login_command("~/my lab", "node1") == "ssh -F ~/'my lab/ssh_config' node1"


# ---- the gateway's config and options ------------------------------------------------------------------


def test_the_gateway_config_allows_key_tunnels_for_the_trainee_account_only() -> None:
    paths = AccessPaths.for_class("k8s")
    text = sshd_config_text(paths, Listen.parse("0.0.0.0:2222"))
    settings = dict(line.split(maxsplit=1) for line in text.splitlines() if not line.startswith("#"))
    assert settings["Port"] == "2222" and settings["ListenAddress"] == "0.0.0.0"
    assert settings["AllowUsers"] == "labkit-trainee"
    assert settings["AuthorizedKeysCommand"].endswith(f"cat {paths.authorized_keys}")
    assert settings["AuthorizedKeysCommandUser"] == "root"
    for off in ("PasswordAuthentication", "KbdInteractiveAuthentication", "PermitRootLogin", "UsePAM"):
        assert settings[off] == "no", off
    for off in ("AllowAgentForwarding", "AllowStreamLocalForwarding", "X11Forwarding", "PermitTTY"):
        assert settings[off] == "no", off
    for off in ("PermitTunnel", "GatewayPorts", "PermitUserRC"):
        assert settings[off] == "no", off
    assert settings["AllowTcpForwarding"] == "local"
    assert settings["ForceCommand"] == "/usr/sbin/nologin"
    assert settings["HostKey"] == str(paths.host_key) and settings["PidFile"] == str(paths.pidfile)


@pytest.mark.parametrize("text", ["2222", "0.0.0.0", "0.0.0.0:0", "0.0.0.0:70000", "host.example:22"])
def test_a_bad_listen_is_refused(text: str) -> None:
    with pytest.raises(UsageError):
        Listen.parse(text)


def test_listen_on_all_addresses_without_an_address_warns() -> None:
    assert str(Listen.parse("[::1]:2200")) == "[::1]:2200"
    address, warnings = gateway_address(AccessOptions(Listen.parse("0.0.0.0:2222")))
    assert address == "127.0.0.1" and "--address" in warnings[0]
    assert gateway_address(AccessOptions(Listen.parse("192.0.2.1:22"))) == ("192.0.2.1", [])
    named = AccessOptions(Listen.parse("0.0.0.0:2222"), address="class.example.org")
    assert gateway_address(named) == ("class.example.org", [])
    with pytest.raises(UsageError):
        gateway_address(AccessOptions(address="bad name;"))


# ---- reading a trainee's lab; one bundle on disk ----------------------------------------------------------


def trainee_state(lab: str, ips: dict[str, str | None]) -> None:
    state = LabState(
        lab=lab,
        scenario="three-node",
        scenario_path="three-node",
        accel="kvm",
        accel_reason="",
        management_network=f"{lab}-mgmt",
        management_cidr="10.20.0.0/24",
        lab_network=f"{lab}-lab",
        created_at="",
        nodes={n: NodeState(n, f"{lab}-{n}", management_ip=ip) for n, ip in ips.items()},
    )
    write_state(LabPaths.for_lab(lab).state, state)


def test_a_lab_without_addresses_or_host_keys_is_refused_before_anything() -> None:
    with pytest.raises(UsageError, match="trainee alice has no lab k8s-alice"):
        trainee_labs("k8s", ["alice"])
    trainee_state("k8s-alice", {"node1": "10.20.0.11", "node2": None})
    with pytest.raises(UsageError, match="no management address recorded for node2"):
        trainee_labs("k8s", ["alice"])
    trainee_state("k8s-alice", {"node1": "10.20.0.11", "node2": "10.20.0.12"})
    LabPaths.for_lab("k8s-alice").known_hosts.write_text("node1 ssh-ed25519 AAAAnode1\n")
    with pytest.raises(UsageError, match="no host key recorded for node2"):
        trainee_labs("k8s", ["alice"])
    LabPaths.for_lab("k8s-alice").known_hosts.write_text("node1 ssh-ed25519 A\nnode2 ssh-ed25519 B\n")
    [lab] = trainee_labs("k8s", ["alice"])
    assert lab.nodes == {"node1": "10.20.0.11", "node2": "10.20.0.12"} and lab.lab == "k8s-alice"


def test_a_bundle_keeps_its_key_and_token_until_rotated() -> None:
    paths = AccessPaths.for_class("k8s")
    paths.trainees.mkdir(parents=True)
    first = write_bundle(paths, alice_lab(), GATEWAY, "~/labkit-k8s", "http://a:8080", rotate=False)
    key = (paths.bundle("alice") / "id_ed25519").read_text()
    assert first.new_key and (paths.bundle("alice") / "id_ed25519").stat().st_mode & 0o777 == 0o600
    holder = tokens.identify("k8s", token_in(first.page_url))
    assert holder is not None and holder.trainee == "alice"
    again = write_bundle(paths, alice_lab(), GATEWAY, "~/labkit-k8s", "http://b:8080", rotate=False)
    assert not again.new_key and (paths.bundle("alice") / "id_ed25519").read_text() == key
    assert again.page_url == first.page_url.replace("http://a:8080", "http://b:8080")
    rotated = write_bundle(paths, alice_lab(), GATEWAY, "~/labkit-k8s", "http://b:8080", rotate=True)
    assert rotated.new_key and (paths.bundle("alice") / "id_ed25519").read_text() != key
    assert tokens.identify("k8s", token_in(first.page_url)) is None  # the old page link stops working
    with tarfile.open(rotated.tarball) as tar:
        members = tar.getmembers()
    assert sorted(m.name.removeprefix("labkit-k8s/") for m in members) == [
        "README.txt",
        "id_ed25519",
        "id_ed25519.pub",
        "known_hosts",
        "labkit-k8s",
        "page-url.txt",
        "ssh_config",
    ]
    assert {(m.uid, m.uname) for m in members} == {(0, "")}
    assert Path(rotated.tarball).stat().st_mode & 0o777 == 0o600


# ---- the command refuses before it makes anything; the end of access kills only the class's gateway ------


@pytest.fixture(autouse=True)
def _no_host_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`labkit class` commands enter host mode's namespace: never the developer's, here."""
    monkeypatch.setenv("LABKIT_RUN_DIR", str(tmp_path / "run"))


def class_of(trainees: list[str]) -> None:
    write_record(ClassRecord("k8s", "three-node", "three-node", "etcd", "k8s-golden", trainees=trainees))


def access(*args: str) -> Result:
    return CliRunner().invoke(app, ["class", "access", *args])


def test_class_access_refuses_a_missing_class_lab_or_bad_listen() -> None:
    result = access("k8s")
    assert result.exit_code == 2 and "no class named 'k8s'" in result.output
    class_of(["alice"])
    result = access("k8s")
    assert result.exit_code == 2 and "trainee alice has no lab k8s-alice" in result.output
    result = access("k8s", "--listen", "2222")
    assert result.exit_code == 2 and "--listen '2222': give HOST:PORT" in result.output
    assert not AccessPaths.for_class("k8s").root.exists()


def test_class_access_without_sshd_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    class_of(["alice"])
    trainee_state("k8s-alice", {"node1": "10.20.0.11"})
    LabPaths.for_lab("k8s-alice").known_hosts.write_text("node1 ssh-ed25519 AAAAnode1\n")
    monkeypatch.setattr(gateway, "SSHD", Path("/nonexistent/sshd"))
    monkeypatch.setattr(gateway.os, "geteuid", lambda: 0)
    result = access("k8s", "--address", "192.0.2.10")
    assert result.exit_code == 3, result.output
    assert "/nonexistent/sshd is missing (apt-get install openssh-server" in result.output
    assert not AccessPaths.for_class("k8s").root.exists()


def test_the_end_of_access_kills_no_process_but_the_class_gateway() -> None:
    paths = AccessPaths.for_class("k8s")
    paths.gateway.mkdir(parents=True)
    tokens.issue_trainee_token("k8s", "alice")
    other = subprocess.Popen(["sleep", "60"])
    try:
        paths.pidfile.write_text(f"{other.pid}\n")  # a PID file naming a process that is not this gateway
        remove_access("k8s")
        assert other.poll() is None, "a process that is not the class's sshd was stopped"
        assert not paths.root.exists() and not tokens.tokens_path("k8s").exists()
    finally:
        other.kill()
        other.wait()


def test_another_classs_gateway_is_not_taken_for_this_ones() -> None:
    mine, theirs = AccessPaths.for_class("gw"), AccessPaths.for_class("xgw")
    for paths in (mine, theirs):
        paths.gateway.mkdir(parents=True)
    # a process that looks like class xgw's gateway: `sleep`, with sshd's command line as its argv[0]
    other = subprocess.Popen([f"/usr/sbin/sshd -D -f {theirs.sshd_config}", "60"], executable="/bin/sleep")
    try:
        for paths in (mine, theirs):
            paths.pidfile.write_text(f"{other.pid}\n")
        assert gateway.running_gateway(mine) is None
        found = gateway.running_gateway(theirs)
        assert found is not None and found.pid == other.pid
    finally:
        other.kill()
        other.wait()
