"""The flannel diagnoses against recorded facts: one test per finding, and healthy nodes that raise none.

:func:`facts_output` rebuilds what the facts script prints on a healthy worker (node2 of three-node, flannel
0.13.0 with its config in etcd v2, read over curl because workers have no etcdctl); each test replaces the
sections that show one problem.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from labkit.kinds.checks import FlannelArgs, FlannelCheck
from labkit.kinds.diagnoses.flannel import (
    SPECS,
    Expectations,
    diagnose,
    facts_script,
    parse_facts,
    parse_flags,
)

KEY = "/coreos.com/network/config"
NETWORK = '{"Network": "10.0.0.0/16", "SubnetLen": 24, "Backend": {"Type": "udp", "Port": 7890}}'
V2_OFF = "Error:  client: response is invalid json. The endpoint is probably not valid etcd cluster endpoint"

FLANNELD_CONF = """FLANNEL_OPTS=" \\
-etcd-endpoints=http://192.168.56.11:2379 \\
-etcd-prefix=/coreos.com/network \\
-iface=eth1 \\
-kube-api-url=http://192.168.56.11:8080 \\
-kubeconfig-file=/etc/kubernetes/kubeconfig \\
"
"""
CNI_CONF = """{
  "cniVersion": "0.3.1",
  "name": "mynet",
  "type": "flannel",
  "delegate": {
    "isDefaultGateway": true
  }
}
"""
KUBELET_CONF = """KUBE_OPTS=" \\
--kubeconfig=/etc/kubernetes/kubeconfig \\
--container-runtime=docker \\
--cluster-dns=10.32.0.10 \\
--cluster-domain=cluster.local \\
--network-plugin=cni \\
--cni-conf-dir=/etc/cni/net.d \\
--cni-bin-dir=/opt/cni/bin \\
"
"""
ADDR = """1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 192.168.121.57/24 brd 192.168.121.255 scope global dynamic eth0\\       valid_lft 3403sec preferred_lft 3403sec
3: eth1    inet 192.168.56.12/24 brd 192.168.56.255 scope global eth1\\       valid_lft forever preferred_lft forever
4: flannel0    inet 10.0.2.0/16 scope global flannel0\\       valid_lft forever preferred_lft forever"""
V2_PRESENT = (
    '{"action":"get","node":{"key":"/coreos.com/network/config","value":'
    '"{\\"Network\\": \\"10.0.0.0/16\\", \\"SubnetLen\\": 24, \\"Backend\\": {\\"Type\\": \\"udp\\", '
    '\\"Port\\": 7890}}","modifiedIndex":9,"createdIndex":9}}\n@@rc 0'
)
V3_ABSENT = (
    '{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437",'
    '"revision":"5","raft_term":"2"}}\n@@rc 0'
)
JOURNAL_OK = """-- Logs begin at Sat 2026-11-28 06:31:02 UTC, end at Sat 2026-11-28 06:52:40 UTC. --
Nov 28 06:40:11 node2 flanneld[812]: I1128 06:40:11.980311     812 main.go:533] Using interface with name eth1 and address 192.168.56.12
Nov 28 06:40:12 node2 flanneld[812]: I1128 06:40:12.101823     812 local_manager.go:234] Picking subnet in range 10.0.1.0 ... 10.0.255.0
Nov 28 06:40:12 node2 flanneld[812]: I1128 06:40:12.345678     812 main.go:391] Wrote subnet file to /run/flannel/subnet.env"""

HEALTHY: dict[str, str] = {
    "conf": FLANNELD_CONF,
    "endpoint": "http://192.168.56.11:2379",
    "resolve": "192.168.56.11   node1",
    "etcd-tool": "curl",
    "etcd-v2": V2_PRESENT,
    "etcd-v3": V3_ABSENT,
    "addr": ADDR,
    "default-route": "default via 192.168.121.1 dev eth0 proto dhcp src 192.168.121.57 metric 1024",
    "cni-bin": "bandwidth\nbridge\ndhcp\nfirewall\nflannel\nhost-device\nhost-local\nipvlan\nloopback\n"
    "macvlan\nportmap\nptp\nsbr\nstatic\ntuning\nvlan\n@@rc 0",
    "cni-conf /etc/cni/net.d/flannel.conf": CNI_CONF,
    "flanneld-version": "v0.13.0",
    "kubelet-version": "Kubernetes v1.19.7",
    "kubelet-conf": KUBELET_CONF,
    "flanneld-unit": "NRestarts=0\nActiveState=active\nSubState=running\nLoadState=loaded\n"
    "UnitFileState=enabled\nResult=success\nExecMainStatus=0",
    "flanneld-binary": "/usr/local/bin/flanneld",
    "journal": JOURNAL_OK,
}
WANT = Expectations(
    flannel_version="0.13.0", lab_ip="192.168.56.12", etcd_endpoint="http://192.168.56.11:2379"
)


def facts_output(changes: dict[str, str | None] | None = None) -> str:
    """The facts script's output on a healthy node2, with ``changes`` (None removes a section)."""
    parts: dict[str, str | None] = {**HEALTHY, **(changes or {})}
    return "".join(f"\n@@labkit {name}\n{text}\n" for name, text in parts.items() if text is not None)


