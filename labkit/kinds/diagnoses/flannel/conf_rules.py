"""Findings in flanneld.conf's flags: the etcd endpoints it names, and the NIC it makes flanneld use."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from labkit.kinds.diagnoses.finding import Finding, Text
from labkit.kinds.diagnoses.flannel.expectations import Expectations
from labkit.kinds.diagnoses.flannel.facts import Facts
from labkit.kinds.diagnoses.flannel.findings import ENDPOINT_NO_SCHEME, HOSTNAME_ENDPOINT, WRONG_IFACE


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def endpoint_findings(facts: Facts, want: Expectations) -> list[Finding]:
    found: list[Finding] = []
    for value in facts.flags.get("etcd-endpoints", []):
        for endpoint in filter(None, (e.strip() for e in value.split(","))):
            has_scheme = "://" in endpoint
            if not has_scheme:
                found.append(Finding(ENDPOINT_NO_SCHEME, f"-etcd-endpoints={value}", {"endpoint": endpoint}))
            host = urlsplit(endpoint if has_scheme else f"http://{endpoint}").hostname or ""
            if host and not _is_ip(host):
                resolved = facts.resolved.split()
                evidence = f"-etcd-endpoints={value}"
                if resolved and _is_ip(resolved[0]):
                    evidence += f"; {host} resolves here to {resolved[0]}"
                    if resolved[0].startswith("127."):
                        evidence += " (loopback: this node itself)"
                else:
                    evidence += f"; {host} does not resolve here"
                suggest = want.etcd_endpoint or "http://ETCD_IP:2379"
                found.append(Finding(HOSTNAME_ENDPOINT, evidence, {"host": host, "suggest": suggest}))
    return found


def iface_findings(facts: Facts, want: Expectations) -> list[Finding]:
    if facts.conf is None or not facts.addresses:
        return []
    lab_iface = next(
        (nic for nic, ips in facts.addresses.items() if want.lab_ip is not None and want.lab_ip in ips), None
    )
    nics = {nic: ips for nic, ips in facts.addresses.items() if nic != "lo"}
    chosen = facts.flags.get("iface", [])
    listing = ", ".join(f"{nic} {'/'.join(ips)}" for nic, ips in sorted(nics.items()))
    values: dict[str, str | Text] = {
        "lab_iface": lab_iface or "LAB_NIC",
        "lab_ip": want.lab_ip or Text("the lab IP", "ラボの IP"),
    }
    if not chosen:
        if len(nics) < 2:
            return []
        default = facts.default_iface or "?"
        problem = Text(
            f"no -iface: flanneld takes the default route's NIC, {default}",
            f"-iface が無く、flanneld はデフォルトルートの NIC {default} を使います",
        )
        if lab_iface is not None and default == lab_iface:
            return []
        evidence = f"no -iface in flanneld.conf; default route via {default}; NICs: {listing}"
        return [Finding(WRONG_IFACE, evidence, {**values, "problem": problem})]
    if lab_iface is not None:
        if lab_iface in chosen or want.lab_ip in chosen:
            return []
        problem = Text(
            f"-iface={','.join(chosen)}, but {want.lab_ip} is on {lab_iface}",
            f"-iface={','.join(chosen)} ですが、{want.lab_ip} は {lab_iface} にあります",
        )
    else:
        unknown = [c for c in chosen if c not in facts.addresses and not _is_ip(c)]
        if not unknown:
            return []
        problem = Text(
            f"-iface={','.join(unknown)} names no NIC of this node",
            f"-iface={','.join(unknown)} はこのノードの NIC ではありません",
        )
    evidence = f"-iface={','.join(chosen)}; NICs: {listing}"
    return [Finding(WRONG_IFACE, evidence, {**values, "problem": problem})]
