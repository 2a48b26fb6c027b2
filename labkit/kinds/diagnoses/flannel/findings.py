"""The findings flannel's diagnoses can raise: each one's id, and its cause and fix in en and ja.

The texts' ``{placeholders}`` are filled by the rules that raise them (``*_rules.py``) with what the node showed.
"""

from __future__ import annotations

from labkit.kinds.diagnoses.finding import FindingSpec, Text

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
        "-etcd-endpoints names a host ({host}); on this node it {problem}, so flanneld cannot reach etcd: a "
        "name means what each node's /etc/hosts or DNS says. Vagrant maps a VM's own hostname to 127.0.X.1, and "
        'a node without the name gets "no such host". (Release builds of flanneld can also crash resolving a '
        "name through glibc, flannel-io/flannel#977.) An IP is the same on every node.",
        "-etcd-endpoints のホスト名 ({host}) はこのノードでは{problem}。そのため flanneld は etcd に届きません。"
        "名前の意味は各ノードの /etc/hosts や DNS 次第です。Vagrant は VM 自身のホスト名を 127.0.X.1 に割り当て、"
        '名前を知らないノードでは "no such host" になります (flanneld のリリース版は glibc での名前解決で異常'
        "終了することもあります: flannel-io/flannel#977)。IP ならどのノードでも同じです。",
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
        "flanneld does not use the lab NIC ({problem}). It announces the NIC it uses as its PublicIP in its lease, "
        "and the other nodes send this node's pod traffic there. The first NIC of a Vagrant VM is the "
        "NAT/management one, not the lab network (on VirtualBox it even has the same 10.0.2.15 on every VM, so "
        "all nodes would announce one IP).",
        "flanneld がラボ用 NIC を使っていません ({problem})。flanneld は使う NIC のアドレスを PublicIP として"
        "リースに登録し、他のノードはこのノードの Pod 宛ての通信をそこへ送ります。Vagrant の VM の最初の NIC は"
        " NAT/管理用で、ラボネットワークではありません (VirtualBox ではどの VM でも同じ 10.0.2.15 で、全ノードが"
        "同じ IP を名乗ります)。",
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
