"""Golden files of the rendered Vagrantfile, and the template's safety rules."""

from __future__ import annotations

import os
from pathlib import Path

import jinja2
import pytest

from labkit.kinds.compile import load_scenario
from labkit.machines.vagrantfile import (
    RenderOptions,
    default_management_network,
    make_environment,
    render_vagrantfile,
    ruby_string,
)

from .scenario_factory import scenario_data, write_scenario

GOLDEN = Path(__file__).parent / "golden"
OPTIONS = {
    "qemu": RenderOptions(
        lab="three-node",
        accel="qemu",
        ssh_private_keys=("/labs/three-node/id_ed25519", "/vagrant/insecure_private_key"),
    ),
    "kvm": RenderOptions(lab="trainee1", accel="kvm", ssh_private_keys=("/labs/trainee1/id_ed25519",)),
}


@pytest.mark.parametrize("variant", sorted(OPTIONS))
def test_three_node_golden(variant: str) -> None:
    scenario = load_scenario("three-node")
    assert scenario.directory is not None
    rendered = render_vagrantfile(scenario, OPTIONS[variant]).replace(
        str(scenario.directory), "<scenario-dir>"
    )
    golden = GOLDEN / f"three-node.{variant}.Vagrantfile"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(rendered)
    assert rendered == golden.read_text(), (
        f"re-run with UPDATE_GOLDEN=1 if the change to {golden} is intended"
    )


def test_one_define_per_node_with_lab_prefix() -> None:
    text = render_vagrantfile(load_scenario("three-node"), OPTIONS["kvm"])
    assert text.count("config.vm.define") == 3
    assert "libvirt.default_prefix = 'labkit-trainee1-'" in text
    assert "libvirt__network_name: 'labkit-trainee1-lab'" in text
    assert "libvirt.management_network_name = 'labkit-trainee1-mgmt'" in text
    assert "libvirt.driver = 'kvm'" in text
    assert "cpu_model" not in text


def test_values_are_ruby_quoted_not_html_escaped(tmp_path: Path) -> None:
    data = scenario_data()
    data["description"] = "<b>x</b> & 'quotes'"
    data["box"] = "my'box\\#{`id`}"
    text = render_vagrantfile(load_scenario(write_scenario(tmp_path, data)), OPTIONS["qemu"])
    assert "node.vm.box = 'my\\'box\\\\#{`id`}'" in text
    assert "&amp;" not in text and "&#39;" not in text


def test_ruby_string_escapes() -> None:
    assert ruby_string("a'b") == "'a\\'b'"
    assert ruby_string("a\\b") == "'a\\\\b'"
    assert ruby_string("#{x}") == "'#{x}'"  # single quotes do not interpolate


def test_undefined_variables_are_errors(tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_text("{{ nope }}")
    with pytest.raises(jinja2.UndefinedError):
        make_environment(tmp_path).get_template("t.j2").render()


def test_management_networks_differ_per_lab_and_skip_taken() -> None:
    first = default_management_network("trainee1")
    assert first.name == "labkit-trainee1-mgmt"
    assert default_management_network("trainee1") == first
    other = default_management_network("trainee1", taken={first.cidr})
    assert other.cidr != first.cidr
    assert other.cidr.startswith("172.29.")


def test_bad_accel_refused() -> None:
    with pytest.raises(ValueError, match="kvm or qemu"):
        render_vagrantfile(load_scenario("three-node"), RenderOptions(lab="x", accel="xen"))
