"""What the scenario knows about a node, and reading a version (the scenario's or a binary's) out of a text."""

from __future__ import annotations

import re
from dataclasses import dataclass


def version_tuple(text: str | None) -> tuple[int, ...] | None:
    """``(1, 24, 0)`` from "Kubernetes v1.24.0", "v0.13.0" or "0.13"; None when no version is in ``text``."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if match is None:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


@dataclass(frozen=True)
class Expectations:
    """What the scenario knows about the node (each optional: without it the findings that need it stay quiet)."""

    key: str = "/coreos.com/network/config"
    conf_path: str = "/etc/flannel/flanneld.conf"
    flannel_version: str | None = None
    kubernetes_version: str | None = None
    lab_ip: str | None = None
    etcd_endpoint: str | None = None
    network_config: str | None = None
    """The JSON the scenario puts at ``key`` (for the commands the fixes show)."""
