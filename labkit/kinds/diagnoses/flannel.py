"""Why flannel does not work on a node: facts gathered in one remote command, then named findings.

The facts are what a trainer would look at by hand: flanneld.conf, the network config through the etcd v2 and
v3 APIs (against the endpoint flanneld.conf names), the node's IPv4 addresses and default route, the CNI
plugins and confs, the kubelet's version and flags, and flanneld's unit state and journal. Every fact is
optional: a binary absent on the node (flanneld, kubelet, etcdctl) leaves it unknown and raises nothing, except
flanneld's own when its unit is not running: that absence is what ``flanneld-not-installed`` names. systemd's
state says which of not installed, not started (inactive, 0 restarts), exited (failed, 0 restarts) and
restarting (restarts seen) a flanneld that is not running is.

Background (course.md, "Facts the flannel stage must get right"):
- flannel <= 0.17 reads its config through the etcd v2 API only, 0.18+ through v3; the two key spaces are
  separate. etcd 3.4 turned v2 off by default (``--enable-v2=true``), and ``ETCDCTL_API=2 etcdctl`` then says
  "client: response is invalid json".
- flanneld >= 0.10 (amd64) is a static cgo build whose resolver can crash on a hostname in
  ``-etcd-endpoints`` (flannel-io/flannel#977, #1104); Vagrant also maps a VM's own hostname to 127.0.X.1.
- On Vagrant VMs the first NIC is the NAT/management one, alike on every VM: without ``-iface`` naming the
  lab NIC every node announces the same public IP.
- The flannel CNI plugin delegates to ``bridge`` and ``host-local``; ``loopback`` is needed too.
- kubelet lost ``--network-plugin``/``--cni-*`` with dockershim in 1.24.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from labkit.kinds.checks.base import SECTION, sections
from labkit.kinds.diagnoses import Finding, FindingSpec, Text

CNI_BINARIES = ("bridge", "host-local", "loopback", "flannel")
DEFAULT_ENDPOINT = "http://127.0.0.1:2379"  # flanneld's own default
RC = "@@rc "
ABSENT = "@@absent"
JOURNAL_LINES_SHOWN = 6
VALUE_FLAGS = {"etcd-endpoints", "iface", "etcd-prefix", "public-ip", "kube-api-url", "kubeconfig-file"}

# ---- the findings -------------------------------------------------------------------------------------------

ETCD_V2_OFF = FindingSpec(
    "etcd-v2-off",
    Text(
        'etcd answers the v2 API with an error ("response is invalid json"): its v2 API is off, the default '
        "since etcd 3.4. flannel {flannel} reads its network config through v2 only.",
        'etcd が v2 API にエラーを返しています ("response is invalid json")。etcd 3.4 から v2 API は既定で'
        "無効です。flannel {flannel} はネットワーク設定を v2 でしか読めません。",
    ),
    Text(
        "Add --enable-v2=true to etcd's flags (/etc/etcd/etcd.conf on the etcd node), restart etcd, then write "
        "the network config again with ETCDCTL_API=2 etcdctl set.",
        "etcd のフラグ (etcd ノードの /etc/etcd/etcd.conf) に --enable-v2=true を加えて etcd を再起動し、"
        "ETCDCTL_API=2 etcdctl set でネットワーク設定を書き直してください。",
    ),
)
HOSTNAME_ENDPOINT = FindingSpec(
    "hostname-endpoint",
    Text(
        "-etcd-endpoints names a host ({host}), not an IP. flanneld >= 0.10 is a static cgo build whose name "
        "resolution can crash (flannel-io/flannel#977); and Vagrant maps a VM's own hostname to 127.0.X.1, so "
        "the name may point back at this node instead of etcd.",
        "-etcd-endpoints に IP ではなくホスト名 ({host}) が書かれています。flanneld 0.10 以降は静的リンクの cgo "
        "ビルドで、名前解決で異常終了することがあります (flannel-io/flannel#977)。また Vagrant は VM 自身の"
        "ホスト名を 127.0.X.1 に割り当てるため、その名前が etcd ではなく自ノードを指すことがあります。",
    ),
    Text(
        "Write etcd's lab IP in /etc/flannel/flanneld.conf: -etcd-endpoints={suggest}, then systemctl restart "
        "flanneld.",
        "/etc/flannel/flanneld.conf に etcd のラボ IP を書いてください: -etcd-endpoints={suggest}。その後 "
        "systemctl restart flanneld。",
    ),
)
ENDPOINT_NO_SCHEME = FindingSpec(
    "endpoint-no-scheme",
    Text(
        "-etcd-endpoints={endpoint} has no scheme: flanneld needs a URL such as http://IP:2379.",
        "-etcd-endpoints={endpoint} にスキームがありません。flanneld には http://IP:2379 のような URL が必要です。",
    ),
    Text(
        "Write -etcd-endpoints=http://{endpoint} in /etc/flannel/flanneld.conf and restart flanneld.",
        "/etc/flannel/flanneld.conf に -etcd-endpoints=http://{endpoint} と書き、flanneld を再起動してください。",
    ),
)
CONFIG_IN_WRONG_API = FindingSpec(
    "config-in-wrong-api",
    Text(
        "The network config {key} is in etcd's v{found} key space, but flannel {flannel} reads v{wanted}. The v2 "
        "and v3 key spaces are separate: a key written with one API is invisible to the other.",
        "ネットワーク設定 {key} は etcd の v{found} のキー空間にありますが、flannel {flannel} が読むのは "
        "v{wanted} です。v2 と v3 のキー空間は別物で、一方の API で書いたキーはもう一方からは見えません。",
    ),
    Text(
        "Write it through v{wanted}: {command}",
        "v{wanted} で書き直してください: {command}",
    ),
)
NETWORK_CONFIG_MISSING = FindingSpec(
    "network-config-missing",
    Text(
        "etcd answers, but has no network config at {key} (neither v2 nor v3): flanneld cannot lease a subnet.",
        "etcd は応答しますが {key} にネットワーク設定がありません (v2 にも v3 にも)。flanneld はサブネットを"
        "確保できません。",
    ),
    Text(
        "On the etcd node: {command}",
        "etcd ノードで: {command}",
    ),
)
ETCD_UNREACHABLE = FindingSpec(
    "etcd-unreachable",
    Text(
        "etcd does not answer at {endpoint}, the endpoint flanneld.conf gives (or flanneld's default when it "
        "gives none): flanneld cannot read its config or lease a subnet.",
        "flanneld.conf の指定 (指定が無ければ flanneld の既定値) {endpoint} で etcd が応答しません。flanneld は"
        "設定を読めず、サブネットも確保できません。",
    ),
    Text(
        "Point -etcd-endpoints at etcd's lab IP ({suggest}); if that is already so, make etcd listen there "
        "(--listen-client-urls on the etcd node) and check it with `labkit check etcd`.",
        "-etcd-endpoints を etcd のラボ IP ({suggest}) にしてください。既にそうなら etcd がそこで待ち受けるよう"
        "に (etcd ノードの --listen-client-urls) し、`labkit check etcd` で確かめてください。",
    ),
)
WRONG_IFACE = FindingSpec(
    "wrong-iface",
    Text(
        "flanneld does not use the lab NIC ({problem}). The first NIC of a Vagrant VM is the NAT/management one, "
        "with the same kind of address on every VM: every node would announce the same public IP and no packet "
        "would cross between nodes.",
        "flanneld がラボ用 NIC を使っていません ({problem})。Vagrant の VM の最初の NIC は NAT/管理用で、"
        "どの VM でも同じような IP を持ちます。全ノードが同じ public IP を名乗り、ノード間の通信が通りません。",
    ),
    Text(
        "Add -iface={lab_iface} (the NIC holding {lab_ip}) to /etc/flannel/flanneld.conf and restart flanneld.",
        "/etc/flannel/flanneld.conf に -iface={lab_iface} ({lab_ip} を持つ NIC) を加え、flanneld を再起動して"
        "ください。",
    ),
)
CNI_BINARIES_MISSING = FindingSpec(
    "cni-binaries-missing",
    Text(
        "/opt/cni/bin lacks {missing}. The flannel CNI plugin hands the real work to bridge and host-local, "
        "and loopback sets up every pod's lo: pods cannot get a network without them.",
        "/opt/cni/bin に {missing} がありません。flannel CNI プラグインは実際の処理を bridge と host-local に"
        "任せ、loopback が各 Pod の lo を用意します。これらが無いと Pod にネットワークが付きません。",
    ),
    Text(
        "Unpack the CNI plugins tarball (containernetworking/plugins) into /opt/cni/bin, and install the flannel "
        "plugin (flannel-io/cni-plugin, flannel-amd64) as /opt/cni/bin/flannel.",
        "CNI プラグインの tarball (containernetworking/plugins) を /opt/cni/bin に展開し、flannel プラグイン "
        "(flannel-io/cni-plugin の flannel-amd64) を /opt/cni/bin/flannel として置いてください。",
    ),
)
CNI_CONF_INVALID = FindingSpec(
    "cni-conf-invalid",
    Text(
        "{path}: {problem}. The kubelet reads every file in /etc/cni/net.d; a broken one leaves pods without a "
        "network.",
        "{path}: {problem}。kubelet は /etc/cni/net.d のファイルを読みます。壊れたファイルがあると Pod に"
        "ネットワークが付きません。",
    ),
    Text(
        'Fix {path}: valid JSON with "cniVersion" (e.g. "0.3.1"), "name", "type": "flannel" and its '
        '"delegate"; then systemctl restart kubelet.',
        '{path} を直してください: "cniVersion" (例 "0.3.1")、"name"、"type": "flannel"、"delegate" を'
        "持つ正しい JSON にし、systemctl restart kubelet。",
    ),
)
CNI_CONF_MISSING = FindingSpec(
    "cni-conf-missing",
    Text(
        "/etc/cni/net.d has no CNI conf: the kubelet does not know to use flannel for pods.",
        "/etc/cni/net.d に CNI の設定がありません。kubelet は Pod に flannel を使うことを知りません。",
    ),
    Text(
        'Write /etc/cni/net.d/flannel.conf (cniVersion, name, "type": "flannel", delegate) and restart the '
        "kubelet.",
        '/etc/cni/net.d/flannel.conf (cniVersion, name, "type": "flannel", delegate) を書き、kubelet を'
        "再起動してください。",
    ),
)
NETWORK_PLUGIN_REMOVED = FindingSpec(
    "network-plugin-removed",
    Text(
        "/etc/kubernetes/kubelet.conf passes {flags} to kubelet {kubelet}; those flags went away with dockershim in "
        "Kubernetes 1.24, and the kubelet refuses to start with an unknown flag.",
        "/etc/kubernetes/kubelet.conf が kubelet {kubelet} に {flags} を渡しています。これらのフラグは Kubernetes "
        "1.24 で dockershim とともに廃止され、未知のフラグがあると kubelet は起動しません。",
    ),
    Text(
        "Remove them from kubelet.conf; set the CNI directories in the container runtime instead (containerd: "
        '[plugins."io.containerd.grpc.v1.cri".cni] bin_dir and conf_dir), then restart both.',
        "kubelet.conf から削除し、CNI のディレクトリはコンテナランタイム側で指定してください (containerd: "
        '[plugins."io.containerd.grpc.v1.cri".cni] の bin_dir と conf_dir)。その後両方を再起動。',
    ),
)
FLANNELD_RESTARTING = FindingSpec(
    "flanneld-restarting",
    Text(
        "flanneld is not running steadily ({state}): it exits and systemd restarts it. Its journal says why.",
        "flanneld が安定して動いていません ({state})。終了しては systemd に再起動されています。理由は journal "
        "にあります。",
    ),
    Text(
        "Read journalctl -u flanneld -n 30 (the last lines are below), fix what it names in "
        "/etc/flannel/flanneld.conf or etcd, then systemctl restart flanneld and run systemctl status flanneld "
        "a few times.",
        "journalctl -u flanneld -n 30 を読み (末尾を下に示します)、指摘された点を /etc/flannel/flanneld.conf か "
        "etcd で直してから systemctl restart flanneld し、systemctl status flanneld を何度か実行してください。",
    ),
)
FLANNELD_EXITED = FindingSpec(
    "flanneld-exited",
    Text(
        "flanneld was started and exited ({state}), and systemd did not start it again. Its journal says why.",
        "flanneld は起動されましたが終了し ({state})、systemd は再起動していません。理由は journal にあります。",
    ),
    Text(
        "Read journalctl -u flanneld -n 30 (the last lines are below) and fix what it names, then systemctl "
        "restart flanneld. Restart=always in flanneld.service makes systemd start it again when it exits.",
        "journalctl -u flanneld -n 30 を読み (末尾を下に示します)、指摘された点を直してから systemctl restart "
        "flanneld。flanneld.service に Restart=always があれば、終了しても systemd が再起動します。",
    ),
)
FLANNELD_NOT_STARTED = FindingSpec(
    "flanneld-not-started",
    Text(
        "flanneld is installed but not running ({state}): it was never started or was stopped; it did not "
        "crash (0 restarts).{boot}",
        "flanneld はインストールされていますが動いていません ({state})。起動されていないか、停止されています"
        "。異常終了ではありません (再起動 0 回)。{boot}",
    ),
    Text(
        "systemctl enable --now flanneld, then run systemctl status flanneld a few times; if it does not stay "
        "active, journalctl -u flanneld -n 30 says why.",
        "systemctl enable --now flanneld を実行し、systemctl status flanneld を何度か実行してください。"
        "active のままでなければ journalctl -u flanneld -n 30 に理由が出ます。",
    ),
)
NOT_ENABLED = Text(
    " It is not enabled either, so a reboot would not start it.",
    " 有効化 (enable) もされていないため、再起動しても起動しません。",
)
FLANNELD_NOT_INSTALLED = FindingSpec(
    "flanneld-not-installed",
    Text(
        "flanneld is not installed on this node: {missing}. Nothing runs flannel here.",
        "このノードに flanneld がインストールされていません: {missing}。flannel を動かすものがありません。",
    ),
    Text(
        "Install the flanneld binary as /usr/local/bin/flanneld and a unit "
        "/usr/local/lib/systemd/system/flanneld.service (EnvironmentFile={conf}, "
        "ExecStart=/usr/local/bin/flanneld $FLANNEL_OPTS), then systemctl daemon-reload && systemctl enable "
        "--now flanneld.",
        "flanneld のバイナリを /usr/local/bin/flanneld に、ユニット /usr/local/lib/systemd/system/flanneld.service "
        "(EnvironmentFile={conf}, ExecStart=/usr/local/bin/flanneld $FLANNEL_OPTS) を置き、systemctl "
        "daemon-reload && systemctl enable --now flanneld。",
    ),
)
FLANNELD_CONF_MISSING = FindingSpec(
    "flanneld-conf-missing",
    Text(
        "{path} does not exist: flanneld starts without -etcd-endpoints and -iface, so it looks for etcd on "
        "127.0.0.1 and picks the management NIC.",
        "{path} がありません。flanneld は -etcd-endpoints も -iface も無しで起動し、etcd を 127.0.0.1 に探し、"
        "管理用 NIC を選んでしまいます。",
    ),
    Text(
        "Write {path} with FLANNEL_OPTS holding -etcd-endpoints=http://ETCD_IP:2379 and -iface=LAB_NIC, then "
        "restart flanneld.",
        "{path} に FLANNEL_OPTS として -etcd-endpoints=http://ETCD_IP:2379 と -iface=ラボのNIC を書き、"
        "flanneld を再起動してください。",
    ),
)

SPECS: dict[str, FindingSpec] = {
    s.id: s
    for s in (
        ETCD_V2_OFF,
        HOSTNAME_ENDPOINT,
        ENDPOINT_NO_SCHEME,
        CONFIG_IN_WRONG_API,
        NETWORK_CONFIG_MISSING,
        ETCD_UNREACHABLE,
        WRONG_IFACE,
        CNI_BINARIES_MISSING,
        CNI_CONF_INVALID,
        CNI_CONF_MISSING,
        NETWORK_PLUGIN_REMOVED,
        FLANNELD_RESTARTING,
        FLANNELD_EXITED,
        FLANNELD_NOT_STARTED,
        FLANNELD_NOT_INSTALLED,
        FLANNELD_CONF_MISSING,
    )
}

# ---- gathering ----------------------------------------------------------------------------------------------


def facts_script(conf: str, key: str) -> str:
    """One shell script printing every fact, each after an ``@@labkit NAME`` line; read-only, never fails.

    The etcd queries use the endpoint flanneld.conf names (its first one, ``http://`` added when missing)
    through etcdctl when the node has it, else through etcd's HTTP APIs with curl (workers have no etcdctl).
    """
    v3_body = json.dumps({"key": base64.b64encode(key.encode()).decode()})
    m = f"printf '\\n{SECTION}%s\\n'"
    return "\n".join(
        [
            "PATH=/usr/local/sbin:/usr/local/bin:$PATH",
            f"conf={shlex.quote(conf)}",
            f"key={shlex.quote(key)}",
            f"{m} conf",
            f'if [ -f "$conf" ]; then head -c 65536 -- "$conf"; else echo {ABSENT}; fi',
            # the first -etcd-endpoints value, with = or a space, quotes and line continuations ignored
            "ep=$(tr '\\\\\"\\047\\t' '    ' 2>/dev/null < \"$conf\" | awk '{for (i = 1; i <= NF; i++) {"
            ' if ($i ~ /^--?etcd-endpoints=/) { sub(/^--?etcd-endpoints=/, "", $i); print $i; exit }'
            " if ($i ~ /^--?etcd-endpoints$/) { print $(i + 1); exit } } }')",
            f'ep=${{ep%%,*}}; [ -n "$ep" ] || ep={DEFAULT_ENDPOINT}',
            'case "$ep" in *://*) ;; *) ep="http://$ep" ;; esac',
            "host=${ep#*://}; host=${host%%/*}; host=${host%:*}",
            f'{m} endpoint; echo "$ep"',
            f'{m} resolve; getent hosts "$host" 2>&1',
            "if command -v etcdctl >/dev/null 2>&1; then",
            f"  {m} etcd-tool; echo etcdctl",
            f'  {m} etcd-v2; ETCDCTL_API=2 timeout 10 etcdctl --endpoints "$ep" get "$key" 2>&1; rc=$?; echo; echo "{RC}$rc"',
            f'  {m} etcd-v3; ETCDCTL_API=3 timeout 10 etcdctl --endpoints "$ep" --dial-timeout 3s get "$key" 2>&1;'
            f' rc=$?; echo; echo "{RC}$rc"',
            "elif command -v curl >/dev/null 2>&1; then",
            f"  {m} etcd-tool; echo curl",
            f'  {m} etcd-v2; curl -sS -m 5 "$ep/v2/keys$key" 2>&1; rc=$?; echo; echo "{RC}$rc"',
            f'  {m} etcd-v3; curl -sS -m 5 -X POST -d {shlex.quote(v3_body)} "$ep/v3/kv/range" 2>&1;'
            f' rc=$?; echo; echo "{RC}$rc"',
            "else",
            f"  {m} etcd-tool; echo none",
            "fi",
            f"{m} addr; ip -4 -o addr show 2>&1",
            f"{m} default-route; ip -4 route show default 2>&1",
            f'{m} cni-bin; ls -1 /opt/cni/bin 2>&1; echo "{RC}$?"',
            "for f in /etc/cni/net.d/*; do",
            '  [ -f "$f" ] || continue',
            f'  {m} "cni-conf $f"; head -c 65536 -- "$f"',
            "done",
            f"{m} flanneld-version",
            f"if command -v flanneld >/dev/null 2>&1; then timeout 5 flanneld --version 2>&1; else echo {ABSENT}; fi",
            f"{m} kubelet-version",
            f"if command -v kubelet >/dev/null 2>&1; then timeout 5 kubelet --version 2>&1; else echo {ABSENT}; fi",
            f"{m} kubelet-conf",
            f"if [ -f /etc/kubernetes/kubelet.conf ]; then cat /etc/kubernetes/kubelet.conf; else echo {ABSENT}; fi",
            f"{m} flanneld-unit; systemctl show -p NRestarts -p ActiveState -p SubState -p LoadState "
            "-p UnitFileState -p Result -p ExecMainStatus flanneld 2>&1",
            # the binary the unit runs (ExecStart's path=), else the one on PATH; absent: where it was looked for
            f"{m} flanneld-binary",
            "exe=$(systemctl show -p ExecStart flanneld 2>/dev/null | sed -n 's/^[^{]*{ path=\\([^;]*[^; ]\\) *;.*/\\1/p' | head -n 1)",
            '[ -n "$exe" ] || exe=$(command -v flanneld 2>/dev/null)',
            f'if [ -z "$exe" ]; then echo "{ABSENT} PATH=$PATH"; elif [ -x "$exe" ]; then echo "$exe"; '
            f'else echo "{ABSENT} $exe"; fi',
            f"{m} journal; journalctl -u flanneld -n 15 --no-pager -o short 2>&1",
            "exit 0",
        ]
    )


# ---- parsing ------------------------------------------------------------------------------------------------

EtcdState = Literal["present", "absent", "v2-off", "error", "unknown"]


@dataclass(frozen=True)
class EtcdRead:
    """One API's answer for the network config key."""

    state: EtcdState
    value: str = ""
    detail: str = ""


@dataclass
class Facts:
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
    facts.journal = [
        line
        for line in parts.get("journal", "").splitlines()
        if line.strip() and not line.startswith(("-- ", "No journal files"))
    ]
    return facts


# ---- diagnosing ---------------------------------------------------------------------------------------------


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


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _endpoint_findings(facts: Facts, want: Expectations) -> list[Finding]:
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


def _flannel_api(facts: Facts, want: Expectations) -> tuple[int | None, str]:
    """The etcd API the node's flannel reads (2 up to 0.17, 3 from 0.18) and the version it is based on."""
    shown = want.flannel_version or facts.flanneld_version
    version = version_tuple(shown)
    if version is None:
        return None, "?"
    return (2 if version < (0, 18) else 3), f"v{'.'.join(str(v) for v in version)}"


SEED_NETWORK_CONFIG = (
    '{ "Network": "10.0.0.0/16", "SubnetLen": 24, "Backend": { "Type": "udp", "Port": 7890 } }'
)
"""The chapter's own value, shown in a fix when neither the scenario nor etcd gives one."""


def _put_command(api: int, want: Expectations, endpoint: str, value: str | None = None) -> str:
    """The etcdctl command that writes the network config through ``api`` (v2 ``set``, v3 ``put``)."""
    value = shlex.quote(value or want.network_config or SEED_NETWORK_CONFIG)
    verb = "set" if api == 2 else "put"
    return f"ETCDCTL_API={api} etcdctl --endpoints {endpoint} {verb} {want.key} {value}"


_UNREACHABLE = (
    "connection refused",
    "deadline exceeded",
    "no route to host",
    "timed out",
    "timeout",
    "could not resolve",
    "no such host",
    "cluster is unavailable",
    "failed to connect",
)


def _unreachable(detail: str) -> bool:
    return any(marker in detail.lower() for marker in _UNREACHABLE)


def _etcd_findings(facts: Facts, want: Expectations) -> list[Finding]:
    found: list[Finding] = []
    api, flannel = _flannel_api(facts, want)
    endpoint = want.etcd_endpoint or facts.endpoint_queried or DEFAULT_ENDPOINT
    if (
        facts.v2.state == "error"
        and facts.v3.state == "error"
        and all(_unreachable(read.detail) for read in (facts.v2, facts.v3))
    ):
        evidence = f"{facts.endpoint_queried}: v2: {facts.v2.detail}; v3: {facts.v3.detail}"
        values = {"endpoint": facts.endpoint_queried, "suggest": want.etcd_endpoint or "http://ETCD_IP:2379"}
        return [Finding(ETCD_UNREACHABLE, evidence, values)]
    if facts.v2.state == "v2-off" and api != 3:
        found.append(Finding(ETCD_V2_OFF, facts.v2.detail, {"flannel": flannel}))
    reads = {2: facts.v2, 3: facts.v3}
    if api is not None:
        other = 5 - api
        if reads[api].state in ("absent", "v2-off") and reads[other].state == "present":
            evidence = f"v{other} {want.key} = {reads[other].value[:200]}; v{api}: {reads[api].detail}"
            values = {
                "key": want.key,
                "found": str(other),
                "wanted": str(api),
                "flannel": flannel,
                "command": _put_command(api, want, endpoint, reads[other].value.strip() or None),
            }
            found.append(Finding(CONFIG_IN_WRONG_API, evidence, values))
    wanted = [api] if api is not None else [2, 3]
    if all(reads[a].state == "absent" for a in wanted) and all(
        reads[a].state != "present" for a in (2, 3) if a not in wanted
    ):
        evidence = f"v2: {facts.v2.detail}; v3: {facts.v3.detail} (via {facts.endpoint_queried})"
        values = {"key": want.key, "command": _put_command(api or 2, want, endpoint)}
        found.append(Finding(NETWORK_CONFIG_MISSING, evidence, values))
    return found


def _iface_findings(facts: Facts, want: Expectations) -> list[Finding]:
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


def _cni_findings(facts: Facts) -> list[Finding]:
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


def _kubelet_findings(facts: Facts, want: Expectations) -> list[Finding]:
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


def _not_installed(facts: Facts, want: Expectations) -> list[Finding]:
    """No unit, or a flanneld that is not running and whose binary is not there."""
    unit = facts.unit
    no_unit = unit.get("LoadState") == "not-found"
    absent = facts.flanneld_absent
    no_binary = absent is not None and unit.get("ActiveState") != "active"
    if not (no_unit or no_binary):
        return []
    seen: list[str] = []
    if no_unit:
        seen.append("systemctl show flanneld: LoadState=not-found")
    if no_binary and absent is not None:
        path = absent.startswith("/")
        seen.append(f"{absent}: no such file" if path else f"no flanneld on {absent}")
        where = absent if path else "PATH"
        if no_unit:
            missing = Text(
                f"no flanneld binary (on {where}) and no flanneld.service unit",
                f"flanneld のバイナリ ({where}) も flanneld.service ユニットもありません",
            )
        else:
            missing = Text(
                f"flanneld.service runs {where}, which does not exist",
                f"flanneld.service が実行する {where} が存在しません",
            )
        restarts = unit.get("NRestarts", "")
        if restarts not in ("", "0"):
            seen.append(f"ActiveState={unit.get('ActiveState', '?')} NRestarts={restarts} (each start fails)")
    else:
        shown = f" (the binary is at {facts.flanneld_binary})" if facts.flanneld_binary else ""
        shown_ja = f" (バイナリは {facts.flanneld_binary} にあります)" if facts.flanneld_binary else ""
        missing = Text(f"no flanneld.service unit{shown}", f"flanneld.service ユニットがありません{shown_ja}")
    values: dict[str, str | Text] = {"missing": missing, "conf": want.conf_path}
    return [Finding(FLANNELD_NOT_INSTALLED, "; ".join(seen), values)]


def _unit_findings(facts: Facts, want: Expectations) -> list[Finding]:
    """What systemd says about flanneld: missing, never started or stopped, exited once, or restarting."""
    installed = _not_installed(facts, want)
    unit = facts.unit
    if installed or "ActiveState" not in unit:
        return installed
    active, sub = unit["ActiveState"], unit.get("SubState", "")
    restarts = unit.get("NRestarts", "")
    count = int(restarts) if restarts.isdigit() else None
    shown = active + (f"/{sub}" if sub else "")
    properties = " ".join(
        f"{name}={unit[name]}"
        for name in ("ActiveState", "SubState", "NRestarts", "Result", "ExecMainStatus", "UnitFileState")
        if unit.get(name)
    )
    tail = facts.journal[-JOURNAL_LINES_SHOWN:]
    with_journal = properties + ("; journal:\n" + "\n".join(tail) if tail else "")
    if (count or 0) > 0 or sub == "auto-restart":
        state = Text(f"{shown}, {restarts or '?'} restarts", f"{shown}、再起動 {restarts or '?'} 回")
        return [Finding(FLANNELD_RESTARTING, with_journal, {"state": state})]
    if count != 0:
        return []  # no restart count: nothing says whether it crashed
    if active == "failed":
        result, status = unit.get("Result", "failed"), unit.get("ExecMainStatus", "")
        state = Text(
            f"{shown}, {result}" + (f", exit status {status}" if status else ""),
            f"{shown}、{result}" + (f"、終了コード {status}" if status else ""),
        )
        return [Finding(FLANNELD_EXITED, with_journal, {"state": state})]
    if active == "inactive":
        enabled = unit.get("UnitFileState", "")
        state = Text(shown + (f", {enabled}" if enabled else ""), shown + (f"、{enabled}" if enabled else ""))
        boot = NOT_ENABLED if enabled == "disabled" else Text("", "")
        return [Finding(FLANNELD_NOT_STARTED, with_journal, {"state": state, "boot": boot})]
    return []


def diagnose(facts: Facts, want: Expectations) -> list[Finding]:
    """Every finding the facts give evidence of, in the order a trainee should fix them."""
    found: list[Finding] = []
    if facts.conf_missing:
        found.append(
            Finding(FLANNELD_CONF_MISSING, f"{want.conf_path}: no such file", {"path": want.conf_path})
        )
    found += _endpoint_findings(facts, want)
    found += _etcd_findings(facts, want)
    found += _iface_findings(facts, want)
    found += _cni_findings(facts)
    found += _kubelet_findings(facts, want)
    found += _unit_findings(facts, want)
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
    api, _ = _flannel_api(facts, want)
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
