"""The node configuration script and how its output is read (pure; the vm tests run it for real)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

from labkit.kinds.compile import load_scenario
from labkit.machines.guest import configure_script, hosts_file, networkd_file, parse_output, remote_command


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


def _run_hostkey_script(tmp_path: Path) -> Path:
    from labkit.machines.guest import HOSTKEY_SCRIPT_TEXT

    key = tmp_path / "ssh_host_ed25519_key"
    script = HOSTKEY_SCRIPT_TEXT.replace("/etc/ssh/ssh_host_ed25519_key", str(key))
    subprocess.run(["sh", "-c", script], check=True)
    return key


def test_hostkey_script_remakes_an_empty_key_and_keeps_a_good_one(tmp_path: Path) -> None:
    """The power cut's leftovers: a 0-byte key (and .pub) is made again; a good key is never replaced, a lost
    .pub is derived from it."""
    key = tmp_path / "ssh_host_ed25519_key"
    key.write_bytes(b"")
    key.with_suffix(".pub").write_bytes(b"")
    _run_hostkey_script(tmp_path)
    assert key.stat().st_size > 0 and key.with_suffix(".pub").read_text().startswith("ssh-ed25519 ")
    private, public = key.read_bytes(), key.with_suffix(".pub").read_text().split()[:2]
    key.with_suffix(".pub").write_bytes(b"")
    _run_hostkey_script(tmp_path)
    assert key.read_bytes() == private
    assert key.with_suffix(".pub").read_text().split()[:2] == public
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]


def test_node_setup_installs_the_hostkey_dropin() -> None:
    from labkit.machines.guest import HOSTKEY_DROPIN, HOSTKEY_DROPIN_TEXT, HOSTKEY_SCRIPT

    s = load_scenario("three-node")
    script = configure_script(s.nodes[0], s, "52:54:00:aa:bb:cc", "ssh-ed25519 AAAA labkit-x")
    assert HOSTKEY_DROPIN in script and HOSTKEY_SCRIPT in script
    assert "ConditionPathExists=\n" in HOSTKEY_DROPIN_TEXT  # resets the box's "exists" condition
    assert "ConditionFileNotEmpty=|!/etc/ssh/ssh_host_ed25519_key\n" in HOSTKEY_DROPIN_TEXT
