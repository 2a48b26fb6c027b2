"""The CLI surface: every command has help, unfinished commands refuse honestly, scenarios/render work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from labkit.cli import app

ROOT = typer.main.get_command(app)
REPO = Path(__file__).resolve().parents[2]


def _commands(group: Any = ROOT, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        found.append(path)
        if hasattr(command, "commands"):
            found.extend(_commands(command, path))
    return found


ALL_COMMANDS = _commands()
DESIGN_SURFACE = {
    "scenarios",
    "validate",
    "render",
    "up",
    "status",
    "ssh",
    "solve",
    "check",
    "snapshot",
    "snapshots",
    "reset",
    "retry",
    "destroy",
    "guide",
    "doctor",
    "artifacts",
}


def test_surface_is_registered() -> None:
    assert {c[0] for c in ALL_COMMANDS} >= DESIGN_SURFACE


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=[" ".join(c) for c in ALL_COMMANDS])
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    group: Any = ROOT
    for part in command:
        group = group.commands[part]
    assert group.help and len(group.help.strip()) > 15, f"labkit {' '.join(command)} lacks help text"
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_every_command_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    for command in ALL_COMMANDS:
        assert f"labkit {' '.join(command)}" in readme, (
            f"README.md does not mention labkit {' '.join(command)}"
        )


def test_scenarios_lists_three_node() -> None:
    result = CliRunner().invoke(app, ["scenarios", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.output)}
    three = rows["three-node"]
    assert three["nodes"] == ["node1", "node2", "node3"]
    assert three["stages"][0] == "ssh" and three["stages"][-1] == "kube-dns"
    assert len(three["stages"]) == 11


def test_validate_three_node() -> None:
    result = CliRunner().invoke(app, ["validate", "three-node"])
    assert result.exit_code == 0
    assert "three-node: valid (3 nodes, 11 stages)" in result.output


def test_render_writes_vagrantfile(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["render", "three-node", "--out", str(tmp_path / "d"), "--name", "t1"])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "d" / "Vagrantfile").read_text()
    assert text.count("config.vm.define") == 3
    assert "labkit-t1-" in text


def test_render_refuses_bad_accel(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["render", "three-node", "--out", str(tmp_path), "--accel", "xen"])
    assert result.exit_code == 2


def test_up_validates_before_touching_libvirt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labkit.machines.libvirt_host import LibvirtHost

    def no_libvirt(self: LibvirtHost) -> None:
        raise AssertionError("libvirt was contacted before the scenario was validated")

    monkeypatch.setattr(LibvirtHost, "open", no_libvirt)
    bad = tmp_path / "scenario.yaml"
    bad.write_text("name: x\ndescription: y\nnodes: []\n")
    result = CliRunner().invoke(app, ["up", str(bad)])
    assert result.exit_code == 2
    assert "nodes: must not be empty" in result.output
    assert "Traceback" not in result.output


def test_up_refuses_a_bad_lab_name() -> None:
    result = CliRunner().invoke(app, ["up", "three-node", "--name", "Bad Name"])
    assert result.exit_code == 2
    assert "not a valid lab name" in result.output


def test_guide_prints_the_chapter_with_real_values() -> None:
    result = CliRunner().invoke(app, ["guide", "flannel", "--scenario", "three-node", "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "http://192.168.56.11:2379" in result.output
    assert "--enable-v2=true" in result.output


def test_guide_checklist_only() -> None:
    result = CliRunner().invoke(
        app, ["guide", "flannel", "--scenario", "three-node", "--lang", "ja", "--checklist"]
    )
    assert result.exit_code == 0
    assert result.output.count("- [ ]") >= 4
    assert "CNI" in result.output


def test_guide_without_lab_or_scenario() -> None:
    result = CliRunner().invoke(app, ["guide", "flannel"])
    assert result.exit_code == 2
    assert "--scenario" in result.output
