"""``pod_ips``: every pod a label selector matches has an IP inside a network (the pod network).

Pods created before the pod network existed keep the address Docker's bridge gave them (172.17.0.x on every
node) after kubelet restarts with a CNI plugin, because kubelet keeps a running pod's sandbox: such pods
answer on their own node only. A pod being deleted is ignored (the Deployment already replaces it); a pod with
no IP yet fails the check, since it is not serving.
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import field_validator

from labkit.kinds.checks.base import CheckArgs, CheckKind, Conn, last_line, q, run, templated

_SELECTOR_RE = re.compile(r"^[A-Za-z0-9_./=,!-]+$")
NONE = "<none>"  # what kubectl's custom-columns print for an absent field
SHOWN = 4  # pods named in the output, at most


class PodIpsArgs(CheckArgs):
    selector: str
    network: str
    kubeconfig: str
    namespace: str = "default"

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        if not templated(value) and not _SELECTOR_RE.match(value):
            raise ValueError(f"{value!r} is not a label selector like app=hello-world")
        return value

    @field_validator("network")
    @classmethod
    def _network(cls, value: str) -> str:
        if not templated(value):
            try:
                ipaddress.ip_network(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a network like 10.0.0.0/16") from None
        return value


def parse_pods(stdout: str) -> list[tuple[str, str, str, bool]]:
    """(name, node, IP, being deleted) per line of ``custom-columns=NAME,NODE,IP,DELETING --no-headers``."""
    pods = []
    for line in stdout.splitlines():
        fields = line.split()
        if len(fields) == 4:
            name, node, ip, deleting = fields
            pods.append((name, node, ip, deleting != NONE))
    return pods


class PodIps(CheckKind):
    """``kubectl get pod -l SELECTOR``: each pod's IP lies in ``network``."""

    kind = "pod_ips"
    args_model = PodIpsArgs
    args: PodIpsArgs

    def script(self) -> str:
        a = self.args
        columns = (
            "NAME:.metadata.name,NODE:.spec.nodeName,IP:.status.podIP,DELETING:.metadata.deletionTimestamp"
        )
        return (
            f"kubectl --kubeconfig {q(a.kubeconfig)} -n {q(a.namespace)} get pod -l {q(a.selector)}"
            f" -o custom-columns={columns} --no-headers"
        )

    def probe(self, conn: Conn) -> tuple[bool, str]:
        a = self.args
        result = run(conn, self.script())
        if result.exited != 0:
            return False, f"kubectl failed (exit {result.exited}): {last_line(result.stderr + result.stdout)}"
        network = ipaddress.ip_network(a.network)
        pods = [p for p in parse_pods(result.stdout) if not p[3]]
        if not pods:
            return False, f"no pod matches {a.selector} in namespace {a.namespace}"
        outside = []
        for name, node, ip, _ in pods:
            try:
                inside = ip != NONE and ipaddress.ip_address(ip) in network
            except ValueError:
                inside = False
            if not inside:
                outside.append(f"{name} on {node} has {'no IP yet' if ip == NONE else ip}")
        if not outside:
            return True, f"{len(pods)} pods, every IP in {network}"
        shown = "; ".join(outside[:SHOWN]) + (
            f"; {len(outside) - SHOWN} more" if len(outside) > SHOWN else ""
        )
        return False, f"{len(outside)} of {len(pods)} pods outside {network}: {shown}"