def findings(changes: dict[str, str | None] | None = None, want: Expectations = WANT) -> list[Any]:
    return diagnose(parse_facts(facts_output(changes), want.key), want)


def only(changes: dict[str, str | None], want: Expectations = WANT) -> Any:
    found = findings(changes, want)
    assert len(found) == 1, [f.id for f in found]
    return found[0]


# ---- healthy nodes ------------------------------------------------------------------------------------------


def test_healthy_worker_has_no_finding() -> None:
    assert findings() == []


def test_healthy_etcd_node_with_etcdctl_has_no_finding() -> None:
    node1 = {
        "etcd-tool": "etcdctl",
        "etcd-v2": f"{NETWORK}\n\n@@rc 0",
        "etcd-v3": "\n@@rc 0",  # v3 get of a key only v2 has: nothing, exit 0
        "addr": ADDR.replace("192.168.56.12", "192.168.56.11"),
    }
    assert findings(node1, Expectations(flannel_version="0.13.0", lab_ip="192.168.56.11")) == []


def test_binaries_absent_raise_nothing() -> None:
    """These machines have no flanneld/kubelet binary: unknown versions and no etcd tool give no finding."""
    absent = {
        "flanneld-version": "@@absent",
        "kubelet-version": "@@absent",
        "etcd-tool": "none",
        "etcd-v2": None,
        "etcd-v3": None,
    }
    assert findings(absent, Expectations()) == []


def test_flannel_check_passes_on_a_healthy_node() -> None:
    conn = Recorded(facts_output())
    ok, seen = FlannelCheck(FlannelArgs(flannel_version="0.13.0", lab_ip="192.168.56.12")).probe(conn)
    assert ok, seen
    assert seen.startswith(
        "flanneld active, 0 restarts; -etcd-endpoints=http://192.168.56.11:2379 -iface=eth1"
    )
    assert f"etcd v2 {KEY} present" in seen
    assert len(conn.commands) == 1  # every fact in one remote command


def test_flannel_check_needs_flanneld_active() -> None:
    """No systemd answer at all (no evidence of a problem) is still not a pass."""
    ok, seen = FlannelCheck(FlannelArgs()).probe(
        Recorded(facts_output({"flanneld-unit": "Failed to connect to bus"}))
    )
    assert not ok and seen.startswith("flanneld unknown")


# ---- one test per finding -----------------------------------------------------------------------------------


def test_etcd_v2_off_alone() -> None:
    finding = only({"etcd-tool": "etcdctl", "etcd-v2": f"{V2_OFF}\n\n@@rc 4", "etcd-v3": "\n@@rc 0"})
    assert finding.id == "etcd-v2-off"
    assert finding.evidence == V2_OFF
    report = finding.report("en")
    assert "--enable-v2=true" in report.fix and "flannel v0.13.0" in report.cause
    assert "--enable-v2=true" in finding.report("ja").fix


def test_etcd_v2_off_over_http() -> None:
    """A worker without etcdctl asks over HTTP; etcd with v2 off answers /v2/keys with a bare 404."""
    finding = only({"etcd-v2": "404 page not found\n@@rc 0"})
    assert finding.id == "etcd-v2-off" and "404 page not found" in finding.evidence


def test_etcd_v2_off_does_not_matter_to_flannel_018() -> None:
    want = Expectations(flannel_version="0.18.0", lab_ip="192.168.56.12")
    v3 = (
        f'{{"header":{{"revision":"5"}},"kvs":[{{"key":"x","value":"{_b64(NETWORK)}"}}],"count":"1"}}\n@@rc 0'
    )
    assert findings({"etcd-v2": "404 page not found\n@@rc 0", "etcd-v3": v3}, want) == []


