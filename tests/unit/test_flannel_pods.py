"""Chapter 09's pods on the pod network: the pods-recreated step run by this machine's sh against a stub
kubectl that answers with recorded output, and the pod_ips check on recorded output."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from labkit.kinds.checks import PodIps, PodIpsArgs, build
from labkit.kinds.compile import build_for_nodes, load_scenario
from labkit.kinds.guides import guide_context
from labkit.kinds.steps.base import StepContext
from labkit.kinds.steps.command import CommandStep
from labkit.kinds.templating import node_variables, render_args
from tests.unit.recorded import Out, Replay

# `kubectl get pod -l app=hello-world -o custom-columns=NAME:...,IP:... --no-headers` after chapter 08: three
# pods on node1 (chapter 06) and one on each new node (chapter 07), every one on its node's docker0
BEFORE = """\
hello-world-7d9c6b8f5-4xk2p   172.17.0.3
hello-world-7d9c6b8f5-9tq7m   172.17.0.4
hello-world-7d9c6b8f5-c2lwz   172.17.0.5
hello-world-7d9c6b8f5-hn8vd   172.17.0.2
hello-world-7d9c6b8f5-kp4rx   172.17.0.3
hello-world-7d9c6b8f5-zz5bf   172.17.0.2
"""
AFTER = """\
hello-world-7d9c6b8f5-2mhtw   10.0.71.2
hello-world-7d9c6b8f5-8vcjq   10.0.71.3
hello-world-7d9c6b8f5-fx9kd   10.0.24.2
hello-world-7d9c6b8f5-l6qbn   10.0.24.3
hello-world-7d9c6b8f5-s4d7j   10.0.255.2
hello-world-7d9c6b8f5-wr2hc   10.0.255.3
"""

KUBECTL = """\
echo "$*" >> "$STATE/log"
case "$*" in
  *"delete pod pinned unpinned"*) : > "$STATE/demo" ;;
  *"delete pod"*) cp "$STATE/after" "$STATE/pods" ;;
  *"get pod pinned unpinned"*) sed 's#^#pod/#' "$STATE/demo" ;;
  *"get pod -l app=hello-world -o custom-columns=NAME:.metadata.name,IP:.status.podIP --no-headers"*)
    cat "$STATE/pods" ;;
  *"get deployment hello-world"*)
    cat "$STATE/ready"; if [ -f "$STATE/ready-next" ]; then mv "$STATE/ready-next" "$STATE/ready"; fi ;;
  *) echo "unexpected kubectl $*" >&2; exit 1 ;;
esac
"""


class LocalShell:
    """A node that is this machine's sh with a stub kubectl first on PATH (no sudo, nothing real run)."""

    def __init__(self, tmp: Path) -> None:
        self.bin = tmp / "bin"
        self.bin.mkdir()
        (self.bin / "kubectl").write_text("#!/bin/sh\n" + KUBECTL)
        (self.bin / "kubectl").chmod(0o755)
        self.state = tmp / "state"
        self.state.mkdir()

    def recorded(self, pods: str, demo: str = "", ready: str = "6=6", after: str = AFTER) -> None:
        for name, text in (("pods", pods), ("demo", demo), ("ready", ready), ("after", after), ("log", "")):
            (self.state / name).write_text(text)

    @property
    def log(self) -> list[str]:
        return (self.state / "log").read_text().splitlines()

    def run(self, command: str, **kwargs: Any) -> Out:
        argv = shlex.split(command)
        assert argv[:4] == ["sudo", "-n", "sh", "-c"], argv
        env = {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}", "STATE": str(self.state)}
        done = subprocess.run(["sh", "-c", argv[4]], capture_output=True, text=True, env=env, timeout=30)
        return Out(done.stdout, done.stderr, done.returncode)


@pytest.fixture(scope="module")
def recreate() -> CommandStep:
    scenario = load_scenario("three-node")
    stage = scenario.stage("flannel")
    step = next(s for s in stage.steps if s.name == "pods-recreated")
    assert [n.name for n in scenario.select(step.on)] == ["node1"]
    (kind,) = build_for_nodes(scenario, stage, step, guide_context(scenario))
    assert isinstance(kind, CommandStep)
    return kind


def test_recreate_deletes_the_demo_pods_and_the_pods_on_docker_addresses(
    tmp_path: Path, recreate: CommandStep
) -> None:
    node = LocalShell(tmp_path)
    node.recorded(BEFORE, demo="pinned\nunpinned\n")
    result = recreate.apply(node, StepContext("node1"))
    assert result.status == "changed", result
    deletes = [line for line in node.log if " delete " in line]
    old = [line.split()[0] for line in BEFORE.splitlines()]
    assert deletes == [
        "--kubeconfig /etc/kubernetes/kubeconfig delete pod pinned unpinned --ignore-not-found",
        f"--kubeconfig /etc/kubernetes/kubeconfig delete pod {' '.join(old)}",
    ]


def test_recreate_changes_nothing_when_every_pod_is_on_the_pod_network(
    tmp_path: Path, recreate: CommandStep
) -> None:
    node = LocalShell(tmp_path)
    node.recorded(AFTER)
    result = recreate.apply(node, StepContext("node1"))
    assert (result.status, result.message) == ("ok", "skipped: unless succeeded")
    assert not [line for line in node.log if " delete " in line]


