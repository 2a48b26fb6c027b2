"""Benchmark: `labkit reset etcd-ok` of the three-node lab against rebuilding it to the same point.

Rebuild = destroy + `up --until etcd` (boot, then solve the stages up to etcd: what a trainee would do without
snapshots). etcd comes from a release-shaped tarball built from Debian's binaries and served on loopback
(tests/integration/artifact_server.py), as in the vm tests. Both are measured in the same run. Prints the
times, the ratio reset/rebuild (target <= 1/30) and the disk one snapshot set takes.

    sudo .venv/bin/python bench/reset.py [--resets N]    (needs `labkit host up` or a systemd libvirtd)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from labkit.host import enter_host_namespace  # noqa: E402
from labkit.lab import Lab, destroy_by_name  # noqa: E402
from labkit.progress import LogReporter  # noqa: E402
from tests.integration.artifact_server import serve_artifacts  # noqa: E402

LAB = "bench-reset"
POINT = "etcd"


def rebuild_until(stage: str) -> float:
    """destroy + up + solve every stage up to ``stage``; seconds."""
    started = time.monotonic()
    destroy_by_name(LAB)
    lab = Lab.create("three-node", LAB)
    stages = lab.stages_until(stage)
    lab.preflight(stages)
    lab.up()
    for name in stages:
        if lab.solve(name, reporter=LogReporter()).failed:
            raise SystemExit(f"solve {name} failed")
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resets", type=int, default=3, help="resets to time (default 3)")
    args = parser.parse_args()
    Lab.create("three-node", LAB)._ensure_box(LogReporter())  # the box builds only outside the namespace
    enter_host_namespace()
    with (
        tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp,
        serve_artifacts([("etcd", "3.4.14")], Path(tmp)) as served,
    ):
        served.fetch()
        try:
            first = rebuild_until(POINT)
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
            rebuild = rebuild_until(POINT)
        finally:
            destroy_by_name(LAB)
    reset = statistics.median(resets)
    print(
        f"first build (up --until {POINT}) {first:.1f} s; rebuild (destroy + up --until {POINT}) {rebuild:.1f} s"
    )
    print(
        f"reset to {snapshot}: {', '.join(f'{r:.1f}' for r in resets)} s (median {reset:.1f} s, target < 10 s)"
    )
    print(f"ratio reset/rebuild: {reset / rebuild:.3f} = 1/{rebuild / reset:.0f} (target <= 1/30)")
    print(f"snapshot set {snapshot}: {size / 2**20:.0f} MiB of VM state over 3 VMs")
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/reset.py needs root (libvirt qemu:///system, host mode)")
    sys.exit(main())