def test_hostname_endpoint_resolving_to_vagrants_loopback() -> None:
    conf = FLANNELD_CONF.replace("http://192.168.56.11:2379", "http://node1:2379")
    finding = only(
        {"conf": conf, "endpoint": "http://node1:2379", "resolve": "127.0.2.1       node1 node1"},
        Expectations(
            flannel_version="0.13.0", lab_ip="192.168.56.11", etcd_endpoint="http://192.168.56.11:2379"
        ),
    )
    assert finding.id == "hostname-endpoint"
    assert finding.evidence == (
        "-etcd-endpoints=http://node1:2379; node1 resolves here to 127.0.2.1 (loopback: this node itself)"
    )
    report = finding.report("en")
    assert "flannel-io/flannel#977" in report.cause and "127.0.X.1" in report.cause
    assert "-etcd-endpoints=http://192.168.56.11:2379" in report.fix
    assert "IP" in finding.report("ja").fix


# Seen on the real lab (tests/integration/test_flannel_real.py), flanneld v0.13.0 built from source, etcd 3.4:
LOOKUP_REFUSED = (
    "Dec 04 21:02:23 node2 flanneld[678]: E1204 21:02:23.073927     678 main.go:386] Couldn't fetch network config: "
    "client: etcd cluster is unavailable or misconfigured; error #0: dial tcp: lookup etcd on [::1]:53: read udp "
    "[::1]:36151->[::1]:53: read: connection refused"
)
LOOPBACK_REFUSED = (
    "Dec 04 21:09:30 node1 flanneld[1004]: E1204 21:09:30.044517    1004 main.go:386] Couldn't fetch network "
    "config: client: etcd cluster is unavailable or misconfigured; error #0: dial tcp 127.0.2.1:2379: connect: "
    "connection refused"
)
WATCH_V2_OFF = (
    "Dec 04 21:03:49 node3 flanneld[551]: E1204 21:03:49.151213     551 watch.go:43] Watch subnets: client: "
    "response is invalid json. The endpoint is probably not valid etcd cluster endpoint."
)
KEY_NOT_FOUND = (
    "Dec 04 21:05:20 node2 flanneld[675]: E1204 21:05:20.185794     675 main.go:386] Couldn't fetch network "
    "config: 100: Key not found (/coreos.com/network/config) [8]"
)
IFACE_ETH0 = (
    "I1204 21:04:13.291175     670 main.go:531] Using interface with name eth0 and address 172.29.67.92"
)


def test_hostname_endpoint_resolving_to_etcds_ip_is_no_finding() -> None:
    """labkit's /etc/hosts maps every node by its lab IP, and with it this flanneld leases as with the IP."""
    conf = FLANNELD_CONF.replace("http://192.168.56.11:2379", "http://node1:2379")
    assert findings({"conf": conf, "endpoint": "http://node1:2379", "resolve": "192.168.56.11   node1"}) == []


def test_hostname_endpoint_that_does_not_resolve_quotes_flanneld() -> None:
    conf = FLANNELD_CONF.replace("http://192.168.56.11:2379", "http://etcd:2379")
    unresolved = "curl: (6) Could not resolve host: etcd\n@@rc 6"
    found = findings(
        {
            "conf": conf,
            "endpoint": "http://etcd:2379",
            "resolve": "",
            "etcd-v2": unresolved,
            "etcd-v3": unresolved,
            "journal": JOURNAL_OK + "\n" + LOOKUP_REFUSED,
        }
    )
    assert [f.id for f in found] == ["hostname-endpoint", "etcd-unreachable"]
    assert found[0].evidence == (
        "-etcd-endpoints=http://etcd:2379; etcd does not resolve here; flanneld: Couldn't fetch network config: "
        "client: etcd cluster is unavailable or misconfigured; error #0: dial tcp: lookup etcd on [::1]:53: read "
        "udp [::1]:36151->[::1]:53: read: connection refused"
    )
    assert "on this node it does not resolve" in found[0].report("en").cause


def test_hostname_endpoint_resolving_to_loopback_quotes_flanneld() -> None:
    conf = FLANNELD_CONF.replace("http://192.168.56.11:2379", "http://node1:2379")
    finding = findings(
        {
            "conf": conf,
            "endpoint": "http://node1:2379",
            "resolve": "127.0.2.1       node1",
            "journal": JOURNAL_OK + "\n" + LOOPBACK_REFUSED,
        },
        Expectations(
            flannel_version="0.13.0", lab_ip="192.168.56.11", etcd_endpoint="http://192.168.56.11:2379"
        ),
    )[0]
    assert finding.id == "hostname-endpoint"
    assert finding.evidence.endswith("dial tcp 127.0.2.1:2379: connect: connection refused")


