"""Chapter guides: a stage's instructions for the trainee, in Japanese and English, with this lab's real values.

A guide is a Markdown file named by the stage's ``guide:`` field (``guides/ja/09-flannel.md``, relative to the
scenario's directory), rendered with Jinja2 (``StrictUndefined``: a misspelt variable is an error, never an empty
string; no autoescaping: the output is Markdown and shell, not HTML). Each guide ends with a comprehension checklist
(``## Checklist`` / ``## 理解度チェックリスト``, one ``- [ ]`` item per line) that :func:`checklist` returns as a list.

Variables a guide can use (all built by :func:`guide_context`):

==========================  ===================================================================================
``lab``                     the lab's name (from the lab state; without one, the scenario's name)
``scenario``                the scenario's name
``lab_opt``                 `` --name <lab>`` when the lab's name differs from the scenario's, else empty: for
                            ``labkit ssh node1{{ lab_opt }}``
``nodes``                   node name -> ``{name, ip, roles, lab_iface, pod_subnet, pod_gateway, pod_ip}``,
                            e.g. ``{{ nodes.node1.ip }}``. ``pod_subnet``: the N-th ``/pod_subnet_len`` of
                            ``network.pods`` for the N-th node (node1 of 10.244.0.0/16 -> 10.244.1.0/24), the
                            subnet a scenario that routes pods by hand gives it (flannel leases its own);
                            ``pod_gateway`` its first address (the bridge's), ``pod_ip`` its 10th (one
                            known pod address); all three None when the pod network has no N-th subnet
``node_list``               the same node dicts as a list, in scenario order (for ``{% for node in node_list %}``)
``workers``                 the node dicts with the ``worker`` role, in scenario order
``etcd_node``               the node dict running etcd (first with role ``etcd``; else the first node)
``etcd_ip``                 that node's lab IP
``etcd_endpoint``           ``http://<etcd IP>:2379``: always an IP, never a hostname (see the flannel guide); a
                            node name in ``network.etcd_endpoint`` is written as its IP (labkit.model.endpoints)
``notes``                   what labkit wrote differently from the scenario, and why (printed by solve)
``apiserver_node``          the node dict running kube-apiserver (first with role ``apiserver``; else the first)
``apiserver_ip``            that node's lab IP
``apiserver_url``           ``http://<apiserver IP>:8080``: the course's insecure port
``lab_network``             the lab network's CIDR (``network.lab``)
``lab_iface``               the lab NIC's name in the guests: from the lab state when given, else ``eth1``
``pod_network``             flannel's ``Network`` (``network.pods``)
``pod_subnet_len``          flannel's ``SubnetLen`` (``network.pod_subnet_len``)
``backend``                 ``{type, port}``: flannel's backend; ``port`` is the scenario's or the backend's
                            default (udp 8285, vxlan 8472; ``None`` for host-gw)
``flannel_network_config``  the JSON flannel reads from etcd, as one line: ``{"Network": ..., "SubnetLen": ...,
                            "Backend": {"Type": ..., "Port": ...}}``
``flannel_etcd_prefix``     flanneld's ``-etcd-prefix`` (``/coreos.com/network``); ``flannel_config_key`` its ``/config`` key
``kubeconfig``              the kubeconfig every component and root's kubectl use (``/etc/kubernetes/kubeconfig``)
``flannel_etcd_api``        ``"2"`` for flannel <= 0.17 (etcd v2 API only), ``"3"`` for newer releases; None without flannel
``service_range``           kube-apiserver's ``--service-cluster-ip-range`` (``network.services``)
``kubernetes_service_ip``   the first address of the service range (the ``kubernetes`` Service)
``cluster_dns``             kubelet's ``--cluster-dns`` (``network.cluster_dns``; else the 10th service address)
``cluster_domain``          ``cluster.local``
``versions``                ``{kubernetes, etcd, flannel, cni_plugins, flannel_cni_plugin}`` as strings (no ``v``); None for a component
                            the scenario does not install
``kubelet_cni_flags``       True while kubelet still has ``--network-plugin`` (Kubernetes < 1.24)
``cni_version``             the ``cniVersion`` to write in CNI configs for these CNI plugins
``cni_bin_dir``             ``/opt/cni/bin``
``cni_conf_dir``            ``/etc/cni/net.d``
``nodeport``                the NodePort the course's checks use (30080)
``web_port``                the port the ``images.web`` container listens on
``images``                  ``{pause, web, client, dns}``: the scenario's ``images:`` (None for a role it lacks),
                            the references loaded on the nodes from the host's cache and used by manifests
==========================  ===================================================================================
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from pathlib import Path
from typing import Any

import jinja2

from labkit.errors import LabkitError, UsageError
from labkit.model import sandbox
from labkit.model.endpoints import resolve_etcd_endpoint
from labkit.model.scenario import Network, Node, Scenario, Stage, Versions
from labkit.model.version_guard import flannel_etcd_api, kubelet_takes_cni_flags
from labkit.state import LabState

LANGUAGES = ("ja", "en")
DEFAULT_LAB_IFACE = "eth1"
APISERVER_INSECURE_PORT = 8080
NODEPORT = 30080
CLUSTER_DOMAIN = "cluster.local"
CNI_BIN_DIR = "/opt/cni/bin"
CNI_CONF_DIR = "/etc/cni/net.d"
FLANNEL_ETCD_PREFIX = "/coreos.com/network"
KUBECONFIG = "/etc/kubernetes/kubeconfig"
# flannel's own defaults when the scenario names no port (flannel's Documentation/backends.md).
BACKEND_DEFAULT_PORTS: dict[str, int | None] = {"udp": 8285, "vxlan": 8472, "host-gw": None}
# The port the scenario's ``images.web`` (hello-app: "Hostname: <pod name>" on 8080) listens on.
WEB_PORT = 8080

CHECKLIST_HEADINGS = ("checklist", "理解度チェックリスト")
_HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_ITEM_RE = re.compile(r"^\s*[-*]\s+\[[ xX]\]\s+(.+?)\s*$")

FALLBACK_NOTES = {
    # (asked for, shown instead) -> note, in the language asked for
    ("en", "ja"): "> Note: this chapter has no English guide yet; the Japanese guide follows.\n\n",
    ("ja", "en"): "> 注: この章の日本語ガイドはまだありません。英語版を表示します。\n\n",
}


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.removeprefix("v").split("."))


def _older_than(version: str | None, bound: tuple[int, ...], older: Any, newer: Any) -> Any:
    """``older`` when ``version`` is below ``bound``, else ``newer``; None when the scenario lacks the component."""
    if version is None:
        return None
    return older if _version_tuple(version) < bound else newer


def _role_node(scenario: Scenario, role: str) -> Node:
    found = scenario.nodes_with_role(role)
    return found[0] if found else scenario.nodes[0]


def _lab_iface(lab_state: LabState | None) -> str:
    """The lab NIC's name as the lab state recorded it (the first node that has one), else eth1."""
    if lab_state is not None:
        for node in lab_state.nodes.values():
            if node.lab_iface:
                return node.lab_iface
    return DEFAULT_LAB_IFACE


