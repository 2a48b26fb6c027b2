"""Benchmark: `labkit reset` of the three-node lab against rebuilding it to the same point.

Rebuild = destroy + `labkit up` (what a trainee would do without snapshots). Until stages can be solved
(`up --until etcd`, the provisioning issue), the point is "lab up"; the reset target is a snapshot taken there.
Both are measured in the same run. Prints the times, the ratio reset/rebuild (target <= 1/30) and the disk
the snapshot set takes.

    sudo .venv/bin/python bench/reset.py [--resets N]    (needs `labkit host up` or a systemd libvirtd)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from labkit.host import enter_host_namespace
from labkit.lab import Lab, destroy_by_name
from labkit.progress import LogReporter

LAB = "bench-reset"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resets", type=int, default=3, help="resets to time (default 3)")
    args = parser.parse_args()
    Lab.create("three-node", LAB)._ensure_box(LogReporter())  # the box builds only outside the namespace
    enter_host_namespace()
    destroy_by_name(LAB)
    try:
        started = time.monotonic()
        Lab.create("three-node", LAB).up()
        first_up = time.monotonic() - started
        lab = Lab.load(LAB)
        lab.snapshot("bench-point")
        size = next(s.size_bytes for s in lab.snapshots() if s.record.name == "bench-point") or 0
        resets = []
        for _ in range(args.resets):
            lab.run("node1", "echo changed > /tmp/bench-marker")
            resets.append(lab.reset("bench-point").seconds)
        started = time.monotonic()
        destroy_by_name(LAB)
        Lab.create("three-node", LAB).up()
        rebuild = time.monotonic() - started
    finally:
        destroy_by_name(LAB)
    reset = statistics.median(resets)
    print(f"first up {first_up:.1f} s; rebuild (destroy + up) {rebuild:.1f} s")
    print(f"reset: {', '.join(f'{r:.1f}' for r in resets)} s (median {reset:.1f} s, target < 10 s)")
    print(f"ratio reset/rebuild: {reset / rebuild:.3f} = 1/{rebuild / reset:.0f} (target <= 1/30)")
    print(f"snapshot set: {size / 2**20:.0f} MiB of VM state over 3 VMs")
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/reset.py needs root (libvirt qemu:///system, host mode)")
    sys.exit(main())