def test_hostname_endpoint_resolving_elsewhere_than_etcd() -> None:
    conf = FLANNELD_CONF.replace("http://192.168.56.11:2379", "http://node1:2379")
    finding = only({"conf": conf, "endpoint": "http://node1:2379", "resolve": "192.168.56.99   node1"})
    assert finding.evidence.endswith("node1 resolves here to 192.168.56.99, not etcd's 192.168.56.11")


def test_etcd_v2_off_under_a_running_flanneld_quotes_its_watch_line() -> None:
    """etcd restarted without --enable-v2: the running flanneld stays active with 0 restarts and logs the
    invalid-json line every second; the finding needs no restart count."""
    finding = only({"etcd-v2": "404 page not found\n@@rc 0", "journal": JOURNAL_OK + "\n" + WATCH_V2_OFF})
    assert finding.id == "etcd-v2-off"
    assert finding.evidence == (
        "GET /v2/keys: 404 page not found; flanneld: Watch subnets: client: response is invalid json. The "
        "endpoint is probably not valid etcd cluster endpoint."
    )


def test_network_config_missing_quotes_flanneld() -> None:
    absent = (
        '{"errorCode":100,"message":"Key not found","cause":"/coreos.com/network/config","index":8}\n@@rc 0'
    )
    finding = only({"etcd-v2": absent, "journal": JOURNAL_OK + "\n" + KEY_NOT_FOUND})
    assert finding.id == "network-config-missing"
    assert finding.evidence.endswith(
        "flanneld: Couldn't fetch network config: 100: Key not found (/coreos.com/network/config) [8]"
    )


def test_wrong_iface_quotes_the_nic_flanneld_took() -> None:
    conf = FLANNELD_CONF.replace("-iface=eth1", "-iface=eth0")
    finding = only({"conf": conf, "journal-iface": IFACE_ETH0})
    assert finding.evidence.endswith("; flanneld: Using interface with name eth0 and address 172.29.67.92")


def test_endpoint_without_scheme() -> None:
    conf = FLANNELD_CONF.replace("http://192.168.56.11:2379", "192.168.56.11:2379")
    finding = only({"conf": conf})
    assert finding.id == "endpoint-no-scheme"
    assert "-etcd-endpoints=http://192.168.56.11:2379" in finding.report("en").fix


def test_config_in_v3_for_flannel_013() -> None:
    """The classic: etcdctl's default API is 3 since etcd 3.4, so `etcdctl put` wrote where flannel 0.13 cannot see."""
    finding = only(
        {
            "etcd-tool": "etcdctl",
            "etcd-v2": "Error:  100: Key not found (/coreos.com/network/config) [8]\n\n@@rc 4",
            "etcd-v3": f"{KEY}\n{NETWORK}\n\n@@rc 0",
        }
    )
    assert finding.id == "config-in-wrong-api"
    report = finding.report("en")
    assert "v3" in report.cause and "reads v2" in report.cause
    assert report.fix.startswith(
        "Write it through v2: ETCDCTL_API=2 etcdctl --endpoints http://192.168.56.11:2379 set"
    )
    assert finding.evidence.startswith(f"v3 {KEY} = {NETWORK}; v2: Error:  100: Key not found")


def test_config_in_v2_for_flannel_018() -> None:
    want = Expectations(flannel_version="v0.18.1", lab_ip="192.168.56.12", network_config=NETWORK)
    finding = only({}, want)
    assert finding.id == "config-in-wrong-api"
    assert "ETCDCTL_API=3 etcdctl" in finding.report("en").fix and " put " in finding.report("en").fix


def test_config_in_wrong_api_uses_flanneld_version_when_the_scenario_gives_none() -> None:
    v3 = f'{{"header":{{}},"kvs":[{{"key":"x","value":"{_b64(NETWORK)}"}}]}}\n@@rc 0'
    changes = {
        "etcd-v2": '{"errorCode":100,"message":"Key not found","cause":"/coreos.com","index":5}\n@@rc 0',
        "etcd-v3": v3,
    }
    assert only(changes, Expectations(lab_ip="192.168.56.12")).id == "config-in-wrong-api"
    # no version known at all (no flanneld binary, none in the scenario): which API is wrong is not evidence
    assert findings({**changes, "flanneld-version": "@@absent"}, Expectations(lab_ip="192.168.56.12")) == []


def test_network_config_missing() -> None:
    finding = only(
        {"etcd-v2": '{"errorCode":100,"message":"Key not found","cause":"/coreos.com","index":5}\n@@rc 0'}
    )
    assert finding.id == "network-config-missing"
    assert "ETCDCTL_API=2 etcdctl" in finding.report("en").fix


