"""Every validation rule: the bad input is refused with file, line, field, what is wrong and the fix; exit 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from labkit.cli import app
from labkit.errors import ScenarioError
from labkit.kinds.compile import load_scenario

from .scenario_factory import scenario_data, write_scenario

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def _dup_node_name(data: dict[str, Any]) -> None:
    data["nodes"][1]["name"] = "node1"


def _dup_ip(data: dict[str, Any]) -> None:
    data["nodes"][1]["ip"] = "192.168.56.11"


def _drop(path: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        del target[last]

    return mutate


CASES: list[tuple[str, Mutation, str, str]] = [
    ("duplicate node name", _dup_node_name, "nodes[1].name", "already used by nodes[0]"),
    ("duplicate IP", _dup_ip, "nodes[1].ip", "IP 192.168.56.11 is already used by nodes[0]"),
    ("IP not an address", _set("nodes.0.ip", "192.168.56.300"), "nodes[0].ip", "is not an IP address"),
    ("IP outside lab", _set("nodes.1.ip", "192.168.57.12"), "nodes[1].ip", "outside the lab network"),
    ("IP is network address", _set("nodes.1.ip", "192.168.56.0"), "nodes[1].ip", "network or broadcast"),
    ("hostname with space", _set("nodes.1.name", "node 2"), "nodes[1].name", "not a valid hostname"),
    ("hostname with shell chars", _set("nodes.1.name", "n;rm -rf"), "nodes[1].name", "not a valid hostname"),
    ("unknown role", _set("nodes.1.roles", ["worker", "master"]), "nodes[1].roles", "unknown role 'master'"),
    ("cpus zero", _set("nodes.0.cpus", 0), "nodes[0].cpus", "cpus is 0"),
    ("cpus not a number", _set("nodes.0.cpus", "two"), "nodes[0].cpus", "whole number"),
    ("memory not a size", _set("nodes.0.memory", "lots"), "nodes[0].memory", "not a positive memory size"),
    ("memory zero", _set("nodes.0.memory", 0), "nodes[0].memory", "not a positive memory size"),
    ("pods overlap lab", _set("network.pods", "192.168.0.0/16"), "network.pods", "overlaps network.lab"),
    (
        "services overlap pods",
        _set("network.services", "10.0.128.0/24"),
        "network.services",
        "overlaps network.pods",
    ),
    (
        "lab overlaps management pool",
        _set("network.lab", "172.29.5.0/24"),
        "network.lab",
        "labkit's management networks",
    ),
    ("lab not a CIDR", _set("network.lab", "192.168.56.1/24"), "network.lab", "not a network in CIDR form"),
    (
        "cluster_dns outside services",
        _set("network.cluster_dns", "10.33.0.10"),
        "network.cluster_dns",
        "outside network.services",
    ),
    (
        "required stage undefined",
        _set("stages.1.requires", ["kubelet"]),
        "stages[1].requires[0]",
        "'kubelet' is not defined",
    ),
    (
        "required stage later",
        _set("stages.0.requires", ["flannel"]),
        "stages[0].requires[0]",
        "defined only after this one",
    ),
    (
        "step on unknown node",
        _set("stages.0.steps.0.on", ["node9"]),
        "stages[0].steps[0].on[0]",
        "neither a node nor a role",
    ),
    (
        "check on role no node has",
        _set("stages.0.checks.0.on", ["scheduler"]),
        "stages[0].checks[0].on[0]",
        "no node has role 'scheduler'",
    ),
    (
        "guide file missing",
        _set("stages.0.guide", {"en": "guides/en/etcd.md"}),
        "stages[0].guide.en",
        "does not exist",
    ),
    ("duplicate stage", _set("stages.1.name", "etcd"), "stages[1].name", "already used by stages[0]"),
    ("unknown field", _set("nodes.0.colour", "red"), "nodes[0].colour", "'colour' is not a known field"),
    ("missing field", _drop("network.lab"), "network.lab", "is required"),
    ("bad version", _set("versions.flannel", "latest"), "versions.flannel", "not a version"),
    ("no nodes", _set("nodes", []), "nodes", "must not be empty"),
    ("bad backend", _set("network.backend", {"type": "ipsec"}), "network.backend.type", "is not allowed"),
    # wrong types inside lists the whole-document checks walk: one error line, never an internal error
    ("roles not a list", _set("nodes.0.roles", 5), "nodes[0].roles", "must be a list"),
    (
        "on target a list",
        _set("stages.0.steps.0.on", [["etcd"]]),
        "stages[0].steps[0].on[0]",
        "must be a string",
    ),
    ("requires a list", _set("stages.1.requires", [["etcd"]]), "stages[1].requires[0]", "must be a string"),
]


@pytest.mark.parametrize(("mutate", "field", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule_refused_by_cli(tmp_path: Path, mutate: Mutation, field: str, message: str) -> None:
    data = scenario_data()
    mutate(data)
    path = write_scenario(tmp_path, data)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if field in line and message in line]
    assert lines, f"expected {field}: {message} in:\n{result.output}"
    line = lines[0]
    assert line.startswith(f"error: {path}:"), line
    assert "fix: " in line
    assert "Traceback" not in result.output


def test_problem_names_the_yaml_line(tmp_path: Path) -> None:
    data = scenario_data()
    data["nodes"][1]["ip"] = "192.168.57.12"
    path = write_scenario(tmp_path, data)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    (problem,) = caught.value.problems
    text_lines = path.read_text().splitlines()
    assert problem.line is not None
    assert "192.168.57.12" in text_lines[problem.line - 1]


def test_all_problems_reported_together(tmp_path: Path) -> None:
    data = scenario_data()
    data["nodes"][0]["cpus"] = 0  # a field error ...
    data["nodes"][1]["ip"] = "192.168.56.11"  # ... does not hide a cross-field one
    data["network"]["pods"] = "192.168.0.0/16"
    path = write_scenario(tmp_path, data)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    fields = {p.field for p in caught.value.problems}
    assert {"nodes[0].cpus", "nodes[1].ip", "network.pods"} <= fields


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("name: [\n", "YAML does not parse"),
        ("- a\n- b\n", "the top level is not a mapping"),
        ("name: a\nname: b\n", "duplicate key 'name'"),
    ],
    ids=["empty", "comment-only", "unparsable", "list", "duplicate-key"],
)
def test_unreadable_files(tmp_path: Path, text: str, message: str) -> None:
    path = write_scenario(tmp_path, text)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert message in result.output
    assert str(path) in result.output
    assert "Traceback" not in result.output


def test_unknown_scenario_name() -> None:
    result = CliRunner().invoke(app, ["validate", "no-such-course"])
    assert result.exit_code == 2
    assert "no scenario 'no-such-course'" in result.output
    assert "three-node" in result.output


def test_yaml_on_key_is_not_a_boolean(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, scenario_data())
    scenario = load_scenario(path)
    assert scenario.stages[0].steps[0].on == ["etcd"]


def test_debug_shows_traceback(tmp_path: Path) -> None:
    data = scenario_data()
    data["nodes"][0]["cpus"] = 0
    path = write_scenario(tmp_path, data)
    result = CliRunner().invoke(app, ["--debug", "validate", str(path)])
    assert result.exit_code != 0
    assert isinstance(result.exception, ScenarioError)


def test_validate_json(tmp_path: Path) -> None:
    import json

    data = scenario_data()
    data["nodes"][0]["cpus"] = 0
    result = CliRunner().invoke(app, ["validate", "--json", str(write_scenario(tmp_path, data))])
    assert result.exit_code == 2
    report = json.loads(result.output)
    assert report["valid"] is False
    assert report["problems"][0]["field"] == "nodes[0].cpus"


def test_step_kind_and_args_checked_by_validate(tmp_path: Path) -> None:
    data = scenario_data()
    data["stages"][0]["steps"] = [
        {"name": "a", "kind": "teleport", "on": ["node1"]},
        {
            "name": "b",
            "kind": "file",
            "on": ["node1"],
            "args": {"path": "/etc/x", "content": "x", "colour": 1},
        },
    ]
    path = write_scenario(tmp_path, data)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "stages[0].steps[0]: stage etcd, step a (teleport): unknown step kind 'teleport'" in result.output
    assert "stages[0].steps[1]:" in result.output and "'colour'" in result.output
