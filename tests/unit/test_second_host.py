"""A second host on this machine, its pure parts: names, files, the /30 it takes, its record, sshd's and ssh's
settings, the URI, the commands that start its daemons. Nothing is started here (tests/integration does)."""

from __future__ import annotations

import ipaddress
import shlex
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from labkit.cli import app
from labkit.errors import HostError, UsageError
from labkit.hostsetup.processes import Daemon
from labkit.hostsetup.second_host import addresses, daemons, lifecycle
from labkit.hostsetup.second_host.addresses import pick_subnet
from labkit.hostsetup.second_host.layout import SecondHostPaths, check_second_host_name
from labkit.hostsetup.second_host.record import SecondHostState, read_state, write_state
from labkit.hostsetup.second_host.ssh_access import (
    host_uri,
    ssh_command_text,
    ssh_config_text,
    sshd_config_text,
)

Net = ipaddress.IPv4Network


@pytest.fixture(autouse=True)
def no_host_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never the machine's host mode: a CLI test must not enter its network namespace."""
    monkeypatch.setenv("LABKIT_RUN_DIR", str(tmp_path / "run"))


def state(**changes: Any) -> SecondHostState:
    values: dict[str, Any] = {
        "name": "h2",
        "netns": "labkit-h2",
        "peer_netns": "side",
        "subnet": "10.251.0.4/30",
        "created_netns": True,
        "daemons": (Daemon("virtlogd", 10, 1), Daemon("libvirtd", 11, 2), Daemon("sshd", 12, 3)),
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    values.update(changes)
    return SecondHostState(**values)


@pytest.mark.parametrize("name", ["h2", "b", "lab-host-12"])
def test_names_that_fit_an_interface_name(name: str) -> None:
    assert check_second_host_name(name) == name
    assert len(SecondHostPaths.for_host(name).peer_veth) <= 15


@pytest.mark.parametrize("name", ["local", "H2", "2h", "h_2", "a-name-too-long", ""])
def test_other_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_second_host_name(name)
    assert caught.value.hint and "lowercase" in caught.value.hint


def test_the_layout_replaces_every_libvirt_directory() -> None:
    paths = SecondHostPaths.for_host("h2")
    assert paths.netns == "labkit-h2" and paths.peer_veth == "lk-h2"
    targets = {str(target) for _, target in paths.mounts()}
    assert targets == {
        "/etc/libvirt",
        "/run/libvirt",
        "/var/lib/libvirt",
        "/var/cache/libvirt",
        "/var/log/libvirt",
    }
    assert all(source.parent == paths.root for source, _ in paths.mounts())
    assert (
        paths.libvirtd_binary.name == "labkit-libvirtd"
    )  # not "libvirtd": host mode's check must not see it
    assert paths.pidfile("libvirtd").parent == paths.root  # never /run/libvirtd.pid


def test_a_path_with_a_space_is_quoted_in_the_socket_uri(tmp_path: Path) -> None:
    paths = SecondHostPaths(tmp_path / "my hosts" / "h2")
    assert paths.socket_uri == f"qemu:///system?socket={tmp_path}/my%20hosts/h2/run/libvirt-sock"


def test_the_first_free_subnet_is_taken() -> None:
    assert pick_subnet([]) == Net("10.251.0.0/30")
    taken = [Net("10.251.0.0/30"), Net("10.251.0.5/32")]
    assert pick_subnet(taken) == Net("10.251.0.8/30")


def test_the_last_subnet_is_taken_again_when_free() -> None:
    assert pick_subnet([], preferred=Net("10.251.0.12/30")) == Net("10.251.0.12/30")
    assert pick_subnet([Net("10.251.0.12/30")], preferred=Net("10.251.0.12/30")) == Net("10.251.0.0/30")


def test_a_network_over_the_whole_range_leaves_nothing() -> None:
    with pytest.raises(HostError, match="no free /30") as caught:
        pick_subnet([Net("10.251.0.0/24")])
    assert caught.value.hint and "labkit host down --name" in caught.value.hint


def test_addresses_and_specific_routes_count_but_broad_routes_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {
        "addr": [
            {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "10.251.0.1", "prefixlen": 24}]}
        ],
        "route": [{"dst": "default"}, {"dst": "10.0.0.0/8"}, {"dst": "192.168.5.0/24"}],
    }
    monkeypatch.setattr(addresses, "_ip_json", lambda netns, args: answers[args[0]])
    assert addresses.networks_in_use("side") == [Net("10.251.0.0/24"), Net("192.168.5.0/24")]


def test_in_netns_runs_in_the_namespace_or_here() -> None:
    assert addresses.in_netns("side", ["ip", "link"]) == ["ip", "netns", "exec", "side", "ip", "link"]
    assert addresses.in_netns(None, ["ip", "link"]) == ["ip", "link"]


def test_the_record_round_trips_and_gives_the_addresses() -> None:
    paths = SecondHostPaths.for_host("h2")
    recorded = state()
    write_state(paths, recorded)
    again = read_state(paths)
    assert again == recorded
    assert (again.address, again.peer_address) == ("10.251.0.6", "10.251.0.5")
    assert not again.healthy  # made-up PIDs


