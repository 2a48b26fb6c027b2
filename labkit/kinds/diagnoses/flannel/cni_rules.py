"""Findings in the node's CNI setup: the plugins in /opt/cni/bin, the confs, and the kubelet's CNI flags."""

from __future__ import annotations

import json
import re

from labkit.kinds.diagnoses.finding import Finding, Text
from labkit.kinds.diagnoses.flannel.expectations import Expectations, version_tuple
from labkit.kinds.diagnoses.flannel.facts import Facts
from labkit.kinds.diagnoses.flannel.findings import (
    CNI_BINARIES_MISSING,
    CNI_CONF_INVALID,
    CNI_CONF_MISSING,
    NETWORK_PLUGIN_REMOVED,
)

CNI_BINARIES = ("bridge", "host-local", "loopback", "flannel")


def cni_findings(facts: Facts) -> list[Finding]:
    found: list[Finding] = []
    if facts.cni_bin is not None or facts.cni_bin_dir_missing:
        present = set(facts.cni_bin or [])
        missing = [b for b in CNI_BINARIES if b not in present]
        if missing:
            evidence = (
                "/opt/cni/bin does not exist"
                if facts.cni_bin_dir_missing
                else f"ls /opt/cni/bin: {' '.join(sorted(present)) or '(empty)'}"
            )
            found.append(Finding(CNI_BINARIES_MISSING, evidence, {"missing": ", ".join(missing)}))
    for path, text in sorted(facts.cni_confs.items()):
        try:
            conf = json.loads(text)
        except json.JSONDecodeError as exc:
            problem = Text(
                f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                f"JSON として不正です: {exc.lineno} 行 {exc.colno} 桁目 ({exc.msg})",
            )
            line = (
                text.splitlines()[exc.lineno - 1].strip() if 0 < exc.lineno <= len(text.splitlines()) else ""
            )
            evidence = f"{path} line {exc.lineno}: {line}" if line else f"{path}: {exc.msg}"
            found.append(Finding(CNI_CONF_INVALID, evidence, {"path": path, "problem": problem}))
            continue
        if not isinstance(conf, dict):
            found.append(
                Finding(
                    CNI_CONF_INVALID,
                    f"{path}: {text.strip()[:80]}",
                    {"path": path, "problem": Text("not a JSON object", "JSON のオブジェクトではありません")},
                )
            )
        elif not conf.get("cniVersion"):
            problem = Text(
                "no cniVersion (read as 0.1.0, which current plugins may refuse)",
                "cniVersion がありません (0.1.0 と解釈され、最近のプラグインは受け付けないことがあります)",
            )
            evidence = f"{path} keys: {', '.join(conf)}"
            found.append(Finding(CNI_CONF_INVALID, evidence, {"path": path, "problem": problem}))
    if facts.cni_listed and not facts.cni_confs:
        found.append(Finding(CNI_CONF_MISSING, "ls /etc/cni/net.d: no file"))
    return found


def kubelet_findings(facts: Facts, want: Expectations) -> list[Finding]:
    if facts.kubelet_conf is None:
        return []
    shown = facts.kubelet_version or want.kubernetes_version
    version = version_tuple(shown)
    if version is None or version < (1, 24):
        return []
    flags = sorted(set(re.findall(r"--(?:network-plugin|cni-conf-dir|cni-bin-dir)\b", facts.kubelet_conf)))
    if not flags:
        return []
    origin = "kubelet --version" if facts.kubelet_version else "the scenario's Kubernetes version"
    kubelet = "v" + ".".join(str(v) for v in version)
    evidence = f"{kubelet} ({origin}); kubelet.conf has {', '.join(flags)}"
    return [Finding(NETWORK_PLUGIN_REMOVED, evidence, {"flags": ", ".join(flags), "kubelet": kubelet})]
