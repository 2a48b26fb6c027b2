"""Ship the top-level Vagrantfile.j2 and scenarios/ inside the wheel (as labkit/data/)."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent
SHIPPED = ["Vagrantfile.j2", "scenarios", "boxes"]


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        data = Path(self.build_lib) / "labkit" / "data"
        data.mkdir(parents=True, exist_ok=True)
        for name in SHIPPED:
            src = HERE / name
            dst = data / name
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, dst)


setup(cmdclass={"build_py": BuildWithData})
