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


def _expected_host(want: Expectations) -> str | None:
    """The host of the endpoint flanneld.conf should name (etcd's lab IP), when the scenario gives it."""
    return urlsplit(want.etcd_endpoint).hostname if want.etcd_endpoint else None


def _name_problem(host: str, resolved: list[str], etcd_ip: str | None) -> tuple[str, Text] | None:
    """Why flanneld on this node would not reach etcd through ``host``: (evidence, problem), or None when the
    name resolves here to etcd's own IP (this flanneld then leases as with the IP: seen on a real lab)."""
    if not resolved or not _is_ip(resolved[0]):
        return f"{host} does not resolve here", Text("does not resolve", "名前解決できません")
    first = resolved[0]
    if ipaddress.ip_address(first).is_loopback:
        return (
            f"{host} resolves here to {first} (loopback: this node itself)",
            Text(
                f"resolves to {first}, this node's own loopback address",
                f"このノード自身のループバック {first} になります",
            ),
        )
    if etcd_ip is not None and first != etcd_ip:
        return (
            f"{host} resolves here to {first}, not etcd's {etcd_ip}",
            Text(
                f"resolves to {first}, not etcd's {etcd_ip}", f"etcd の {etcd_ip} ではなく {first} になります"
            ),
        )
    return None


def endpoint_findings(facts: Facts, want: Expectations) -> list[Finding]:
    found: list[Finding] = []
    etcd_ip = _expected_host(want)
    for value in facts.flags.get("etcd-endpoints", []):
        for endpoint in filter(None, (e.strip() for e in value.split(","))):
            has_scheme = "://" in endpoint
            if not has_scheme:
                found.append(Finding(ENDPOINT_NO_SCHEME, f"-etcd-endpoints={value}", {"endpoint": endpoint}))
            host = urlsplit(endpoint if has_scheme else f"http://{endpoint}").hostname or ""
            if not host or _is_ip(host):
                continue
            # the facts script resolves the first endpoint's host only
            if host != (urlsplit(facts.endpoint_queried).hostname or host):
                continue
            resolved = facts.resolved.split()
            problem = _name_problem(host, resolved, etcd_ip)
            if problem is None:
                continue
            seen, why = problem
            # flanneld's line names the lookup, or the address it dialled
            markers = [f"lookup {host}", *(f"{address}:" for address in resolved[:1])]
            evidence = facts.with_flanneld(f"-etcd-endpoints={value}; {seen}", *markers)
            suggest = want.etcd_endpoint or "http://ETCD_IP:2379"
            found.append(
                Finding(HOSTNAME_ENDPOINT, evidence, {"host": host, "problem": why, "suggest": suggest})
            )
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
        return [Finding(WRONG_IFACE, _with_iface_line(evidence, facts), {**values, "problem": problem})]
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
    return [Finding(WRONG_IFACE, _with_iface_line(evidence, facts), {**values, "problem": problem})]


def _with_iface_line(evidence: str, facts: Facts) -> str:
    """The evidence, with flanneld's own word on the NIC it took (the address it announces) when logged."""
    return f"{evidence}; flanneld: {facts.iface_line}" if facts.iface_line else evidence
