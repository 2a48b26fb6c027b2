"""The read-only check kinds file, http_backends, pod_reachable against recorded node output.

Most tests replay what a node printed (a fake connection); a few run the generated remote script in a local
``sh`` with stub commands on PATH, to prove its quoting and its output format.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from labkit.errors import UsageError
from labkit.kinds.checks import (
    KINDS,
    CheckResult,
    FileArgs,
    FileCheck,
    FindingReport,
    HttpBackends,
    HttpBackendsArgs,
    PodReachable,
    PodReachableArgs,
    build,
)
from labkit.lab.checking import run_checks
from labkit.model.scenario import Check, Scenario, Stage
from tests.unit.recorded import Out, Replay
from tests.unit.scenario_factory import scenario_data


class LocalShell:
    """A node that is this machine's ``sh`` with stub commands first on PATH (no sudo, nothing real run)."""

    def __init__(self, stubs: Path) -> None:
        self.stubs = stubs
        self.scripts: list[str] = []

    def run(self, command: str, **kwargs: Any) -> Out:
        argv = shlex.split(command)
        assert argv[:4] == ["sudo", "-n", "sh", "-c"], argv
        self.scripts.append(argv[4])
        env = {**os.environ, "PATH": f"{self.stubs}:{os.environ['PATH']}"}
        done = subprocess.run(["sh", "-c", argv[4]], capture_output=True, text=True, env=env, timeout=30)
        return Out(done.stdout, done.stderr, done.returncode)