def test_network_config_missing_for_flannel_018_with_v2_off() -> None:
    want = Expectations(flannel_version="0.21.5", lab_ip="192.168.56.12", network_config=NETWORK)
    finding = only({"etcd-v2": "404 page not found\n@@rc 0"}, want)
    assert finding.id == "network-config-missing"
    assert finding.report("en").fix == (
        f"On the etcd node: ETCDCTL_API=3 etcdctl --endpoints http://192.168.56.11:2379 put {KEY} '{NETWORK}'"
    )


def test_etcd_unreachable() -> None:
    refused = (
        "curl: (7) Failed to connect to 127.0.0.1 port 2379 after 0 ms: Couldn't connect to server\n@@rc 7"
    )
    finding = only({"endpoint": "http://127.0.0.1:2379", "etcd-v2": refused, "etcd-v3": refused})
    assert finding.id == "etcd-unreachable" and "127.0.0.1:2379" in finding.report("en").cause


def test_wrong_iface_names_the_nat_nic() -> None:
    finding = only({"conf": FLANNELD_CONF.replace("-iface=eth1", "-iface=eth0")})
    assert finding.id == "wrong-iface"
    assert finding.report("en").fix.startswith("Add -iface=eth1 (the NIC holding 192.168.56.12)")
    assert "-iface=eth0, but 192.168.56.12 is on eth1" in finding.report("en").cause
    assert finding.evidence == "-iface=eth0; NICs: eth0 192.168.121.57, eth1 192.168.56.12, flannel0 10.0.2.0"


def test_wrong_iface_missing() -> None:
    finding = only({"conf": FLANNELD_CONF.replace("-iface=eth1 \\\n", "")})
    assert finding.id == "wrong-iface"
    assert "no -iface: flanneld takes the default route's NIC, eth0" in finding.report("en").cause


def test_iface_as_the_lab_ip_is_fine_and_unknown_nic_is_not() -> None:
    assert findings({"conf": FLANNELD_CONF.replace("-iface=eth1", "-iface=192.168.56.12")}) == []
    finding = only(
        {"conf": FLANNELD_CONF.replace("-iface=eth1", "-iface=enp0s8")},
        Expectations(flannel_version="0.13.0"),
    )
    assert finding.id == "wrong-iface" and "enp0s8 names no NIC" in finding.report("en").cause


def test_cni_binaries_missing() -> None:
    finding = only({"cni-bin": "bandwidth\nbridge\nhost-local\nportmap\n@@rc 0"})
    assert finding.id == "cni-binaries-missing"
    assert "lacks loopback, flannel" in finding.report("en").cause
    missing_dir = only({"cni-bin": "ls: cannot access '/opt/cni/bin': No such file or directory\n@@rc 2"})
    assert missing_dir.evidence == "/opt/cni/bin does not exist"
    assert "bridge, host-local, loopback, flannel" in missing_dir.report("ja").cause


def test_cni_conf_without_cni_version() -> None:
    seed = CNI_CONF.replace('  "cniVersion": "0.3.1",\n', "")
    finding = only({"cni-conf /etc/cni/net.d/flannel.conf": seed})
    assert finding.id == "cni-conf-invalid"
    assert "no cniVersion" in finding.report("en").cause
    assert finding.evidence == "/etc/cni/net.d/flannel.conf keys: name, type, delegate"


def test_cni_conf_not_json() -> None:
    broken = CNI_CONF.replace('"type": "flannel",', '"type": "flannel"')
    finding = only({"cni-conf /etc/cni/net.d/flannel.conf": broken})
    assert finding.id == "cni-conf-invalid"
    assert "not valid JSON: Expecting ',' delimiter at line 5 column 3" in finding.report("en").cause
    assert finding.evidence == '/etc/cni/net.d/flannel.conf line 5: "delegate": {'


def test_cni_conf_missing() -> None:
    assert only({"cni-conf /etc/cni/net.d/flannel.conf": None}).id == "cni-conf-missing"


def test_network_plugin_removed() -> None:
    finding = only({"kubelet-version": "Kubernetes v1.24.3"})
    assert finding.id == "network-plugin-removed"
    assert finding.evidence == (
        "v1.24.3 (kubelet --version); kubelet.conf has --cni-bin-dir, --cni-conf-dir, --network-plugin"
    )
    assert "containerd" in finding.report("en").fix


