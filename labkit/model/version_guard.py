"""Version combinations that cannot work, refused at validation (so before any VM or step runs).

Each rule names the versions involved, why they cannot work together and what to change. The facts are the
course's (``docs/course.md``): flannel <= 0.17 reads its configuration through the etcd v2 API, which etcd 3.6
removed; kubelet's CNI flags went away with dockershim in Kubernetes 1.24; the flannel CNI plugin left
containernetworking/plugins in v1.0.0 and ships from flannel-io/cni-plugin since.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

FLANNEL_LAST_V2 = (0, 17)
ETCD_WITHOUT_V2 = (3, 6)
KUBERNETES_WITHOUT_NETWORK_PLUGIN = (1, 24)
CNI_PLUGINS_WITHOUT_FLANNEL = (1, 0)
NETWORK_PLUGIN_FLAG = "--network-plugin"


@dataclass(frozen=True)
class Refusal:
    field: str
    """The ``versions:`` key the problem is reported on."""
    message: str
    fix: str


def version_tuple(text: object) -> tuple[int, ...] | None:
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", str(text)) if text is not None else None
    return tuple(int(p) for p in match.groups() if p is not None) if match else None


def flannel_etcd_api(flannel: str) -> int:
    """The etcd API flannel ``flannel`` reads its network config through: 2 up to 0.17, 3 from 0.18."""
    version = version_tuple(flannel)
    return 2 if version is not None and version[:2] <= FLANNEL_LAST_V2 else 3


def kubelet_takes_cni_flags(kubernetes: str) -> bool:
    version = version_tuple(kubernetes)
    return version is None or version[:2] < KUBERNETES_WITHOUT_NETWORK_PLUGIN


def version_refusals(versions: dict[str, Any]) -> list[Refusal]:
    """What is wrong with a scenario's raw ``versions:`` mapping (unparsable values are left to the model)."""
    flannel = version_tuple(versions.get("flannel"))
    etcd = version_tuple(versions.get("etcd"))
    cni = version_tuple(versions.get("cni_plugins"))
    refusals = []
    if (
        flannel is not None
        and etcd is not None
        and flannel[:2] <= FLANNEL_LAST_V2
        and etcd[:2] >= ETCD_WITHOUT_V2
    ):
        refusals.append(
            Refusal(
                "etcd",
                f"flannel {versions['flannel']} reads its network config through the etcd v2 API, "
                f"which etcd {versions['etcd']} no longer has (removed in 3.6)",
                "use etcd <= 3.5 (run with --enable-v2=true) or flannel >= 0.18 (etcd v3)",
            )
        )
    if (
        flannel is not None
        and cni is not None
        and cni[:2] >= CNI_PLUGINS_WITHOUT_FLANNEL
        and not versions.get("flannel_cni_plugin")
    ):
        refusals.append(
            Refusal(
                "cni_plugins",
                f"CNI plugins {versions['cni_plugins']} do not contain the flannel plugin (it left "
                "containernetworking/plugins in v1.0.0) and no other source of it is given",
                "add versions.flannel_cni_plugin (a flannel-io/cni-plugin release) or use cni_plugins 0.8.7",
            )
        )
    return refusals


def network_plugin_refusal(kubernetes: str, where: str, content: str) -> str | None:
    """Why ``content`` (a rendered file, e.g. kubelet's conf) cannot work with ``kubernetes``, or None."""
    if kubelet_takes_cni_flags(kubernetes) or NETWORK_PLUGIN_FLAG not in content:
        return None
    return (
        f"{where} gives kubelet {NETWORK_PLUGIN_FLAG}, which Kubernetes {kubernetes} no longer has "
        "(removed with dockershim in 1.24)"
    )


NETWORK_PLUGIN_FIX = (
    "drop --network-plugin/--cni-conf-dir/--cni-bin-dir and set the runtime's CNI dirs instead "
    '(containerd: [plugins."io.containerd.grpc.v1.cri".cni] bin_dir, conf_dir)'
)
