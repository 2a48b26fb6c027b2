"""Trainee labs on another host: their bundle and gateway line go through a relay's loopback port, and the relay
keeps its ports and is stopped by its PID only (pure text and files; the vm test runs a real relay)."""

from __future__ import annotations

import json
import subprocess
import sys

from labkit.classroom.access_paths import AccessPaths
from labkit.classroom.bundle_text import Endpoint, TraineeLab, authorized_keys_line, ssh_config_text
from labkit.classroom.relays import relay_ports, running_relay, stop_relays

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx3ZfakekeyfakekeyfakekeyfakekeyfakekeyfakekeyX root@laptop"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGatewayhostkeygatewayhostkeygatewayhostkeyAB"
REMOTE = TraineeLab(
    "carol",
    "k8s-carol",
    {"node1": "172.29.9.11", "node2": "172.29.9.12"},
    host="h2",
    relay_ports={"node1": 40101, "node2": 40102},
)


def test_a_relayed_trainee_key_opens_its_own_relay_ports_only() -> None:
    line = authorized_keys_line("k8s", REMOTE, KEY)
    assert 'permitopen="127.0.0.1:40101",permitopen="127.0.0.1:40102"' in line
    assert "172.29.9.11" not in line and line.startswith("restrict,port-forwarding,")


def test_a_relayed_node_is_reached_on_the_gateways_loopback_with_its_own_host_key() -> None:
    text = ssh_config_text("k8s", REMOTE, Endpoint("203.0.113.7", 2222, HOST_KEY), "~/labkit-k8s")
    node1 = text.split("Host node1\n")[1].split("\n\n")[0]
    assert "  HostName 127.0.0.1\n  Port 40101\n" in node1
    assert "  ProxyJump labkit-gateway" in node1 and "  HostKeyAlias node1" in node1


def test_relay_ports_are_kept_for_known_nodes_and_new_ones_get_free_ports() -> None:
    paths = AccessPaths.for_class("k8s")
    paths.gateway.mkdir(parents=True)
    (paths.gateway / "relay-h2.json").write_text(json.dumps({"172.29.9.11": 40101}))
    ports = relay_ports(paths, "h2", ["172.29.9.11", "172.29.9.12"])
    assert ports["172.29.9.11"] == 40101
    assert 1024 < ports["172.29.9.12"] < 65536 and ports["172.29.9.12"] != 40101


def test_a_pid_file_naming_another_process_is_not_taken_for_a_relay() -> None:
    paths = AccessPaths.for_class("k8s")
    paths.gateway.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (paths.gateway / "relay-h2.pid").write_text(f"{other.pid}\n")
        assert running_relay(paths, "h2") is None
        assert stop_relays(paths) == []
        assert other.poll() is None  # not stopped: its command line names no relay log of this class
    finally:
        other.kill()
        other.wait()
