"""The wheel carries Vagrantfile.j2 and the scenarios, and works outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    (path,) = out.glob("labkit-*.whl")
    return path


def test_wheel_ships_templates_and_scenarios(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "labkit/data/Vagrantfile.j2" in names
    assert "labkit/data/scenarios/three-node/scenario.yaml" in names
    assert "labkit/artifacts/catalog.yaml" in names
    assert "labkit/data/boxes/debian12/box.yaml" in names
    assert "labkit/data/web/templates/trainee.html.j2" in names  # the class web page's
    assert "labkit/data/web/static/labkit.css" in names


def test_installed_wheel_validates_and_renders(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site), "LABKIT_HOME": str(tmp_path / "home")}
    run = [sys.executable, "-c", "from labkit.cli import main; main()"]
    validate = subprocess.run(
        [*run, "validate", "three-node"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert validate.returncode == 0, validate.stderr
    assert str(site) in validate.stdout  # the shipped copy, not the repository's
    render = subprocess.run(
        [*run, "render", "three-node", "--out", "out"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert render.returncode == 0, render.stderr
    assert (tmp_path / "out" / "Vagrantfile").read_text().count("config.vm.define") == 3
