"""The layers hold: import-linter's contracts pass on labkit, and fail once a lower layer imports a higher one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (.[test])")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_of_labkit(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "labkit", tree / "labkit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_contracts_hold(tmp_path: Path) -> None:
    result = lint(copy_of_labkit(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and "0 broken" in result.stdout


def test_a_model_module_importing_the_lab_breaks_them(tmp_path: Path) -> None:
    tree = copy_of_labkit(tmp_path)
    endpoints = tree / "labkit" / "model" / "endpoints.py"
    endpoints.write_text(endpoints.read_text() + "\nfrom labkit.lab import Lab  # noqa: E402\n")
    result = lint(tree)
    assert result.returncode == 1, result.stdout
    assert "labkit.model.endpoints -> labkit.lab" in result.stdout
    assert "BROKEN" in result.stdout


def test_a_check_kind_importing_a_step_kind_breaks_them(tmp_path: Path) -> None:
    tree = copy_of_labkit(tmp_path)
    port = tree / "labkit" / "kinds" / "checks" / "port.py"
    port.write_text(port.read_text() + "\nfrom labkit.kinds.steps import KINDS  # noqa: E402\n")
    result = lint(tree)
    assert result.returncode == 1, result.stdout
    assert "Checks only read" in result.stdout and "BROKEN" in result.stdout
