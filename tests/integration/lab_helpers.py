"""Shared by the vm tests: the lab's name and nodes, running the real `labkit` CLI as a subprocess (timed if
asked), and a lab's logs printed when it failed."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from labkit.paths import LabPaths

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


def timed_cli(
    times: dict[str, float], what: str, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """:func:`labkit_cli` with a generous timeout, its wall time kept in ``times[what]`` and printed."""
    started = time.monotonic()
    result = labkit_cli(*args, check=check, timeout=2400)
    times[what] = round(time.monotonic() - started, 1)
    print(f"\n{what}: {times[what]} s", file=sys.stderr)
    return result


def dump_lab_logs(lab: str, lines: int = 80) -> None:
    """The last ``lines`` of each of the lab's logs, on stderr (for a failed up or clone)."""
    for log in sorted(LabPaths.for_lab(lab).logs.glob("*.log")):
        print(f"---- {log} (last {lines} lines) ----", file=sys.stderr)
        print("\n".join(log.read_text(errors="replace").splitlines()[-lines:]), file=sys.stderr)