def test_network_plugin_removed_from_the_scenarios_version() -> None:
    want = Expectations(flannel_version="0.13.0", kubernetes_version="1.25.0", lab_ip="192.168.56.12")
    finding = only({"kubelet-version": "@@absent"}, want)
    assert finding.id == "network-plugin-removed" and "the scenario's Kubernetes version" in finding.evidence
    assert (
        findings(
            {"kubelet-version": "@@absent"}, Expectations(flannel_version="0.13.0", lab_ip="192.168.56.12")
        )
        == []
    )


def test_flanneld_restarting_with_its_journal() -> None:
    journal = "\n".join(
        f"Nov 28 06:4{i}:0{i} node2 flanneld[{900 + i}]: E1128 06:4{i}:0{i}.123456     {900 + i} main.go:289] "
        "Couldn't fetch network config: client: response is invalid json. The endpoint is probably not valid "
        "etcd cluster endpoint."
        for i in range(8)
    )
    changes = {
        "flanneld-unit": "NRestarts=12\nActiveState=activating\nSubState=auto-restart\nLoadState=loaded",
        "journal": journal,
    }
    finding = only(changes)
    assert finding.id == "flanneld-restarting"
    assert "activating/auto-restart, 12 restarts" in finding.report("en").cause
    lines = finding.evidence.splitlines()
    assert lines[0] == "ActiveState=activating SubState=auto-restart NRestarts=12; journal:"
    assert len(lines) == 7 and "flanneld[907]" in lines[-1]  # the last 6 lines of the journal


def test_flanneld_not_installed_and_conf_missing() -> None:
    found = findings(
        {
            "conf": "@@absent",
            "endpoint": "http://127.0.0.1:2379",
            "etcd-v2": None,
            "etcd-v3": None,
            "etcd-tool": "none",
            "flanneld-unit": "NRestarts=0\nActiveState=inactive\nSubState=dead\nLoadState=not-found",
            "journal": "-- No entries --",
        }
    )
    assert [f.id for f in found] == ["flanneld-conf-missing", "flanneld-not-installed"]


PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NEVER_INSTALLED = {
    "flanneld-unit": "NRestarts=0\nActiveState=inactive\nSubState=dead\nLoadState=not-found\n"
    "UnitFileState=\nResult=success\nExecMainStatus=0",
    "flanneld-binary": f"@@absent PATH={PATH}",
    "flanneld-version": "@@absent",
    "journal": "-- No entries --",
}


def unit(**properties: str) -> str:
    return "\n".join(f"{name}={value}" for name, value in {"LoadState": "loaded", **properties}.items())


def test_flanneld_never_installed_says_so_not_restarting() -> None:
    finding = only(NEVER_INSTALLED)
    assert finding.id == "flanneld-not-installed"
    assert finding.evidence == f"systemctl show flanneld: LoadState=not-found; no flanneld on PATH={PATH}"
    en, ja = finding.report("en"), finding.report("ja")
    assert en.cause == (
        "flanneld is not installed on this node: no flanneld binary (on PATH) and no flanneld.service unit. "
        "Nothing runs flannel here."
    )
    assert "EnvironmentFile=/etc/flannel/flanneld.conf" in en.fix and "enable --now flanneld" in en.fix
    assert "インストールされていません" in ja.cause and "バイナリ" in ja.cause


def test_flanneld_binary_the_unit_runs_is_absent() -> None:
    """The unit is there but its ExecStart binary is not: every start fails, the restarts are not the cause."""
    changes = {
        "flanneld-unit": unit(
            ActiveState="activating",
            SubState="auto-restart",
            NRestarts="5",
            Result="exit-code",
            ExecMainStatus="203",
        ),
        "flanneld-binary": "@@absent /usr/local/bin/flanneld",
    }
    finding = only(changes)
    assert finding.id == "flanneld-not-installed"
    assert finding.evidence == (
        "/usr/local/bin/flanneld: no such file; ActiveState=activating NRestarts=5 (each start fails)"
    )
    assert "flanneld.service runs /usr/local/bin/flanneld, which does not exist" in finding.report("en").cause


def test_flanneld_absent_from_path_while_its_unit_runs_raises_nothing() -> None:
    """A running unit proves a binary; not finding one on PATH is no evidence (the binaries-absent rule)."""
    assert findings({"flanneld-binary": f"@@absent PATH={PATH}"}) == []


