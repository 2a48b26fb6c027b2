"""What the facts script showed about one node: every fact optional, unknown when it was not seen."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

GLOG_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] ")
"""flanneld's log prefix (glog): level, date, time, PID, file:line."""

EtcdState = Literal["present", "absent", "v2-off", "error", "unknown"]


@dataclass(frozen=True)
class EtcdRead:
    """One API's answer for the network config key."""

    state: EtcdState
    value: str = ""
    detail: str = ""


@dataclass
class Facts:
    """One node's facts, as the parsing of the facts script's output fills them."""

    conf: str | None = None
    """flanneld.conf's content; None when the file does not exist or was not read."""
    conf_missing: bool = False
    flags: dict[str, list[str]] = field(default_factory=dict)
    endpoint_queried: str = ""
    resolved: str = ""
    etcd_tool: str = "none"
    v2: EtcdRead = EtcdRead("unknown")
    v3: EtcdRead = EtcdRead("unknown")
    addresses: dict[str, list[str]] = field(default_factory=dict)
    """NIC -> its IPv4 addresses (without prefix length)."""
    default_iface: str | None = None
    cni_bin: list[str] | None = None
    """Files in /opt/cni/bin; None when unknown or when the directory does not exist."""
    cni_bin_dir_missing: bool = False
    cni_listed: bool = False
    """The script ran far enough to list /etc/cni/net.d (an empty listing is then evidence)."""
    cni_confs: dict[str, str] = field(default_factory=dict)
    flanneld_version: str | None = None
    kubelet_version: str | None = None
    kubelet_conf: str | None = None
    unit: dict[str, str] = field(default_factory=dict)
    flanneld_binary: str | None = None
    """The flanneld the unit runs (or the one on PATH), seen executable; None when unknown or absent."""
    flanneld_absent: str | None = None
    """Where flanneld was looked for and not found (the unit's ExecStart path, or ``PATH=...``)."""
    journal: list[str] = field(default_factory=list)
    """flanneld's last journal lines (without its "timed out" retry lines)."""
    iface_line: str = ""
    """flanneld's own "Using interface with name NIC and address IP" line of its last start, when logged."""

    def with_flanneld(self, evidence: str, *markers: str) -> str:
        """``evidence``, followed by flanneld's last journal line holding one of ``markers`` when there is one."""
        said = self.flanneld_said(*markers)
        return f"{evidence}; flanneld: {said}" if said else evidence

    def flanneld_said(self, *markers: str) -> str:
        """flanneld's last journal line holding one of ``markers``, without the journal's prefix; else ''."""
        for line in reversed(self.journal):
            if any(marker in line for marker in markers):
                message = line.split("]: ", 1)[-1].strip()
                return GLOG_PREFIX.sub("", message)[:300]
        return ""
