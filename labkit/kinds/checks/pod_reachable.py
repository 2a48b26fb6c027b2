"""``pod_reachable``: from a pod's network namespace on the node, ping an IP (a pod on another node).

The pod is a network namespace a CNI plugin made (``ip netns`` names it). When the ping fails the check also
reports the node's route to the target (``ip route get``), the pod's own route, and whether the namespace
exists at all: a pod network across nodes fails most often because a route (or flannel's lease) is missing.
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import Field, field_validator

from labkit.kinds.checks.base import (
    SECTION,
    CheckArgs,
    CheckKind,
    Conn,
    first_line,
    last_line,
    q,
    run,
    sections,
    templated,
)

_NETNS_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


class PodReachableArgs(CheckArgs):
    netns: str
    target: str
    count: int = Field(default=3, ge=1, le=20)
    timeout: float = Field(default=2.0, gt=0, le=30)

    @field_validator("netns")
    @classmethod
    def _netns_name(cls, value: str) -> str:
        if not templated(value) and (not _NETNS_RE.match(value) or value in (".", "..")):
            raise ValueError(f"{value!r} is not a network namespace name (letters, digits, '_', '.', '-')")
        return value

    @field_validator("target")
    @classmethod
    def _ip(cls, value: str) -> str:
        if not templated(value):
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address (a pod's IP)") from None
        return value


class PodReachable(CheckKind):
    """``ip netns exec NETNS ping -c COUNT -W TIMEOUT TARGET`` answers."""

    kind = "pod_reachable"
    args_model = PodReachableArgs
    args: PodReachableArgs

    def _script(self) -> str:
        a = self.args
        ns, target = q(a.netns), q(a.target)
        return "\n".join(
            [
                f"echo '{SECTION}ping'",
                f"ip netns exec {ns} ping -n -c {a.count} -W {a.timeout:g} {target} 2>&1",
                "rc=$?",
                f"echo '{SECTION}exit'; echo $rc",
                'if [ "$rc" -ne 0 ]; then',
                f"  echo '{SECTION}netns'; if [ -e /run/netns/{ns} ]; then echo present; else echo absent; fi",
                f"  echo '{SECTION}node-route'; ip route get {target} 2>&1",
                f"  echo '{SECTION}pod-route'; ip netns exec {ns} ip route get {target} 2>&1",
                "fi",
                "exit 0",
            ]
        )

    def probe(self, conn: Conn) -> tuple[bool, str]:
        a = self.args
        result = run(conn, self._script())
        parts = sections(result.stdout)
        if "exit" not in parts:
            return False, f"cannot probe (exit {result.exited}): {last_line(result.stderr + result.stdout)}"
        ping = parts.get("ping", "")
        loss = next((line.strip() for line in ping.splitlines() if "packet loss" in line), "")
        ok = parts["exit"].strip() == "0"
        seen = f"{a.netns} -> {a.target}: {loss or last_line(ping) or 'no output'}"
        if ok:
            return True, seen
        extra = []
        if parts.get("netns") == "absent":
            extra.append(f"no network namespace {a.netns} on this node (ip netns list)")
        node_route = first_line(parts.get("node-route", ""), 160)
        if node_route:
            extra.append(f"node route: {node_route}")
        pod_route = first_line(parts.get("pod-route", ""), 160)
        if pod_route and parts.get("netns") != "absent":
            extra.append(f"pod route: {pod_route}")
        return False, "; ".join([seen, *extra])