def test_flanneld_inactive_with_0_restarts_was_not_started() -> None:
    changes = {
        "flanneld-unit": unit(
            ActiveState="inactive", SubState="dead", NRestarts="0", UnitFileState="disabled", Result="success"
        ),
        "journal": "-- No entries --",
    }
    finding = only(changes)
    assert finding.id == "flanneld-not-started"
    assert (
        finding.evidence
        == "ActiveState=inactive SubState=dead NRestarts=0 Result=success UnitFileState=disabled"
    )
    en, ja = finding.report("en"), finding.report("ja")
    assert en.cause == (
        "flanneld is installed but not running (inactive/dead, disabled): it was never started or was stopped; "
        "it did not crash (0 restarts). It is not enabled either, so a reboot would not start it."
    )
    assert en.fix.startswith("systemctl enable --now flanneld")
    assert "inactive/dead、disabled" in ja.cause and "有効化" in ja.cause
    enabled = only({**changes, "flanneld-unit": changes["flanneld-unit"].replace("disabled", "enabled")})
    assert "reboot" not in enabled.report("en").cause


def test_flanneld_restarting_with_4_restarts() -> None:
    finding = only({"flanneld-unit": unit(ActiveState="active", SubState="running", NRestarts="4")})
    assert finding.id == "flanneld-restarting"
    assert "(active/running, 4 restarts): it exits and systemd restarts it" in finding.report("en").cause
    assert finding.evidence.startswith("ActiveState=active SubState=running NRestarts=4; journal:\n")


def test_flanneld_waiting_for_its_first_restart_is_restarting() -> None:
    changes = {"flanneld-unit": unit(ActiveState="activating", SubState="auto-restart", NRestarts="0")}
    assert only(changes).id == "flanneld-restarting"


def test_flanneld_exited_once_and_not_restarted() -> None:
    changes = {
        "flanneld-unit": unit(
            ActiveState="failed", SubState="failed", NRestarts="0", Result="exit-code", ExecMainStatus="1"
        )
    }
    finding = only(changes)
    assert finding.id == "flanneld-exited"
    assert "(failed/failed, exit-code, exit status 1)" in finding.report("en").cause
    assert "終了コード 1" in finding.report("ja").cause
    assert "journal:" in finding.evidence


def test_flanneld_state_without_a_restart_count_raises_nothing() -> None:
    assert findings({"flanneld-unit": unit(ActiveState="inactive", SubState="dead")}) == []


def test_every_finding_speaks_both_languages() -> None:
    for spec in SPECS.values():
        assert spec.cause.en and spec.cause.ja and spec.fix.en and spec.fix.ja, spec.id
        assert spec.cause.en != spec.cause.ja


def test_parse_flags() -> None:
    flags = parse_flags(
        'FLANNEL_OPTS="--etcd-endpoints http://10.0.0.1:2379,http://10.0.0.2:2379 -ip-masq -iface=eth1"'
    )
    assert flags == {
        "etcd-endpoints": ["http://10.0.0.1:2379,http://10.0.0.2:2379"],
        "ip-masq": ["true"],
        "iface": ["eth1"],
    }


# ---- the check kind and its one remote command ---------------------------------------------------------------


class Recorded:
    def __init__(self, stdout: str, exited: int = 0) -> None:
        self.stdout = stdout
        self.exited = exited
        self.commands: list[str] = []

    def run(self, command: str, **kwargs: Any) -> Any:
        self.commands.append(command)
        return self

    stderr = ""


def test_flannel_check_fails_with_its_findings() -> None:
    conf = FLANNELD_CONF.replace("-iface=eth1", "-iface=eth0").replace("192.168.56.11:2379", "etcd:2379")
    check = FlannelCheck(FlannelArgs(flannel_version="0.13.0", lab_ip="192.168.56.12"))
    changes = {
        "conf": conf,
        "endpoint": "http://etcd:2379",
        "resolve": "",
        "etcd-v2": "404 page not found\n@@rc 0",
    }
    seen = check.examine(Recorded(facts_output(changes)))
    assert not seen.ok
    assert seen.seen == "3 findings: hostname-endpoint, etcd-v2-off, wrong-iface"
    assert [f.id for f in seen.findings] == ["hostname-endpoint", "etcd-v2-off", "wrong-iface"]


def test_flannel_check_when_sudo_fails() -> None:
    node = Recorded("", exited=1)
    node.stderr = "sudo: a password is required"
    ok, seen = FlannelCheck(FlannelArgs()).probe(node)
    assert not ok and seen == "facts not gathered (exit 1): sudo: a password is required"


def test_flannel_args() -> None:
    with pytest.raises(ValueError, match="version"):
        FlannelArgs(flannel_version="latest")
    with pytest.raises(ValueError, match="absolute"):
        FlannelArgs(conf="flanneld.conf")


