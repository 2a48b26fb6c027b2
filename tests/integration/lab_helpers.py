"""Shared by the vm tests: the lab's name and nodes, and running the real `labkit` CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

LAB = "ci-three"
NODES = ["node1", "node2", "node3"]
IPS = {"node1": "192.168.56.11", "node2": "192.168.56.12", "node3": "192.168.56.13"}


def labkit_cli(*args: str, check: bool = True, timeout: int = 1800) -> subprocess.CompletedProcess[str]:
    """`labkit ARGS` in a subprocess (it inherits the test's network namespace and LABKIT_* settings)."""
    result = subprocess.run(
        [sys.executable, "-c", "from labkit.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"labkit {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result
