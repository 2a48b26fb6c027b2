"""The facts script: one read-only shell script the node runs, printing every fact flannel's diagnoses use.

Each fact follows an ``@@labkit NAME`` line (:data:`~labkit.kinds.checks.base.SECTION`); a command's exit
status, where it matters, follows its output as an :data:`RC` line, and :data:`ABSENT` stands for a file or
binary the node does not have.
"""

from __future__ import annotations

import base64
import json
import shlex

from labkit.kinds.checks.base import SECTION

DEFAULT_ENDPOINT = "http://127.0.0.1:2379"  # flanneld's own default
RC = "@@rc "
ABSENT = "@@absent"

_OPEN_SECTION = f"printf '\\n{SECTION}%s\\n'"
"""Prints the line that opens a section; the section's name follows as its argument."""


def facts_script(conf: str, key: str) -> str:
    """One shell script printing every fact, each after an ``@@labkit NAME`` line; read-only, never fails.

    The etcd queries use the endpoint flanneld.conf names (its first one, ``http://`` added when missing)
    through etcdctl when the node has it, else through etcd's HTTP APIs with curl (workers have no etcdctl).
    """
    return "\n".join(
        [
            "PATH=/usr/local/sbin:/usr/local/bin:$PATH",
            f"conf={shlex.quote(conf)}",
            f"key={shlex.quote(key)}",
            *_conf_and_endpoint(),
            *_etcd_reads(key),
            *_network_and_cni(),
            *_versions_kubelet_and_flanneld_unit(),
            "exit 0",
        ]
    )


def _conf_and_endpoint() -> list[str]:
    """flanneld.conf, the etcd endpoint it names (``$ep``, ``$host``), and what that host resolves to."""
    return [
        f"{_OPEN_SECTION} conf",
        f'if [ -f "$conf" ]; then head -c 65536 -- "$conf"; else echo {ABSENT}; fi',
        # the first -etcd-endpoints value, with = or a space, quotes and line continuations ignored
        "ep=$(tr '\\\\\"\\047\\t' '    ' 2>/dev/null < \"$conf\" | awk '{for (i = 1; i <= NF; i++) {"
        ' if ($i ~ /^--?etcd-endpoints=/) { sub(/^--?etcd-endpoints=/, "", $i); print $i; exit }'
        " if ($i ~ /^--?etcd-endpoints$/) { print $(i + 1); exit } } }')",
        f'ep=${{ep%%,*}}; [ -n "$ep" ] || ep={DEFAULT_ENDPOINT}',
        'case "$ep" in *://*) ;; *) ep="http://$ep" ;; esac',
        "host=${ep#*://}; host=${host%%/*}; host=${host%:*}",
        f'{_OPEN_SECTION} endpoint; echo "$ep"',
        f'{_OPEN_SECTION} resolve; getent hosts "$host" 2>&1',
    ]


def _etcd_reads(key: str) -> list[str]:
    """The network config at ``$key`` through the v2 and v3 APIs, with etcdctl, else curl, else nothing."""
    v3_body = json.dumps({"key": base64.b64encode(key.encode()).decode()})
    return [
        "if command -v etcdctl >/dev/null 2>&1; then",
        f"  {_OPEN_SECTION} etcd-tool; echo etcdctl",
        f'  {_OPEN_SECTION} etcd-v2; ETCDCTL_API=2 timeout 10 etcdctl --endpoints "$ep" get "$key" 2>&1; rc=$?; echo; echo "{RC}$rc"',
        f'  {_OPEN_SECTION} etcd-v3; ETCDCTL_API=3 timeout 10 etcdctl --endpoints "$ep" --dial-timeout 3s get "$key" 2>&1;'
        f' rc=$?; echo; echo "{RC}$rc"',
        "elif command -v curl >/dev/null 2>&1; then",
        f"  {_OPEN_SECTION} etcd-tool; echo curl",
        f'  {_OPEN_SECTION} etcd-v2; curl -sS -m 5 "$ep/v2/keys$key" 2>&1; rc=$?; echo; echo "{RC}$rc"',
        f'  {_OPEN_SECTION} etcd-v3; curl -sS -m 5 -X POST -d {shlex.quote(v3_body)} "$ep/v3/kv/range" 2>&1;'
        f' rc=$?; echo; echo "{RC}$rc"',
        "else",
        f"  {_OPEN_SECTION} etcd-tool; echo none",
        "fi",
    ]


def _network_and_cni() -> list[str]:
    """The node's IPv4 addresses and default route, the CNI plugins, and each CNI conf."""
    return [
        f"{_OPEN_SECTION} addr; ip -4 -o addr show 2>&1",
        f"{_OPEN_SECTION} default-route; ip -4 route show default 2>&1",
        f'{_OPEN_SECTION} cni-bin; ls -1 /opt/cni/bin 2>&1; echo "{RC}$?"',
        "for f in /etc/cni/net.d/*; do",
        '  [ -f "$f" ] || continue',
        f'  {_OPEN_SECTION} "cni-conf $f"; head -c 65536 -- "$f"',
        "done",
    ]


def _versions_kubelet_and_flanneld_unit() -> list[str]:
    """flanneld's and the kubelet's versions, kubelet.conf, and flanneld's unit, binary and journal."""
    return [
        f"{_OPEN_SECTION} flanneld-version",
        f"if command -v flanneld >/dev/null 2>&1; then timeout 5 flanneld --version 2>&1; else echo {ABSENT}; fi",
        f"{_OPEN_SECTION} kubelet-version",
        f"if command -v kubelet >/dev/null 2>&1; then timeout 5 kubelet --version 2>&1; else echo {ABSENT}; fi",
        f"{_OPEN_SECTION} kubelet-conf",
        f"if [ -f /etc/kubernetes/kubelet.conf ]; then cat /etc/kubernetes/kubelet.conf; else echo {ABSENT}; fi",
        f"{_OPEN_SECTION} flanneld-unit; systemctl show -p NRestarts -p ActiveState -p SubState -p LoadState "
        "-p UnitFileState -p Result -p ExecMainStatus flanneld 2>&1",
        # the binary the unit runs (ExecStart's path=), else the one on PATH; absent: where it was looked for
        f"{_OPEN_SECTION} flanneld-binary",
        "exe=$(systemctl show -p ExecStart flanneld 2>/dev/null | sed -n 's/^[^{]*{ path=\\([^;]*[^; ]\\) *;.*/\\1/p' | head -n 1)",
        '[ -n "$exe" ] || exe=$(command -v flanneld 2>/dev/null)',
        f'if [ -z "$exe" ]; then echo "{ABSENT} PATH=$PATH"; elif [ -x "$exe" ]; then echo "$exe"; '
        f'else echo "{ABSENT} $exe"; fi',
        # flanneld prints a bare "timed out" to stdout each second it retries etcd (main.go, getConfig)
        f"{_OPEN_SECTION} journal; journalctl -u flanneld -n 200 --no-pager -o short 2>&1"
        " | grep -v 'flanneld\\[[0-9]*\\]: timed out$' | tail -n 15",
        # the NIC and address flanneld took, logged once at its start (often beyond the last lines)
        f"{_OPEN_SECTION} journal-iface; journalctl -u flanneld -n 2000 --no-pager -o cat 2>/dev/null"
        " | grep -F 'Using interface with name' | tail -n 1",
    ]
