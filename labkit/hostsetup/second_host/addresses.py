"""The small subnet that links a second host to labkit's network namespace: a /30 out of 10.251.0.0/24, one
per host, clear of every other second host and of every address and route on labkit's side."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterable

from labkit.errors import HostError

HOST_RANGE = ipaddress.IPv4Network("10.251.0.0/24")
PREFIX = 30

Net = ipaddress.IPv4Network


def pick_subnet(taken: Iterable[Net], preferred: Net | None = None) -> Net:
    """``preferred`` (the host's subnet last time: its URI stays valid) when it is free, else the first free
    /30 of the range."""
    busy = list(taken)
    candidates = list(HOST_RANGE.subnets(new_prefix=PREFIX))
    if preferred is not None and preferred in candidates:
        candidates.insert(0, preferred)
    for subnet in candidates:
        if not any(subnet.overlaps(other) for other in busy):
            return subnet
    raise HostError(
        f"no free /{PREFIX} left in {HOST_RANGE} for another second host",
        hint="stop a second host you no longer use (`labkit host down --name NAME`)",
    )


def in_netns(netns: str | None, cmd: list[str]) -> list[str]:
    """``cmd`` run in network namespace ``netns``; None: in the one labkit runs in."""
    return cmd if netns is None else ["ip", "netns", "exec", netns, *cmd]


def _ip_json(netns: str | None, args: list[str]) -> list[dict[str, object]]:
    cmd = in_netns(netns, ["ip", "-j", "-4", *args])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostError(f"{' '.join(cmd)} failed: {exc}") from exc
    if proc.returncode != 0:
        raise HostError(f"{' '.join(cmd)} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    data = json.loads(proc.stdout or "[]")
    return data if isinstance(data, list) else []


def networks_in_use(netns: str | None) -> list[Net]:
    """The IPv4 subnets of the addresses and routes of a network namespace: a new /30 must clash with none.
    Routes broader than /16 (a VPN's 10.0.0.0/8, the default route) are left out: the /30 is more specific."""
    found: list[Net] = []
    for link in _ip_json(netns, ["addr", "show"]):
        for info in link.get("addr_info", []) or []:  # type: ignore[attr-defined]
            if isinstance(info, dict) and "local" in info:
                found.append(Net(f"{info['local']}/{info.get('prefixlen', 32)}", strict=False))
    for route in _ip_json(netns, ["route", "show", "table", "all"]):
        dst = route.get("dst")
        if isinstance(dst, str) and dst != "default":
            try:
                net = Net(dst, strict=False)
            except ValueError:
                continue
            if net.prefixlen >= 16:
                found.append(net)
    return found