def test_an_unreadable_record_says_what_to_do() -> None:
    paths = SecondHostPaths.for_host("h2")
    paths.root.mkdir(parents=True)
    paths.state.write_text('{"name": "h2"}')
    with pytest.raises(HostError, match="unreadable") as caught:
        read_state(paths)
    assert caught.value.hint and "pids" in caught.value.hint


def test_sshd_takes_root_by_key_only_on_the_host_address_and_forwards_to_ssh_ports_only() -> None:
    paths = SecondHostPaths.for_host("h2")
    lines = sshd_config_text(paths, "10.251.0.6").splitlines()
    assert "ListenAddress 10.251.0.6:22" in lines
    for setting in (
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "AllowTcpForwarding local",
        "PermitOpen *:22",
        "PermitListen none",
        "AllowAgentForwarding no",
        "PermitTunnel no",
    ):
        assert setting in lines
    assert f'AuthorizedKeysFile "{paths.authorized_keys}"' in lines
    assert f'PidFile "{paths.pidfile("sshd")}"' in lines


def test_ssh_checks_the_host_key_strictly_and_never_waits_forever() -> None:
    paths = SecondHostPaths.for_host("h2")
    lines = [line.strip() for line in ssh_config_text(paths).splitlines()]
    assert f'UserKnownHostsFile "{paths.known_hosts}"' in lines
    assert "StrictHostKeyChecking yes" in lines and "BatchMode yes" in lines
    assert "ConnectTimeout 5" in lines and "ServerAliveInterval 5" in lines
    wrapper = ssh_command_text(paths, "/usr/bin/ssh")
    assert wrapper.startswith("#!/bin/sh\n")
    assert f'exec /usr/bin/ssh -F {shlex.quote(str(paths.ssh_config))} "$@"' in wrapper


def test_the_uri_names_the_ssh_wrapper_and_the_key(tmp_path: Path) -> None:
    paths = SecondHostPaths(tmp_path / "a b" / "h2")
    uri = host_uri(paths, "10.251.0.6")
    assert uri.startswith("qemu+ssh://root@10.251.0.6/system?")
    assert f"command={tmp_path}/a%20b/h2/ssh/ssh" in uri
    assert f"keyfile={tmp_path}/a%20b/h2/ssh/id_ed25519" in uri and uri.endswith("&no_tty=1")


def test_the_first_daemon_makes_the_mount_namespace_and_the_others_join_it(tmp_path: Path) -> None:
    paths = SecondHostPaths(tmp_path / "it's" / "h2")
    fresh = daemons.namespace_argv(state(daemons=()), paths, ["virtlogd", "-d"])
    assert fresh[:9] == [
        "ip",
        "netns",
        "exec",
        "labkit-h2",
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
    ]
    script = fresh[fresh.index("-c") + 1]
    assert f"mount --bind {shlex.quote(str(paths.root / 'run'))} /run/libvirt" in script
    assert script.endswith('exec "$@"') and fresh[-2:] == ["virtlogd", "-d"]
    dead = daemons.namespace_argv(state(daemons=(Daemon("virtlogd", 2**22 + 1, 0),)), paths, ["sshd"])
    assert dead[:4] == ["ip", "netns", "exec", "labkit-h2"]  # nothing runs to join: a new mount namespace


def test_a_running_daemon_is_joined_by_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    paths = SecondHostPaths.for_host("h2")
    monkeypatch.setattr(Daemon, "running", property(lambda self: self.pid == 11))
    argv = daemons.namespace_argv(state(), paths, ["sshd", "-f", "x"])
    assert argv == ["nsenter", "--target=11", "--mount", "--net", "--", "sshd", "-f", "x"]


def test_the_peer_is_host_modes_namespace_when_it_is_up(monkeypatch: pytest.MonkeyPatch) -> None:
    class Up:
        netns = "labkit"
        healthy = True

    monkeypatch.setattr(lifecycle, "host_state", lambda: Up())
    assert lifecycle.default_peer() == "labkit"


def test_without_host_mode_nor_systemd_there_is_no_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "host_state", lambda: None)
    monkeypatch.setattr(lifecycle, "systemd_runs", lambda: False)
    with pytest.raises(HostError, match="host mode is not up") as caught:
        lifecycle.default_peer()
    assert caught.value.hint and "--peer-netns" in caught.value.hint
    monkeypatch.setattr(lifecycle, "systemd_runs", lambda: True)
    assert lifecycle.default_peer() is None  # a workstation: the machine's own namespace


def test_the_cli_keeps_host_mode_options_apart() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["host", "up", "--peer-netns", "side"])
    assert result.exit_code == 2 and "--peer-netns goes with --name" in result.output
    result = runner.invoke(app, ["host", "up", "--name", "h2", "--netns", "other"])
    assert result.exit_code == 2 and "--netns is host mode's" in result.output
    result = runner.invoke(app, ["host", "up", "--name", "local"])
    assert result.exit_code == 2 and "cannot name a second host" in result.output


def test_status_of_a_host_that_is_not_up() -> None:
    result = CliRunner().invoke(app, ["host", "status", "--name", "h2"])
    assert result.exit_code == 0 and "second host h2 is not up" in result.output
    result = CliRunner().invoke(app, ["host", "down", "--name", "h2"])
    assert result.exit_code == 0 and "nothing to do" in result.output