def _pod_addresses(pods: ipaddress.IPv4Network, subnet_len: int, index: int) -> dict[str, str | None]:
    """``pod_subnet`` (the ``index``-th /subnet_len of ``pods``), ``pod_gateway`` (.1) and ``pod_ip`` (.10)."""
    size = 2 ** (32 - subnet_len)
    if subnet_len < pods.prefixlen or size < 4 or (index + 1) * size > pods.num_addresses:
        return {"pod_subnet": None, "pod_gateway": None, "pod_ip": None}
    subnet = ipaddress.IPv4Network((int(pods.network_address) + index * size, subnet_len))
    return {
        "pod_subnet": str(subnet),
        "pod_gateway": str(subnet[1]),
        "pod_ip": str(subnet[min(10, size - 2)]),
    }


def flannel_network_config(scenario: Scenario) -> dict[str, Any]:
    """The network config flannel reads from etcd (``/coreos.com/network/config``), from the scenario."""
    net = scenario.network
    backend: dict[str, Any] = {"Type": net.backend.type}
    if net.backend.port is not None:
        backend["Port"] = net.backend.port
    return {"Network": net.pods, "SubnetLen": net.pod_subnet_len, "Backend": backend}


def guide_context(scenario: Scenario, lab_state: LabState | None = None) -> dict[str, Any]:
    """Every variable a guide may use (listed in this module's docstring), from the scenario and the lab state."""
    lab_iface = _lab_iface(lab_state)
    return {
        **_lab_names(scenario, lab_state),
        **_topology_values(scenario, _node_values(scenario, lab_state, lab_iface)),
        "lab_network": scenario.network.lab,
        "lab_iface": lab_iface,
        **_flannel_values(scenario),
        **_service_values(scenario.network),
        **_version_values(scenario.versions),
        "kubeconfig": KUBECONFIG,
        "cni_bin_dir": CNI_BIN_DIR,
        "cni_conf_dir": CNI_CONF_DIR,
        "nodeport": NODEPORT,
        "web_port": WEB_PORT,
        "images": scenario.images.model_dump(),
    }


