"""The node configuration script and how its output is read (pure; the vm tests run it for real)."""

from __future__ import annotations

import base64
import subprocess

from labkit.guest import configure_script, hosts_file, networkd_file, parse_output, remote_command
from labkit.scenario import load_scenario


def test_hosts_file_lists_every_node_by_lab_ip() -> None:
    text = hosts_file(load_scenario("three-node"))
    assert "192.168.56.11\tnode1" in text
    assert "192.168.56.13\tnode3" in text
    assert "127.0.1.1" not in text


def test_networkd_matches_by_mac_with_prefix() -> None:
    s = load_scenario("three-node")
    text = networkd_file(s.nodes[1], s, "52:54:00:aa:bb:cc")
    assert "MACAddress=52:54:00:aa:bb:cc" in text
    assert "Address=192.168.56.12/24" in text


def test_script_is_valid_bash_and_travels_as_one_command() -> None:
    s = load_scenario("three-node")
    script = configure_script(s.nodes[0], s, "52:54:00:aa:bb:cc", "ssh-ed25519 AAAA labkit-x")
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    command = remote_command(script)
    assert command.endswith("| base64 -d | sudo bash")
    assert base64.b64decode(command.split()[1]).decode() == script


def test_parse_output() -> None:
    result = parse_output("node1", "changed hostname\niface eth1\nchanged /etc/hosts\n")
    assert result.changed == ["hostname", "/etc/hosts"]
    assert result.iface == "eth1"
    assert parse_output("node1", "iface eth1\n").changed == []