@pytest.mark.parametrize(
    ("pods", "demo", "ready"),
    [
        (AFTER.replace("10.0.255.3", "172.17.0.2"), "", "6=6"),  # one pod left on docker0
        (AFTER.replace("10.0.255.3", "10.1.0.3"), "", "6=6"),  # just past the /16
        (AFTER, "pinned\n", "6=6"),  # a demo pod still there
        (AFTER.replace("10.0.255.3", "<none>"), "", "5=6"),  # a new pod not ready yet
    ],
)
def test_recreate_guard_lets_the_step_run(
    tmp_path: Path, recreate: CommandStep, pods: str, demo: str, ready: str
) -> None:
    node = LocalShell(tmp_path)
    node.recorded(pods, demo=demo, ready=ready)
    assert recreate.guarded(node) is None


def test_recreate_leaves_a_pod_without_an_ip_alone(tmp_path: Path, recreate: CommandStep) -> None:
    """A pod still waiting for its sandbox has no IP: it is the Deployment's new pod, never deleted."""
    node = LocalShell(tmp_path)
    pending = AFTER.replace("10.0.255.3", "<none>")
    node.recorded(pending, ready="5=6", after=AFTER)
    (node.state / "ready-next").write_text("6=6")  # ready once its sandbox is up
    assert recreate.apply(node, StepContext("node1")).status == "changed"
    assert [line for line in node.log if " delete " in line] == [
        "--kubeconfig /etc/kubernetes/kubeconfig delete pod pinned unpinned --ignore-not-found",
    ]


def test_flannel_commands_parse() -> None:
    scenario = load_scenario("three-node")
    stage = scenario.stage("flannel")
    context = guide_context(scenario)
    for action in [*stage.steps, *stage.checks]:
        if action.kind != "command":
            continue
        for node in scenario.select(action.on):
            variables = {**context, "node": node_variables(scenario, node.name, context)}
            args = render_args(action.args, variables, action.name)
            for key in ("run", "unless"):
                if key in args:
                    parsed = subprocess.run(["sh", "-n", "-c", args[key]], capture_output=True, text=True)
                    assert parsed.returncode == 0, (action.name, key, parsed.stderr)


# ---- pod_ips ------------------------------------------------------------------------------------------------

ARGS = PodIpsArgs(selector="app=hello-world", network="10.0.0.0/16", kubeconfig="/etc/kubernetes/kubeconfig")
# `custom-columns=NAME,NODE,IP,DELETING --no-headers` as kubectl 1.19 prints it
LISTED = """\
hello-world-7d9c6b8f5-2mhtw   node1   10.0.71.2    <none>
hello-world-7d9c6b8f5-8vcjq   node1   10.0.71.3    <none>
hello-world-7d9c6b8f5-fx9kd   node2   10.0.24.2    <none>
"""


def test_pod_ips_every_pod_on_the_pod_network() -> None:
    conn = Replay(Out(LISTED))
    assert PodIps(ARGS).probe(conn) == (True, "3 pods, every IP in 10.0.0.0/16")
    assert conn.script() == (
        "kubectl --kubeconfig /etc/kubernetes/kubeconfig -n default get pod -l app=hello-world -o custom-columns="
        "NAME:.metadata.name,NODE:.spec.nodeName,IP:.status.podIP,DELETING:.metadata.deletionTimestamp "
        "--no-headers"
    )


def test_pod_ips_names_the_pods_on_docker_addresses() -> None:
    before = LISTED.replace("10.0.71.3 ", "172.17.0.3").replace("10.0.24.2 ", "172.17.0.2")
    ok, seen = PodIps(ARGS).probe(Replay(Out(before)))
    assert not ok
    assert seen == (
        "2 of 3 pods outside 10.0.0.0/16: hello-world-7d9c6b8f5-8vcjq on node1 has 172.17.0.3; "
        "hello-world-7d9c6b8f5-fx9kd on node2 has 172.17.0.2"
    )


def test_pod_ips_ignores_pods_being_deleted_and_fails_pods_without_an_ip() -> None:
    terminating = "hello-world-7d9c6b8f5-old00   node1   172.17.0.4   2024-05-01T10:00:00Z\n"
    assert PodIps(ARGS).probe(Replay(Out(LISTED + terminating)))[0]
    pending = "hello-world-7d9c6b8f5-new00   node3   <none>   <none>\n"
    ok, seen = PodIps(ARGS).probe(Replay(Out(LISTED + pending)))
    assert not ok and seen.endswith("hello-world-7d9c6b8f5-new00 on node3 has no IP yet")


def test_pod_ips_no_pod_and_kubectl_failing() -> None:
    assert PodIps(ARGS).probe(Replay(Out(""))) == (
        False,
        "no pod matches app=hello-world in namespace default",
    )
    refused = Out("", "The connection to the server 192.168.56.11:8080 was refused\n", 1)
    ok, seen = PodIps(ARGS).probe(Replay(refused))
    assert (
        not ok
        and seen == "kubectl failed (exit 1): The connection to the server 192.168.56.11:8080 was refused"
    )


def test_pod_ips_args() -> None:
    with pytest.raises(ValueError, match="label selector"):
        PodIpsArgs(selector="app=x; reboot", network="10.0.0.0/16", kubeconfig="k")
    with pytest.raises(ValueError, match="network like"):
        PodIpsArgs(selector="app=x", network="10.0.0.0/33", kubeconfig="k")


def test_the_flannel_stage_checks_its_pods() -> None:
    scenario = load_scenario("three-node")
    stage = scenario.stage("flannel")
    check = next(c for c in stage.checks if c.name == "hello-world-on-pod-network")
    context = guide_context(scenario)
    variables = {**context, "node": node_variables(scenario, "node1", context)}
    kind = build(stage, check, render_args(check.args, variables))
    assert isinstance(kind, PodIps) and kind.args.network == "10.0.0.0/16"
    assert check.hint is not None and not isinstance(check.hint, str)
    for text in (check.hint.en, check.hint.ja):
        assert text and "172.17.0" in text and "kubectl delete pod -l app=hello-world" in text