def _lab_names(scenario: Scenario, lab_state: LabState | None) -> dict[str, str]:
    lab = lab_state.lab if lab_state is not None else scenario.name
    return {
        "lab": lab,
        "scenario": scenario.name,
        "lab_opt": f" --name {lab}" if lab != scenario.name else "",
    }


def _node_values(
    scenario: Scenario, lab_state: LabState | None, default_iface: str
) -> dict[str, dict[str, Any]]:
    """Node name -> the node's values, in scenario order; the N-th node (from 1) gets the N-th pod subnet."""
    net = scenario.network
    nodes: dict[str, dict[str, Any]] = {}
    for index, node in enumerate(scenario.nodes, start=1):
        state = lab_state.nodes.get(node.name) if lab_state is not None else None
        nodes[node.name] = {
            "name": node.name,
            "ip": node.ip,
            "roles": list(node.roles),
            "lab_iface": (state.lab_iface if state and state.lab_iface else default_iface),
            **_pod_addresses(net.pod_network, net.pod_subnet_len, index),
        }
    return nodes


def _topology_values(scenario: Scenario, nodes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The nodes, and which of them the workers, etcd and kube-apiserver are (the same dicts as in ``nodes``)."""
    node_list = list(nodes.values())
    apiserver_node = nodes[_role_node(scenario, "apiserver").name]
    return {
        "nodes": nodes,
        "node_list": node_list,
        "workers": [n for n in node_list if "worker" in n["roles"]],
        **_etcd_values(scenario, nodes),
        "apiserver_node": apiserver_node,
        "apiserver_ip": apiserver_node["ip"],
        "apiserver_url": f"http://{apiserver_node['ip']}:{APISERVER_INSECURE_PORT}",
    }


def _etcd_values(scenario: Scenario, nodes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    etcd_name = _role_node(scenario, "etcd").name
    endpoint = resolve_etcd_endpoint(
        scenario.network.etcd_endpoint, {n.name: n.ip for n in scenario.nodes}, etcd_name
    )
    return {
        "etcd_node": nodes[etcd_name],
        "etcd_ip": nodes[etcd_name]["ip"],
        "etcd_endpoint": endpoint.url,
        "notes": [endpoint.note] if endpoint.note else [],
    }


def _flannel_values(scenario: Scenario) -> dict[str, Any]:
    net = scenario.network
    backend_port = (
        net.backend.port if net.backend.port is not None else BACKEND_DEFAULT_PORTS[net.backend.type]
    )
    flannel = scenario.versions.flannel
    return {
        "pod_network": net.pods,
        "pod_subnet_len": net.pod_subnet_len,
        "backend": {"type": net.backend.type, "port": backend_port},
        "flannel_network_config": json.dumps(flannel_network_config(scenario)),
        "flannel_etcd_prefix": FLANNEL_ETCD_PREFIX,
        "flannel_config_key": f"{FLANNEL_ETCD_PREFIX}/config",
        # flannel <= 0.17 speaks only the etcd v2 API; 0.18 moved to v3 (course.md).
        "flannel_etcd_api": str(flannel_etcd_api(flannel)) if flannel else None,
    }


def _service_values(net: Network) -> dict[str, str]:
    services = net.service_network
    return {
        "service_range": net.services,
        "kubernetes_service_ip": str(services[1]),
        "cluster_dns": net.cluster_dns or str(services[10]),
        "cluster_domain": CLUSTER_DOMAIN,
    }


def _version_values(versions: Versions) -> dict[str, Any]:
    return {
        "versions": {
            "kubernetes": versions.kubernetes,
            "etcd": versions.etcd,
            "flannel": versions.flannel,
            "cni_plugins": versions.cni_plugins,
            "flannel_cni_plugin": versions.flannel_cni_plugin,
        },
        # kubelet's --network-plugin/--cni-* flags went away with dockershim in 1.24.
        "kubelet_cni_flags": bool(versions.kubernetes) and kubelet_takes_cni_flags(versions.kubernetes or ""),
        # CNI plugins 0.8.x understand spec versions up to 0.4.0; 1.x adds 1.0.0.
        "cni_version": _older_than(versions.cni_plugins, (1, 0), "0.3.1", "1.0.0") or "1.0.0",
    }


def default_language() -> str:
    """``ja`` when the locale says Japanese (LANGUAGE, then LC_ALL, LC_MESSAGES, LANG: the first set), else ``en``."""
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(variable, "").strip()
        if value:
            return "ja" if value.lower().startswith("ja") else "en"
    return "en"


def _check_language(lang: str) -> str:
    if lang not in LANGUAGES:
        raise UsageError(f"no guides in language {lang!r}", f"use one of: {', '.join(LANGUAGES)}")
    return lang


def _guide_file(scenario: Scenario, stage: Stage, lang: str) -> Path | None:
    rel = getattr(stage.guide, lang)
    if not rel or scenario.directory is None:
        return None
    path = sandbox.confined(scenario.directory, rel)
    if path is None:
        raise UsageError(
            f"stage {stage.name!r}: guide {rel!r} lies outside the scenario directory {scenario.directory}",
            "keep guides inside the scenario's directory (e.g. guides/en/NN-stage.md)",
        )
    return path if path.is_file() else None


def _find_guide(scenario: Scenario, stage: Stage, lang: str) -> tuple[Path, str]:
    """The guide file for ``lang``, else the other language's; with the language actually found."""
    for candidate in (lang, *(other for other in LANGUAGES if other != lang)):
        path = _guide_file(scenario, stage, candidate)
        if path is not None:
            return path, candidate
    raise UsageError(
        f"stage {stage.name!r} of scenario {scenario.name} has no guide",
        f"add `guide: {{ja: guides/ja/NN-{stage.name}.md, en: guides/en/NN-{stage.name}.md}}` to the stage",
    )


def _render_file(path: Path, context: dict[str, Any]) -> str:
    env = sandbox.environment(path.parent)
    try:
        return env.get_template(path.name).render(context)
    except jinja2.UndefinedError as exc:
        raise LabkitError(
            f"guide {path} uses an undefined variable: {exc.message}",
            f"use one of: {', '.join(sorted(context))} (documented in labkit/guides.py)",
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise LabkitError(
            f"guide {path}:{exc.lineno}: template syntax error: {exc.message}",
            "fix the Jinja markup there; write {{ '{{' }} for literal double braces",
        ) from None


def render_guide(scenario: Scenario, stage_name: str, lang: str, lab_state: LabState | None = None) -> str:
    """A stage's guide in ``lang`` with this lab's values filled in; another language's, with a note, if missing."""
    lang = _check_language(lang)
    stage = scenario.stage(stage_name)  # UsageError listing the stages
    path, found = _find_guide(scenario, stage, lang)
    text = _render_file(path, guide_context(scenario, lab_state))
    if found != lang:
        text = FALLBACK_NOTES[(lang, found)] + text
    return text


def parse_checklist(markdown: str) -> list[str]:
    """The ``- [ ]`` items under a ``Checklist`` / ``理解度チェックリスト`` heading, up to the next heading as high."""
    items: list[str] = []
    level: int | None = None
    in_fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        heading = _HEADING_RE.match(line)
        if heading:
            depth, title = len(heading.group(1)), heading.group(2).strip().lower()
            if level is not None and depth <= level:
                level = None
            if level is None and title in CHECKLIST_HEADINGS:
                level = depth
            continue
        if level is not None:
            item = _ITEM_RE.match(line)
            if item:
                items.append(item.group(1))
    return items


def checklist(scenario: Scenario, stage_name: str, lang: str, lab_state: LabState | None = None) -> list[str]:
    """The comprehension checklist of a stage's guide, as rendered for this lab."""
    return parse_checklist(render_guide(scenario, stage_name, lang, lab_state))


__all__ = [
    "LANGUAGES",
    "checklist",
    "default_language",
    "flannel_network_config",
    "guide_context",
    "parse_checklist",
    "render_guide",
]