def stub(directory: Path, name: str, body: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def test_registry_has_every_kind() -> None:
    assert set(KINDS) >= {
        "service",
        "command",
        "port",
        "etcd_key",
        "file",
        "http_backends",
        "pod_reachable",
        "flannel",
    }


# ---- file ---------------------------------------------------------------------------------------------------

SEED_CNI_CONF = """{
    "name": "mynet",
    "type": "flannel",
    "delegate": {
        "isDefaultGateway": true
    }
}
"""


def test_file_exists_and_missing() -> None:
    conn = Replay(Out("file 644\n"))
    assert FileCheck(FileArgs(path="/etc/flannel/flanneld.conf")).probe(conn) == (
        True,
        "/etc/flannel/flanneld.conf exists (mode 0644)",
    )
    assert "p=/etc/flannel/flanneld.conf" in conn.script()
    missing = FileCheck(FileArgs(path="/etc/cni/net.d/flannel.conf")).probe(Replay(Out("missing\n")))
    assert missing == (False, "/etc/cni/net.d/flannel.conf is missing")


def test_file_contains() -> None:
    conf = 'FLANNEL_OPTS=" \\\n-etcd-endpoints=http://192.168.56.11:2379 \\\n-iface=eth1 \\\n"\n'
    args = FileArgs(path="/etc/flannel/flanneld.conf", contains="-iface=eth1")
    assert FileCheck(args).probe(Replay(Out("file 644\n" + conf)))[0]
    ok, seen = FileCheck(args.model_copy(update={"contains": "-iface=eth2"})).probe(
        Replay(Out("file 644\n" + conf))
    )
    assert not ok and seen == "/etc/flannel/flanneld.conf (4 lines) lacks '-iface=eth2'"


def test_file_equals_json_names_the_differing_keys() -> None:
    expected = {
        "cniVersion": "0.3.1",
        "name": "mynet",
        "type": "flannel",
        "delegate": {"isDefaultGateway": True},
    }
    args = FileArgs(path="/etc/cni/net.d/flannel.conf", equals_json=expected)
    ok, seen = FileCheck(args).probe(Replay(Out("file 644\n" + SEED_CNI_CONF)))
    assert not ok and seen == "/etc/cni/net.d/flannel.conf differs: cniVersion missing"
    wrong = SEED_CNI_CONF.replace('"flannel"', '"bridge"').replace("true", "false")
    _, seen = FileCheck(args).probe(Replay(Out("file 644\n" + wrong)))
    assert 'type is "bridge", expected "flannel"' in seen
    assert "delegate.isDefaultGateway is false, expected true" in seen
    extra = FileArgs(path="/x.json", equals_json={"a": 1})
    assert (
        FileCheck(extra).probe(Replay(Out('file 600\n{"a": 1, "b": 2}')))[1]
        == "/x.json differs: b unexpected"
    )
    same = (
        '{"delegate": {"isDefaultGateway": true}, "type": "flannel", "name": "mynet", "cniVersion": "0.3.1"}'
    )
    assert FileCheck(args).probe(Replay(Out("file 644\n" + same)))[0]


def test_file_json_parse_error_has_line_and_column() -> None:
    broken = SEED_CNI_CONF.replace('"flannel",', '"flannel"')
    ok, seen = FileCheck(FileArgs(path="/etc/cni/net.d/flannel.conf", equals_json={})).probe(
        Replay(Out("file 644\n" + broken))
    )
    assert not ok
    assert seen == "/etc/cni/net.d/flannel.conf is not valid JSON: Expecting ',' delimiter at line 4 column 5"


def test_file_mode() -> None:
    assert FileCheck(FileArgs(path="/etc/etcd/etcd.conf", mode="0644")).probe(Replay(Out("file 644\n")))[0]
    ok, seen = FileCheck(FileArgs(path="/usr/local/bin/flanneld", mode="0755")).probe(
        Replay(Out("file 644\n"))
    )
    assert not ok and seen == "/usr/local/bin/flanneld has mode 0644, expected 0755"


def test_file_args() -> None:
    with pytest.raises(ValueError, match="at most one"):
        FileArgs(path="/x", contains="a", mode="0644")
    with pytest.raises(ValueError, match="octal"):
        FileArgs(path="/x", mode="rw-r--r--")


def test_file_script_quotes_the_path(tmp_path: Path) -> None:
    odd = tmp_path / "it's $(here).json"
    odd.write_text('{"Network": "10.0.0.0/16"}')
    node = LocalShell(tmp_path / "bin")
    assert FileCheck(FileArgs(path=str(odd), equals_json={"Network": "10.0.0.0/16"})).probe(node)[0]
    assert FileCheck(FileArgs(path=str(odd), mode=f"{odd.stat().st_mode & 0o777:04o}")).probe(node)[0]
    assert FileCheck(FileArgs(path=str(tmp_path / "none"))).probe(node) == (
        False,
        f"{tmp_path}/none is missing",
    )
    ok, seen = FileCheck(FileArgs(path=str(tmp_path), contains="x")).probe(node)
    assert not ok and seen.endswith("directory, not a file")


# ---- http_backends ------------------------------------------------------------------------------------------


def hello(pod: str) -> str:
    # what the course's hello-world pods answer (trimmed)
    return f"""<!DOCTYPE html>
<html>
<head><title>Hello world!</title></head>
<body>
  <div class="main">
        <h1>Host: {pod}</h1>
        <h1>IP: 10.0.1.5</h1>
  </div>
</body>
</html>"""


def loop_output(*answers: tuple[str, int]) -> str:
    return "".join(f"{body}\n@@labkit-attempt-exit {code}\n" for body, code in answers)


PODS = ("hello-world-57dc97c7f9-6pllt", "hello-world-57dc97c7f9-72fzk", "hello-world-57dc97c7f9-rpfqj")


def test_http_backends_spread_over_every_pod() -> None:
    answers = [(hello(PODS[i % 3]), 0) for i in range(30)]
    conn = Replay(Out(loop_output(*answers)))
    ok, seen = HttpBackends(HttpBackendsArgs(url="http://127.0.0.1:30080", expect_distinct=3)).probe(conn)
    assert ok
    assert seen == (
        "3 distinct of 3 expected over 30 requests: hello-world-57dc97c7f9-6pllt x10, "
        "hello-world-57dc97c7f9-72fzk x10, hello-world-57dc97c7f9-rpfqj x10"
    )
    assert len(conn.commands) == 1  # one remote shell for every request
    assert "$(seq 30)" in conn.script() and "curl -sS -m 2 http://127.0.0.1:30080" in conn.script()


def test_http_backends_only_the_local_pod() -> None:
    """Before flannel: kube-proxy sends the requests everywhere, only the local pod answers."""
    refused = "curl: (28) Operation timed out after 2001 milliseconds with 0 bytes received"
    answers = [(hello(PODS[0]), 0) if i % 3 == 0 else (refused, 28) for i in range(30)]
    ok, seen = HttpBackends(HttpBackendsArgs(url="http://127.0.0.1:30080", expect_distinct=3)).probe(
        Replay(Out(loop_output(*answers)))
    )
    assert not ok
    assert seen == (
        "1 distinct of 3 expected over 30 requests: hello-world-57dc97c7f9-6pllt x10; "
        "20x curl: (28) Operation timed out after 2001 milliseconds with 0 bytes received"
    )


def test_http_backends_nothing_listening_and_no_match() -> None:
    refused = "curl: (7) Failed to connect to 127.0.0.1 port 30080 after 0 ms: Couldn't connect to server"
    args = HttpBackendsArgs(url="http://127.0.0.1:30080", expect_distinct=1, attempts=2)
    ok, seen = HttpBackends(args).probe(Replay(Out(loop_output((refused, 7), (refused, 7)))))
    assert not ok and seen == f"0 distinct of 1 expected over 2 requests; 2x {refused}"
    ok, seen = HttpBackends(args).probe(Replay(Out(loop_output(("<h1>nginx</h1>", 0), ("", 0)))))
    assert not ok and "2 answers without" in seen


def test_http_backends_args() -> None:
    with pytest.raises(ValueError, match="group"):
        HttpBackendsArgs(url="http://x", expect_distinct=2, pattern="Host: .*")
    with pytest.raises(ValueError, match="URL"):
        HttpBackendsArgs(url="127.0.0.1:30080", expect_distinct=2)
    with pytest.raises(ValueError):
        HttpBackendsArgs(url="http://x", expect_distinct=2, attempts=10_000)


def test_http_backends_in_a_real_shell(tmp_path: Path) -> None:
    """The loop as sh runs it: a stub curl answering like three pods in turn, and the URL quoted."""
    bin_dir = tmp_path / "bin"
    counter = tmp_path / "n"
    counter.write_text("0")
    stub(
        bin_dir,
        "curl",
        f"n=$(cat {counter}); echo $((n + 1)) > {counter}\n"
        'for a; do url="$a"; done\n'
        'echo "<h1>Host: pod-$((n % 3))</h1> url=$url"\n',
    )
    args = HttpBackendsArgs(url="http://127.0.0.1:30080/?a=1&b='2'", expect_distinct=3, attempts=7)
    ok, seen = HttpBackends(args).probe(LocalShell(bin_dir))
    assert ok and seen == "3 distinct of 3 expected over 7 requests: pod-0 x3, pod-1 x2, pod-2 x2"
    args = args.model_copy(update={"pattern": r"url=(\S+)", "expect_distinct": 1})
    assert HttpBackends(args).probe(LocalShell(bin_dir))[1].endswith("http://127.0.0.1:30080/?a=1&b='2' x7")


# ---- pod_reachable ------------------------------------------------------------------------------------------

PING_OK = """PING 10.0.2.4 (10.0.2.4) 56(84) bytes of data.
64 bytes from 10.0.2.4: icmp_seq=1 ttl=62 time=1.21 ms
64 bytes from 10.0.2.4: icmp_seq=2 ttl=62 time=0.912 ms
64 bytes from 10.0.2.4: icmp_seq=3 ttl=62 time=0.877 ms

--- 10.0.2.4 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 2003ms
rtt min/avg/max/mdev = 0.877/0.999/1.210/0.149 ms"""

PING_LOST = """PING 10.0.2.4 (10.0.2.4) 56(84) bytes of data.

--- 10.0.2.4 ping statistics ---
3 packets transmitted, 0 received, 100% packet loss, time 2040ms"""


def test_pod_reachable() -> None:
    conn = Replay(Out(f"@@labkit ping\n{PING_OK}\n@@labkit exit\n0\n"))
    ok, seen = PodReachable(PodReachableArgs(netns="pod-a", target="10.0.2.4")).probe(conn)
    assert ok and seen == "pod-a -> 10.0.2.4: 3 packets transmitted, 3 received, 0% packet loss, time 2003ms"
    assert "ip netns exec pod-a ping -n -c 3 -W 2 10.0.2.4" in conn.script()


def test_pod_unreachable_shows_the_routes() -> None:
    """No flannel: the node sends the other node's pod subnet to its default route (the NAT NIC)."""
    recorded = (
        f"@@labkit ping\n{PING_LOST}\n@@labkit exit\n1\n@@labkit netns\npresent\n"
        "@@labkit node-route\n10.0.2.4 via 192.168.121.1 dev eth0 src 192.168.121.57 uid 0 \n    cache \n"
        "@@labkit pod-route\n10.0.2.4 via 10.0.1.1 dev eth0 src 10.0.1.2 uid 0 \n    cache \n"
    )
    ok, seen = PodReachable(PodReachableArgs(netns="pod-a", target="10.0.2.4")).probe(Replay(Out(recorded)))
    assert not ok
    assert seen == (
        "pod-a -> 10.0.2.4: 3 packets transmitted, 0 received, 100% packet loss, time 2040ms; "
        "node route: 10.0.2.4 via 192.168.121.1 dev eth0 src 192.168.121.57 uid 0; "
        "pod route: 10.0.2.4 via 10.0.1.1 dev eth0 src 10.0.1.2 uid 0"
    )


def test_pod_netns_missing() -> None:
    recorded = (
        '@@labkit ping\nCannot open network namespace "pod-a": No such file or directory\n'
        "@@labkit exit\n1\n@@labkit netns\nabsent\n"
        "@@labkit node-route\n10.0.2.4 dev flannel0 src 10.0.1.0 uid 0 \n    cache \n"
        '@@labkit pod-route\nCannot open network namespace "pod-a": No such file or directory\n'
    )
    ok, seen = PodReachable(PodReachableArgs(netns="pod-a", target="10.0.2.4")).probe(Replay(Out(recorded)))
    assert not ok
    assert seen == (
        'pod-a -> 10.0.2.4: Cannot open network namespace "pod-a": No such file or directory; '
        "no network namespace pod-a on this node (ip netns list); node route: 10.0.2.4 dev flannel0 src 10.0.1.0 uid 0"
    )


def test_pod_reachable_args() -> None:
    with pytest.raises(ValueError, match="IP"):
        PodReachableArgs(netns="pod-a", target="node2")
    with pytest.raises(ValueError, match="namespace"):
        PodReachableArgs(netns="../../etc", target="10.0.2.4")
    assert PodReachableArgs(netns="cni-1a2b", target="{{ nodes.node2.pod_ip }}").target.startswith("{{")


def test_pod_reachable_in_a_real_shell(tmp_path: Path) -> None:
    """The script as sh runs it, with a stub ``ip`` that fails the ping and prints routes."""
    bin_dir = tmp_path / "bin"
    stub(
        bin_dir,
        "ip",
        'case "$*" in\n'
        f'  "netns exec pod-a ping"*) printf "%s\\n" {shlex.quote(PING_LOST)}; exit 1 ;;\n'
        '  "route get 10.0.2.4") echo "10.0.2.4 via 192.168.121.1 dev eth0 src 192.168.121.57 uid 0"; echo "    cache" ;;\n'
        '  *) echo "Cannot open network namespace \\"pod-a\\": No such file or directory"; exit 1 ;;\n'
        "esac\n",
    )
    ok, seen = PodReachable(PodReachableArgs(netns="pod-a", target="10.0.2.4", count=3)).probe(
        LocalShell(bin_dir)
    )
    assert not ok
    assert "100% packet loss" in seen
    assert "no network namespace pod-a on this node" in seen  # /run/netns/pod-a does not exist here
    assert "node route: 10.0.2.4 via 192.168.121.1 dev eth0" in seen


# ---- the registry, templates, run_checks ---------------------------------------------------------------------


def _stage(*checks: dict[str, Any]) -> Stage:
    return Stage(name="flannel", title="flannel", checks=[Check.model_validate(c) for c in checks])


def test_templated_args_wait_for_their_node() -> None:
    """Raw scenario args may be templates: a templated IP or count is checked once rendered per node."""
    stage = _stage(
        {
            "name": "pods",
            "kind": "pod_reachable",
            "args": {"netns": "pod-a", "target": "{{ nodes.node2.pod_ip }}", "count": "{{ 2 + 1 }}"},
        }
    )
    build(stage, stage.checks[0])
    with pytest.raises(UsageError, match="not an IP address"):
        build(stage, stage.checks[0], {"netns": "pod-a", "target": "node2"})
    bad = _stage({"name": "pods", "kind": "pod_reachable", "args": {"netns": "pod-a", "target": "nope"}})
    with pytest.raises(UsageError, match="target"):
        build(bad, bad.checks[0])


def test_run_checks_carries_findings_in_the_trainees_language() -> None:
    from tests.unit.test_flannel_diagnoses import facts_output

    data = scenario_data()
    scenario = Scenario.model_validate(data)
    stage = _stage(
        {
            "name": "flannel-node",
            "kind": "flannel",
            "on": ["node2"],
            "args": {"flannel_version": "{{ versions.flannel }}", "lab_ip": "{{ node.ip }}"},
            "hint": {"en": "see the findings", "ja": "所見を見てください"},
        },
        {
            "name": "nodeport",
            "kind": "http_backends",
            "on": ["node1"],
            "args": {"url": "http://127.0.0.1:30080", "expect_distinct": 1},
        },
    )
    broken = facts_output(
        {
            "etcd-tool": "etcdctl",
            "etcd-v2": "Error:  client: response is invalid json. The endpoint is probably not valid etcd "
            "cluster endpoint\n@@rc 4",
            "etcd-v3": "\n@@rc 0",
        }
    )
    connections = {
        "node2": Replay(Out(broken)),
        "node1": Replay(Out(loop_output((hello(PODS[0]), 0)))),
    }
    context = {"versions": {"flannel": "0.13.0"}}
    results = run_checks(scenario, stage, connections, context, lang="ja")
    assert [(r.check, r.node, r.ok) for r in results] == [
        ("flannel-node", "node2", False),
        ("nodeport", "node1", True),
    ]
    flannel = results[0]
    assert flannel.hint == "所見を見てください"
    assert [f.id for f in flannel.findings] == ["etcd-v2-off"]
    assert "--enable-v2=true" in flannel.findings[0].fix and "etcd" in flannel.findings[0].cause
    assert "v2 API" in flannel.findings[0].cause and "無効" in flannel.findings[0].cause
    as_json = flannel.to_json()
    assert as_json["findings"][0]["id"] == "etcd-v2-off"
    assert "response is invalid json" in as_json["findings"][0]["evidence"]
    assert results[1].to_json()["findings"] == []


# ---- the CLI ------------------------------------------------------------------------------------------------


class FakeLab:
    def __init__(self, results: list[CheckResult]) -> None:
        self.results = results
        self.scenario = Scenario.model_validate(scenario_data())
        self.state = None
        self.asked: list[tuple[str | None, str]] = []

    def check(self, stage: str | None, lang: str) -> tuple[str, list[CheckResult]]:
        self.asked.append((stage, lang))
        return "flannel", self.results


def _cli(monkeypatch: pytest.MonkeyPatch, lab: FakeLab, *argv: str) -> Any:
    import labkit.cli.stages
    import labkit.kinds.guides
    import labkit.lab
    from labkit.cli import app

    monkeypatch.setattr(labkit.lab.Lab, "load", staticmethod(lambda name=None: lab))
    monkeypatch.setattr(labkit.cli.stages, "_enter_host_namespace", lambda: None)
    monkeypatch.setattr(
        labkit.kinds.guides,
        "checklist",
        lambda *a, **k: ["flannel により何ができるようになった？", "CNI とは？"],
    )
    return CliRunner().invoke(app, ["check", *argv])


FINDING = FindingReport(
    id="wrong-iface",
    cause="flanneld does not use the lab NIC",
    fix="Add -iface=eth1",
    evidence="-iface=eth0; NICs: eth0 192.168.121.57, eth1 192.168.56.12",
)


def test_cli_check_prints_findings_and_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    failed = CheckResult(
        "flannel-node", "node2", False, "1 finding: wrong-iface", "read the findings", (FINDING,)
    )
    lab = FakeLab([failed])
    result = _cli(monkeypatch, lab, "--lang", "en")
    assert result.exit_code == 1, result.output
    assert lab.asked == [(None, "en")]  # no stage: the lab picks the first one not verified
    assert "flannel-node fails on node2\n  wrong-iface\n" in result.output
    assert "    cause: flanneld does not use the lab NIC" in result.output
    assert "    fix: Add -iface=eth1" in result.output
    assert "    seen: -iface=eth0; NICs" in result.output
    assert "  hint: read the findings" in result.output
    assert "checklist" not in result.output
    as_json = _cli(monkeypatch, lab, "flannel", "--json")
    data = json_of(as_json.output)
    assert data["passed"] is False and data["checklist"] == []
    assert data["results"][0]["findings"][0]["fix"] == "Add -iface=eth1"
    assert data["failures"][0]["nodes"] == ["node2"]
    assert data["failures"][0]["findings"][0]["evidence"] == {"node2": FINDING.evidence}


def test_cli_check_passing_offers_the_checklist(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = FakeLab([CheckResult("flannel-node", "node2", True, "flanneld active, 0 restarts")])
    result = _cli(monkeypatch, lab, "flannel", "--lang", "ja")
    assert result.exit_code == 0, result.output
    assert "stage flannel verified" in result.output
    assert "- [ ] CNI とは？" in result.output
    data = json_of(_cli(monkeypatch, lab, "flannel", "--json").output)
    assert data["passed"] is True and data["checklist"][1] == "CNI とは？"


def json_of(text: str) -> Any:
    import json

    return json.loads(text)
