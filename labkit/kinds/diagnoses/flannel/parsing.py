"""Turning the facts script's output into :class:`Facts`: its sections, flanneld's flags, etcd's answers."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from labkit.kinds.checks.base import sections
from labkit.kinds.diagnoses.flannel.facts import GLOG_PREFIX, EtcdRead, Facts
from labkit.kinds.diagnoses.flannel.script import ABSENT, RC

VALUE_FLAGS = {"etcd-endpoints", "iface", "etcd-prefix", "public-ip", "kube-api-url", "kubeconfig-file"}


def parse_flags(conf: str) -> dict[str, list[str]]:
    """flanneld's flags in an EnvironmentFile (``FLANNEL_OPTS=" \\ -iface=eth1 \\ "``): name -> values."""
    text = conf.replace("\\\n", " ")
    tokens = [t for t in re.split(r"[\s\"']+", text) if t and t != "\\"]
    flags: dict[str, list[str]] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("-"):
            continue
        name, eq, value = token.lstrip("-").partition("=")
        if not eq and name in VALUE_FLAGS and i < len(tokens) and not tokens[i].startswith("-"):
            value, i = tokens[i], i + 1
        flags.setdefault(name, []).append(value if eq or name in VALUE_FLAGS else "true")
    return flags


def _rc(text: str) -> tuple[str, int | None]:
    """A section's output without its ``@@rc N`` line, and N."""
    lines = text.splitlines()
    if lines and lines[-1].startswith(RC):
        code = lines[-1][len(RC) :].strip()
        return "\n".join(lines[:-1]).strip(), int(code) if code.lstrip("-").isdigit() else None
    return text.strip(), None


def _last(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _read_etcdctl(api: int, text: str, key: str) -> EtcdRead:
    out, code = _rc(text)
    if "response is invalid json" in out:
        return EtcdRead("v2-off", detail=_last(out))
    if code is None:
        return EtcdRead("unknown", detail=_last(out))
    if api == 2:
        if code == 0 and out:
            return EtcdRead("present", out)
        if "Key not found" in out:
            return EtcdRead("absent", detail=_last(out))
        return EtcdRead("error", detail=_last(out) or f"exit {code}")
    if code != 0:
        return EtcdRead("error", detail=_last(out) or f"exit {code}")
    lines = out.splitlines()
    if lines and lines[0].strip() == key:  # v3 get prints the key, then the value
        return EtcdRead("present", "\n".join(lines[1:]).strip())
    return EtcdRead("absent", detail="no such key") if not out else EtcdRead("error", detail=_last(out))


def _read_http(api: int, text: str) -> EtcdRead:
    out, code = _rc(text)
    if code is None:
        return EtcdRead("unknown", detail=_last(out))
    if code != 0:
        return EtcdRead("error", detail=_last(out) or f"curl exit {code}")
    if api == 2 and out.startswith("404 page not found"):
        # what etcd >= 3.4 answers on /v2/ with v2 off; etcdctl shows it as "response is invalid json"
        return EtcdRead("v2-off", detail=f"GET /v2/keys: {out}")
    try:
        data: Any = json.loads(out)
    except ValueError:
        return EtcdRead("error", detail=_last(out))
    if not isinstance(data, dict):
        return EtcdRead("error", detail=_last(out))
    if api == 2:
        node = data.get("node")
        if isinstance(node, dict) and "value" in node:
            return EtcdRead("present", str(node["value"]))
        if data.get("errorCode") == 100:
            return EtcdRead("absent", detail=str(data.get("message", "Key not found")))
        return EtcdRead("error", detail=_last(out))
    kvs = data.get("kvs")
    if isinstance(kvs, list) and kvs and isinstance(kvs[0], dict):
        return EtcdRead("present", base64.b64decode(str(kvs[0].get("value", ""))).decode(errors="replace"))
    if "header" in data:
        return EtcdRead("absent", detail="no such key")
    return EtcdRead("error", detail=_last(out))


def parse_facts(stdout: str, key: str) -> Facts:
    """The facts script's output, section by section; a section missing or unreadable stays unknown."""
    parts = sections(stdout)
    facts = Facts()
    conf = parts.get("conf")
    facts.conf_missing = conf == ABSENT
    if conf is not None and conf != ABSENT:
        facts.conf = conf
        facts.flags = parse_flags(conf)
    facts.endpoint_queried = parts.get("endpoint", "")
    facts.resolved = parts.get("resolve", "")
    facts.etcd_tool = parts.get("etcd-tool", "none").strip() or "none"
    if facts.etcd_tool == "etcdctl":
        facts.v2 = _read_etcdctl(2, parts.get("etcd-v2", ""), key)
        facts.v3 = _read_etcdctl(3, parts.get("etcd-v3", ""), key)
    elif facts.etcd_tool == "curl":
        facts.v2 = _read_http(2, parts.get("etcd-v2", ""))
        facts.v3 = _read_http(3, parts.get("etcd-v3", ""))
    for line in parts.get("addr", "").splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == "inet":
            facts.addresses.setdefault(fields[1].split("@")[0], []).append(fields[3].split("/")[0])
    route = parts.get("default-route", "").split()
    if "dev" in route and route.index("dev") + 1 < len(route):
        facts.default_iface = route[route.index("dev") + 1]
    cni_bin, code = _rc(parts.get("cni-bin", ""))
    if code == 0:
        facts.cni_bin = [line.strip() for line in cni_bin.splitlines() if line.strip()]
    elif code is not None and "No such file" in cni_bin:
        facts.cni_bin_dir_missing = True
    facts.cni_listed = "cni-bin" in parts
    facts.cni_confs = {
        name.removeprefix("cni-conf ").strip(): text
        for name, text in parts.items()
        if name.startswith("cni-conf ")
    }
    for fact, section in (("flanneld_version", "flanneld-version"), ("kubelet_version", "kubelet-version")):
        text = parts.get(section, "")
        if text and text != ABSENT:
            setattr(facts, fact, text.strip())
    kubelet_conf = parts.get("kubelet-conf")
    facts.kubelet_conf = None if kubelet_conf in (None, ABSENT) else kubelet_conf
    facts.unit = dict(
        line.split("=", 1) for line in parts.get("flanneld-unit", "").splitlines() if "=" in line
    )
    binary = parts.get("flanneld-binary", "").strip()
    if binary.startswith(ABSENT):
        facts.flanneld_absent = binary.removeprefix(ABSENT).strip()
    elif binary:
        facts.flanneld_binary = binary
    facts.iface_line = GLOG_PREFIX.sub("", parts.get("journal-iface", "").strip())
    facts.journal = [
        line
        for line in parts.get("journal", "").splitlines()
        if line.strip() and not line.startswith(("-- ", "No journal files"))
    ]
    return facts
