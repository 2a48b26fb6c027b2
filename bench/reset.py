"""Benchmark: `labkit reset etcd-ok` of the three-node lab against rebuilding it to the same point.

A rebuild is measured two ways, both after a first build that paid the host's one-time costs:
- **as a user types it**: `labkit destroy bench-reset` then `labkit up three-node --name bench-reset --until etcd`,
  run as CLI commands and timed end to end. That command checks every stage it solves (the service checks
  watch each unit for ~3 s) and snapshots each verified stage as `<stage>-ok`: it is what a trainee waits for;
- **its floor**: the same destroy, boot and solves through the API with checks and snapshots off
  (`solve(verify=False)`), i.e. the least work that gets the VMs back to the same point.
The ratio reset/rebuild is printed against both; the target (<= 1/30) is judged on the floor, the harder of the
two, so neither the check sleeps nor the snapshots inflate the rebuild. etcd comes from a release-shaped tarball
built from Debian's binaries and served on loopback (tests/integration/artifact_server.py), as in the vm tests.
Also prints the disk one snapshot set takes.

    sudo .venv/bin/python bench/reset.py [--resets N]    (needs `labkit host up` or a systemd libvirtd)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from labkit.hostsetup.hostmode import enter_host_namespace  # noqa: E402
from labkit.kinds.compile import load_scenario  # noqa: E402
from labkit.lab import Lab, destroy_by_name  # noqa: E402
from labkit.lab.readiness import ensure_boxes  # noqa: E402
from labkit.progress import LogReporter  # noqa: E402
from tests.integration.artifact_server import serve_artifacts  # noqa: E402

LAB = "bench-reset"
POINT = "etcd"


def labkit_cli(*args: str) -> None:
    command = [sys.executable, "-c", "from labkit.cli import main; main()", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"labkit {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")


def rebuild_as_typed(stage: str) -> float:
    """`labkit destroy` + `labkit up three-node --until STAGE` as CLI commands (checks and snapshots included)."""
    started = time.monotonic()
    labkit_cli("destroy", LAB)
    labkit_cli("up", "three-node", "--name", LAB, "--until", stage)
    return time.monotonic() - started


def rebuild_floor(stage: str) -> float:
    """destroy + up + solve every stage up to ``stage`` with no checks and no snapshots; seconds."""
    started = time.monotonic()
    destroy_by_name(LAB)
    lab = Lab.create("three-node", LAB)
    stages = lab.stages_until(stage)
    lab.preflight(stages)
    lab.up()
    for name in stages:
        if lab.solve(name, reporter=LogReporter(), verify=False).failed:
            raise SystemExit(f"solve {name} failed")
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resets", type=int, default=3, help="resets to time (default 3)")
    args = parser.parse_args()
    ensure_boxes(load_scenario("three-node"), LogReporter())  # the box builds only outside the namespace
    enter_host_namespace()
    with (
        tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp,
        serve_artifacts([("etcd", "3.4.14")], Path(tmp)) as served,
    ):
        served.fetch()
        try:
            first = rebuild_as_typed(POINT)  # pays the one-time costs; makes etcd-ok
            lab = Lab.load(LAB)
            snapshot = f"{POINT}-ok"
            sets = {s.record.name: s for s in lab.snapshots()}
            if snapshot not in sets:
                raise SystemExit(f"{snapshot} was not taken: the {POINT} checks did not pass")
            size = sets[snapshot].size_bytes or 0
            resets = []
            for _ in range(args.resets):
                lab.run("node1", "sudo systemctl stop etcd && echo broken > /tmp/bench-marker")
                resets.append(lab.reset(snapshot).seconds)
                if not lab.run("node1", "ETCDCTL_API=3 /usr/local/bin/etcdctl endpoint health").ok:
                    raise SystemExit("etcd is not healthy after the reset")
            typed = rebuild_as_typed(POINT)
            floor = rebuild_floor(POINT)
        finally:
            destroy_by_name(LAB)
    reset = statistics.median(resets)
    print(f"first build (labkit up --until {POINT}, one-time costs included) {first:.1f} s")
    print(
        f"rebuild as typed (labkit destroy + labkit up --until {POINT}: checks and snapshots included) {typed:.1f} s"
    )
    print(f"rebuild floor (destroy + up + solve up to {POINT}, no checks, no snapshots) {floor:.1f} s")
    print(
        f"reset to {snapshot}: {', '.join(f'{r:.1f}' for r in resets)} s (median {reset:.1f} s, target < 10 s)"
    )
    print(f"ratio reset/rebuild as typed: {reset / typed:.3f} = 1/{typed / reset:.0f}")
    print(f"ratio reset/rebuild floor: {reset / floor:.3f} = 1/{floor / reset:.0f} (target <= 1/30)")
    print(f"snapshot set {snapshot}: {size / 2**20:.0f} MiB of VM state over 3 VMs")
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/reset.py needs root (libvirt qemu:///system, host mode)")
    sys.exit(main())
