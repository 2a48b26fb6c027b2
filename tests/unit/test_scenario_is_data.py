"""A scenario is data a trainer downloads and runs as root: no template reaches Python internals, no path
leaves the scenario directory, and one unknown role is reported once."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit import paths
from labkit.errors import ScenarioError, UsageError
from labkit.kinds.compile import load_scenario
from labkit.kinds.guides import render_guide
from labkit.kinds.steps.file import render_template
from labkit.model import sandbox

from .scenario_factory import scenario_data, write_scenario

ESCAPES = [
    "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ lipsum.__globals__['os'].system('touch MARKER') }}",
]


def _problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("escape", ESCAPES)
def test_step_argument_reaching_python_is_refused_at_validation(tmp_path: Path, escape: str) -> None:
    marker = tmp_path / "ran"
    data = scenario_data()
    data["stages"][0]["steps"][0]["args"]["run"] = escape.replace("MARKER", str(marker))
    path = write_scenario(tmp_path / "s", data)
    problems = _problems(path)
    assert any("unsafe" in p and "stages[0].steps[0]" in p and f"{path}:" in p for p in problems), problems
    assert not marker.exists()


@pytest.mark.parametrize("escape", ESCAPES)
def test_file_template_reaching_python_is_refused(tmp_path: Path, escape: str) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "t.j2").write_text(escape.replace("MARKER", str(marker)))
    with pytest.raises(UsageError, match="unsafe"):
        render_template(tmp_path, "t.j2", {})
    assert not marker.exists()


def test_guide_reaching_python_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    data = scenario_data()
    data["stages"][0]["guide"] = {"en": "guide.md"}
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "guide.md").write_text(ESCAPES[0].replace("MARKER", str(marker)))
    scenario = load_scenario(write_scenario(tmp_path / "s", data))
    with pytest.raises(Exception, match="unsafe"):
        render_guide(scenario, "etcd", "en")
    assert not marker.exists()


def test_guide_outside_the_scenario_is_refused(tmp_path: Path) -> None:
    data = scenario_data()
    data["stages"][0]["guide"] = {"en": "/etc/hostname", "ja": "../outside.md"}
    (tmp_path / "outside.md").write_text("host file\n")
    problems = _problems(write_scenario(tmp_path / "s", data))
    assert any("stages[0].guide.en" in p and "outside the scenario directory" in p for p in problems), (
        problems
    )
    assert any("stages[0].guide.ja" in p and "outside the scenario directory" in p for p in problems), (
        problems
    )


def test_symlinked_template_out_of_the_scenario_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("root's secret\n")
    scenario_dir = tmp_path / "s"
    (scenario_dir / "templates").mkdir(parents=True)
    (scenario_dir / "templates" / "unit.service").symlink_to(secret)
    data = scenario_data()
    data["stages"][0]["steps"].append(
        {
            "name": "unit",
            "kind": "file",
            "on": ["node1"],
            "args": {"path": "/etc/x.service", "template": "templates/unit.service"},
        }
    )
    problems = _problems(write_scenario(scenario_dir, data))
    assert any("args.template" in p and "outside the scenario directory" in p for p in problems), problems
    # and the renderer itself never reads it, whoever calls it
    with pytest.raises(UsageError, match="outside"):
        render_template(scenario_dir, "templates/unit.service", {})


def test_symlink_inside_the_scenario_is_fine(tmp_path: Path) -> None:
    (tmp_path / "real.j2").write_text("x={{ x }}\n")
    (tmp_path / "link.j2").symlink_to(tmp_path / "real.j2")
    assert render_template(tmp_path, "link.j2", {"x": 1}) == "x=1\n"


def test_confined() -> None:
    root = Path("/srv/scenario")
    assert sandbox.confined(root, "guides/en/a.md") == Path("/srv/scenario/guides/en/a.md")
    assert sandbox.confined(root, "../etc/passwd") is None
    assert sandbox.confined(root, "/etc/passwd") is None


def test_one_unknown_role_is_reported_once(tmp_path: Path) -> None:
    data = scenario_data()
    data["nodes"][0]["roles"] = ["apiserver", "worker"]  # no node has etcd any more
    data["stages"][0]["steps"].append(
        {"name": "again", "kind": "command", "on": ["etcd"], "args": {"run": "true"}}
    )
    data["stages"][0]["checks"].append(
        {"name": "again", "kind": "service", "on": ["etcd"], "args": {"unit": "etcd.service"}}
    )
    problems = _problems(write_scenario(tmp_path, data))
    about_etcd = [p for p in problems if "'etcd'" in p]
    assert len(about_etcd) == 1, problems
    assert "targeted by 3 steps and checks (stage etcd) but no node has that role" in about_etcd[0]


def test_a_shipped_scenario_may_render_another_shipped_scenarios_template() -> None:
    """The flannel scenario's flannel files are three-node's own templates (one source)."""
    shipped = paths.scenarios_dir()
    assert sandbox.template_root(shipped / "flannel") == shipped.resolve()
    text = render_template(
        shipped / "flannel",
        "../three-node/templates/flannel/flannel.conf.j2",
        {"cni_version": "0.3.1"},
    )
    assert '"type": "flannel"' in text
    assert load_scenario("flannel").name == "flannel"


def test_a_downloaded_scenario_cannot_name_a_shipped_scenarios_template(tmp_path: Path) -> None:
    """Anywhere but the shipped directory, ../NAME/... is outside the scenario: at validation and at render."""
    data = scenario_data()
    data["stages"][0]["steps"].append(
        {
            "name": "borrowed",
            "kind": "file",
            "on": ["all"],
            "args": {"path": "/etc/x.conf", "template": "../three-node/templates/flannel/flannel.conf.j2"},
        }
    )
    (tmp_path / "three-node" / "templates" / "flannel").mkdir(parents=True)
    (tmp_path / "three-node" / "templates" / "flannel" / "flannel.conf.j2").write_text("{}\n")
    problems = _problems(write_scenario(tmp_path / "s", data))
    assert any("args.template" in p and "outside the scenario directory" in p for p in problems), problems
    assert sandbox.template_root(tmp_path / "s") == (tmp_path / "s").resolve()
    with pytest.raises(UsageError, match="outside"):
        render_template(tmp_path / "s", "../three-node/templates/flannel/flannel.conf.j2", {})
    # nor can a shipped scenario climb above the shipped directory
    with pytest.raises(UsageError, match="outside"):
        render_template(paths.scenarios_dir() / "flannel", "../../pyproject.toml", {})
