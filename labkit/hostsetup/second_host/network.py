"""A second host's network: its own namespace, and a veth pair to labkit's namespace over a /30."""

from __future__ import annotations

import logging
import subprocess

from labkit.hostsetup.processes import netns_exists, run_tool
from labkit.hostsetup.second_host.addresses import in_netns
from labkit.hostsetup.second_host.record import SecondHostState

log = logging.getLogger(__name__)

UPLINK = "lk-uplink"
"""The veth end inside the second host's namespace."""


def create_netns(name: str) -> bool:
    """Create network namespace ``name`` with ``lo`` up; False when it was there already (then it is used)."""
    created = False
    if not netns_exists(name):
        run_tool(["ip", "netns", "add", name], f"ip netns add {name}")
        created = True
    run_tool(in_netns(name, ["ip", "link", "set", "lo", "up"]), f"bringing up lo in {name}")
    return created


def link_exists(netns: str | None, name: str) -> bool:
    cmd = in_netns(netns, ["ip", "link", "show", "dev", name])
    return subprocess.run(cmd, capture_output=True, timeout=30, check=False).returncode == 0


def connect(state: SecondHostState, peer_veth: str) -> None:
    """The veth pair between labkit's namespace and the host's, each end with its address of the /30."""
    prefix = state.network.prefixlen
    peer = state.peer_netns
    if not link_exists(state.netns, UPLINK):
        if link_exists(peer, peer_veth):  # half of an interrupted earlier up
            run_tool(in_netns(peer, ["ip", "link", "delete", peer_veth]), f"ip link delete {peer_veth}")
        add = ["ip", "link", "add", peer_veth, "type", "veth", "peer", "name", UPLINK, "netns", state.netns]
        run_tool(in_netns(peer, add), f"creating veth {peer_veth}")
    steps = [
        (peer, ["ip", "addr", "replace", f"{state.peer_address}/{prefix}", "dev", peer_veth]),
        (peer, ["ip", "link", "set", peer_veth, "up"]),
        (state.netns, ["ip", "addr", "replace", f"{state.address}/{prefix}", "dev", UPLINK]),
        (state.netns, ["ip", "link", "set", UPLINK, "up"]),
    ]
    for netns, cmd in steps:
        run_tool(in_netns(netns, cmd), " ".join(cmd))


def disconnect(state: SecondHostState, peer_veth: str) -> None:
    """Remove the veth pair (deleting either end deletes both) and the namespace if ``up`` created it."""
    peer = state.peer_netns
    if (peer is None or netns_exists(peer)) and link_exists(peer, peer_veth):
        run_tool(in_netns(peer, ["ip", "link", "delete", peer_veth]), f"ip link delete {peer_veth}")
    if state.created_netns and netns_exists(state.netns):
        run_tool(["ip", "netns", "delete", state.netns], f"ip netns delete {state.netns}")
    elif netns_exists(state.netns):
        log.info("leaving network namespace %s: it was there before `host up`", state.netns)
