"""The diagnosis of one node: every finding its facts give evidence of, and a one-line summary of what was seen."""

from __future__ import annotations

from labkit.kinds.diagnoses.finding import Finding
from labkit.kinds.diagnoses.flannel.cni_rules import cni_findings, kubelet_findings
from labkit.kinds.diagnoses.flannel.conf_rules import endpoint_findings, iface_findings
from labkit.kinds.diagnoses.flannel.etcd_rules import etcd_findings, flannel_api
from labkit.kinds.diagnoses.flannel.expectations import Expectations
from labkit.kinds.diagnoses.flannel.facts import Facts
from labkit.kinds.diagnoses.flannel.findings import FLANNELD_CONF_MISSING
from labkit.kinds.diagnoses.flannel.unit_rules import unit_findings


def diagnose(facts: Facts, want: Expectations) -> list[Finding]:
    """Every finding the facts give evidence of, in the order a trainee should fix them."""
    found: list[Finding] = []
    if facts.conf_missing:
        found.append(
            Finding(FLANNELD_CONF_MISSING, f"{want.conf_path}: no such file", {"path": want.conf_path})
        )
    found += endpoint_findings(facts, want)
    found += etcd_findings(facts, want)
    found += iface_findings(facts, want)
    found += cni_findings(facts)
    found += kubelet_findings(facts, want)
    found += unit_findings(facts, want)
    return found


def summary(facts: Facts, want: Expectations) -> str:
    """What was seen, in one line, for a node with no finding (or to go with the findings)."""
    unit = facts.unit
    parts = [
        f"flanneld {unit.get('ActiveState', 'unknown')}, {unit.get('NRestarts', '?')} restarts"
        if unit.get("LoadState") != "not-found"
        else "no flanneld unit"
    ]
    if facts.conf is not None:
        endpoints = ",".join(facts.flags.get("etcd-endpoints", [])) or "(default)"
        parts.append(
            f"-etcd-endpoints={endpoints} -iface={','.join(facts.flags.get('iface', [])) or '(none)'}"
        )
    api, _ = flannel_api(facts, want)
    reads = {2: facts.v2, 3: facts.v3}
    shown = [api] if api is not None else [2, 3]
    for a in shown:
        read = reads[a]
        if read.state != "unknown":
            parts.append(f"etcd v{a} {want.key} {read.state}" + (f" ({read.detail})" if read.detail else ""))
    if facts.etcd_tool == "none":
        parts.append("etcd not queried (no etcdctl or curl)")
    if facts.cni_bin is not None:
        parts.append(f"{len(facts.cni_bin)} CNI plugins")
    if facts.cni_confs:
        parts.append(f"CNI conf {', '.join(sorted(facts.cni_confs))}")
    return "; ".join(parts)
