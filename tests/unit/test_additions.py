"""Re-solving an earlier stage keeps what the lab's later solved stages added to the same files, and the lab
state knows which stages are solved, also after a reset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labkit.errors import UsageError
from labkit.kinds.compile import load_scenario
from labkit.kinds.guides import guide_context
from labkit.lab.additions import Kept, with_additions
from labkit.lab.solving import run_stage
from labkit.model.scenario import Scenario
from labkit.state import LabState
from tests.unit.recorded import Out
from tests.unit.scenario_factory import scenario_data, write_scenario

ORDER = [
    "ssh",
    "cri",
    "etcd",
    "apiserver",
    "kubelet",
    "scheduler",
    "controller-manager",
    "node-config",
    "kube-proxy",
    "flannel",
    "kube-dns",
]


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario("three-node")


def _vars(scenario: Scenario, stage: str, step: str, solved: list[str]) -> tuple[dict[str, Any], list[Kept]]:
    compiled, kept = with_additions(scenario, scenario.stage(stage), solved)
    found = next(s for s in compiled.steps if s.name == step)
    return found.args.get("vars", {}), kept


def test_kubelet_after_flannel_keeps_the_cni_flags(scenario: Scenario) -> None:
    variables, kept = _vars(scenario, "kubelet", "kubelet-conf", ORDER[:10])
    assert variables == {"cni": True}
    assert kept == [Kept("kubelet-conf", "/etc/kubernetes/kubelet.conf", "flannel", ("cni",))]
    assert str(kept[0]) == "keeping /etc/kubernetes/kubelet.conf's additions from stage flannel (cni)"
    assert kept[0].to_json()["vars"] == ["cni"]
    # the same on the other nodes' kubelet.conf (chapter 07)
    assert _vars(scenario, "node-config", "kubelet-conf", ORDER[:10])[0] == {"cni": True}


def test_apiserver_after_chapter_06_keeps_the_service_account_key(scenario: Scenario) -> None:
    variables, kept = _vars(scenario, "apiserver", "apiserver-conf", ORDER[:7])
    assert variables == {"service_account_key": True}
    assert [(k.stage, k.vars) for k in kept] == [("controller-manager", ("service_account_key",))]


def test_nothing_is_kept_from_stages_not_solved(scenario: Scenario) -> None:
    stage = scenario.stage("kubelet")
    compiled, kept = with_additions(scenario, stage, ORDER[:9])
    assert compiled == stage and kept == []
    # the later stage itself needs nothing of the earlier ones (they add no vars)
    flannel = scenario.stage("flannel")
    assert with_additions(scenario, flannel, ORDER) == (flannel, [])


def test_the_plan_shows_the_kept_flags(scenario: Scenario) -> None:
    """`labkit solve kubelet --plan` on a lab past flannel: the diff keeps --network-plugin=cni."""

    class Missing:
        def run(self, command: str, **kwargs: Any) -> Out:
            return Out("MISSING\n@@\n")

        def put(self, local: Any, remote: str | None = None, **kwargs: Any) -> None:
            raise AssertionError("a plan uploads nothing")

    report = run_stage(
        scenario,
        "kubelet",
        {"node1": Missing()},
        only={"kubelet-conf"},
        plan=True,
        context=guide_context(scenario),
        solved=ORDER[:10],
    )
    change = report.changes["node1"]["kubelet-conf"]
    assert "+--network-plugin=cni \\" in change.diff
    assert [k.stage for k in report.kept] == ["flannel"]
    other = run_stage(
        scenario,
        "kubelet",
        {"node1": Missing()},
        only={"kubelet-unit"},
        plan=True,
        context=guide_context(scenario),
        solved=ORDER[:10],
    )
    assert other.kept == [], "kept is said only for the steps that run"


def test_additions_for_some_nodes_only_are_refused(tmp_path: Path) -> None:
    data = scenario_data()
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "x.j2").write_text("x{% if more | default(false) %} more{% endif %}\n")
    write = {"kind": "file", "args": {"path": "/etc/x.conf", "template": "templates/x.j2"}}
    data["stages"][0]["steps"].append({"name": "x", "on": ["worker"], **write})
    more = {**write, "args": {**write["args"], "vars": {"more": True}}}
    data["stages"][1]["steps"] = [{"name": "x-more", "on": ["node1"], **more}]
    scenario = load_scenario(write_scenario(tmp_path, data))
    with pytest.raises(UsageError, match="stage flannel, step x-more adds to it on node1 only") as caught:
        with_additions(scenario, scenario.stage("etcd"), ["etcd", "flannel"])
    assert "give step x-more every node of step x" in str(caught.value.hint)


def _state() -> LabState:
    return LabState("a", "three-node", "/x", "qemu", "r", "m", "172.29.1.0/24", "l", "now")


def test_state_records_solved_stages_and_a_reset_forgets_the_later_ones() -> None:
    state = _state()
    for stage in ORDER[:10]:
        state.solved(stage)
    state.solved("kubelet")  # re-solved: still once, current
    assert state.current_stage == "kubelet" and len(state.solved_stages) == 10
    state.verified_stages = ["etcd", "flannel", "kube-dns"]
    assert state.done_stages()[-1] == "kube-dns"
    state.reset_to("kube-proxy", ORDER)
    assert state.solved_stages == ORDER[:9]
    assert state.verified_stages == ["etcd"]
    assert state.current_stage == "kube-proxy"
    state.reset_to(None, ORDER)  # a snapshot taken before any stage
    assert state.solved_stages == [] and state.verified_stages == [] and state.current_stage is None


def test_a_state_written_before_solved_stages_existed_still_reads() -> None:
    old = _state().to_json()
    del old["solved_stages"]
    assert LabState.from_json(old).solved_stages == []