def test_facts_script_in_a_real_shell(tmp_path: Path) -> None:
    """The script as sh runs it on a worker: stub etcdctl (v2 off), ip, systemctl, journalctl, getent.

    /opt/cni/bin and /etc/cni/net.d are this machine's (absent here), flanneld and kubelet are absent."""
    conf = tmp_path / "flannel dir" / "flanneld.conf"
    conf.parent.mkdir()
    conf.write_text(FLANNELD_CONF.replace("http://192.168.56.11:2379", "node1:2379"))
    bin_dir = tmp_path / "bin"
    calls = tmp_path / "calls"
    stubs = {
        "etcdctl": f'echo "API=$ETCDCTL_API $*" >> {calls}\n'
        f'if [ "$ETCDCTL_API" = 2 ]; then echo {shlex.quote(V2_OFF)} >&2; exit 4; fi\nexit 0\n',
        "ip": 'case "$*" in\n'
        f"  '-4 -o addr show') printf '%s\\n' {shlex.quote(ADDR)} ;;\n"
        "  '-4 route show default') echo 'default via 192.168.121.1 dev eth0 proto dhcp' ;;\n"
        "esac\n",
        "systemctl": 'echo "NRestarts=3"; echo "ActiveState=active"; echo "SubState=running"; echo "LoadState=loaded"\n',
        "journalctl": "echo 'Nov 28 06:40:12 node2 flanneld[812]: I1128 main.go:391] Wrote subnet file'\n",
        "getent": 'echo "127.0.2.1       $2"\n',
        "timeout": 'shift; exec "$@"\n',
    }
    for name, body in stubs.items():
        stub(bin_dir, name, body)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    script = facts_script(str(conf), KEY)
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == [
        f"API=2 --endpoints http://node1:2379 get {KEY}",
        f"API=3 --endpoints http://node1:2379 --dial-timeout 3s get {KEY}",
    ]
    facts = parse_facts(done.stdout, KEY)
    assert facts.flags["etcd-endpoints"] == ["node1:2379"] and facts.flags["iface"] == ["eth1"]
    assert facts.etcd_tool == "etcdctl" and facts.v2.state == "v2-off" and facts.v3.state == "absent"
    assert facts.addresses["eth1"] == ["192.168.56.12"] and facts.default_iface == "eth0"
    assert facts.flanneld_version is None and facts.kubelet_version is None
    want = Expectations(flannel_version="0.13.0", lab_ip="192.168.56.12")
    ids = [f.id for f in diagnose(facts, want)]
    assert ids[:3] == ["endpoint-no-scheme", "hostname-endpoint", "etcd-v2-off"]
    assert ids[-1] == "flanneld-restarting"
    if not Path("/opt/cni/bin").exists():
        assert "cni-binaries-missing" in ids


def stub(directory: Path, name: str, body: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("installed", [True, False])
def test_facts_script_finds_the_binary_the_unit_runs(tmp_path: Path, installed: bool) -> None:
    """The flanneld-binary section in a real sh: ExecStart's path= as systemctl prints it, tested on disk."""
    binary = tmp_path / "opt bin" / "flanneld"
    if installed:
        stub(binary.parent, "flanneld", "exit 0\n")
    exec_start = (
        f"ExecStart={{ path={binary} ; argv[]={binary} $FLANNEL_OPTS ; ignore_errors=no ; start_time=[n/a] ; "
        "stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }"
    )
    state = "NRestarts=0\nActiveState=inactive\nSubState=dead\nLoadState=loaded\nUnitFileState=disabled"
    bin_dir = tmp_path / "bin"
    stub(
        bin_dir,
        "systemctl",
        f'case "$*" in *ExecStart*) echo {shlex.quote(exec_start)} ;; *) printf "%s\\n" {shlex.quote(state)} ;; esac\n',
    )
    stub(bin_dir, "journalctl", "echo '-- No entries --'\n")
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    done = subprocess.run(
        ["sh", "-c", facts_script("/nonexistent/flanneld.conf", KEY)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    facts = parse_facts(done.stdout, KEY)
    ids = [f.id for f in diagnose(facts, Expectations())]
    if installed:
        assert facts.flanneld_binary == str(binary) and facts.flanneld_absent is None
        assert "flanneld-not-started" in ids and "flanneld-not-installed" not in ids
    else:
        assert facts.flanneld_absent == str(binary) and facts.flanneld_binary is None
        assert "flanneld-not-installed" in ids and "flanneld-not-started" not in ids


@pytest.mark.parametrize(
    "module", ["labkit.kinds.diagnoses", "labkit.kinds.diagnoses.flannel", "labkit.kinds.checks"]
)
def test_each_package_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """checks and diagnoses import each other (the flannel check, checks.base): any of them may come first."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
