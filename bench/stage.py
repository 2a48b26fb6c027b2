"""Benchmark: one stage across the three nodes in parallel against the same stage node by node, and an
idempotent re-run against the first run.

Workloads that run for real on this machine (the Kubernetes and flanneld binaries cannot be downloaded here):
- ``flannel`` with the steps that need no missing binary (CNI plugins upload, kubelet's CNI flags, flanneld's
  unit and conf, the CNI conf, the network config in etcd), from tarballs built from Debian's binaries and
  served on loopback (tests/integration/artifact_server.py);
- ``cri``: Docker and containerd enabled and started on every node.

Every run starts from the same snapshot. Neither order gets the host's one-time costs (artifacts read into the
page cache, the first upload over each connection, binaries first loaded on the guests): a warm-up solve,
not measured, pays them first; then each round measures both, in alternating order (round 1 serial first,
round 2 parallel first, ...). Prints per workload: each round's serial sum and parallel time, the ratio of their
medians parallel/serial (target <= 0.45), re-run time and changes, ratio re-run/first (target <= 0.15).

    sudo .venv/bin/python bench/stage.py [--workload flannel|cri] [--rounds N]
    (needs `labkit host up` or a systemd libvirtd)
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

from labkit.hostsetup.hostmode import enter_host_namespace  # noqa: E402
from labkit.kinds.compile import load_scenario  # noqa: E402
from labkit.lab import Lab, destroy_by_name  # noqa: E402
from labkit.lab.readiness import ensure_boxes  # noqa: E402
from labkit.progress import LogReporter  # noqa: E402
from tests.integration.artifact_server import serve_artifacts  # noqa: E402

LAB = "bench-stage"
BASE = "bench-base"
FLANNEL_STEPS = {
    "cni-binaries",
    "kubelet-cni-flags",
    "network-config",
    "flanneld-unit",
    "flanneld-conf",
    "cni-conf",
}
WORKLOADS: list[tuple[str, set[str] | None]] = [("flannel", FLANNEL_STEPS), ("cri", None)]


def _timed_solve(
    lab: Lab, stage: str, only: set[str] | None, nodes: set[str] | None = None
) -> tuple[float, int]:
    started = time.monotonic()
    report = lab.solve(stage, only=only, nodes=nodes, reporter=LogReporter(), verify=False)
    seconds = time.monotonic() - started
    if report.failed:
        raise SystemExit(f"solve {stage} failed: {report.failure}")
    return seconds, report.changed_count


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workload", choices=[w for w, _ in WORKLOADS], action="append", help="only these (default: all)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="measured rounds, order alternating (default 2)"
    )
    args = parser.parse_args()
    chosen = args.workload
    workloads = [(w, only) for w, only in WORKLOADS if not chosen or w in chosen]
    ensure_boxes(load_scenario("three-node"), LogReporter())  # the box builds only outside the namespace
    enter_host_namespace()
    destroy_by_name(LAB)
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp,
        serve_artifacts([("etcd", "3.4.14"), ("cni-plugins", "0.8.7")], Path(tmp)) as served,
    ):
        served.fetch()
        try:
            Lab.create("three-node", LAB).up()
            lab = Lab.load(LAB)
            _timed_solve(lab, "etcd", None)
            lab.snapshot(BASE)
            nodes = [n.name for n in lab.scenario.nodes]
            for stage, only in workloads:
                lab.reset(BASE)
                _timed_solve(
                    lab, stage, only
                )  # warm-up, not measured: pays the one-time costs for both orders
                serials: list[list[float]] = []
                parallels: list[float] = []
                changed = 0
                for round_ in range(args.rounds):
                    order = ("serial", "parallel") if round_ % 2 == 0 else ("parallel", "serial")
                    for mode in order:
                        lab.reset(BASE)
                        if mode == "serial":
                            serials.append([_timed_solve(lab, stage, only, {node})[0] for node in nodes])
                        else:
                            seconds, changed = _timed_solve(lab, stage, only)
                            parallels.append(seconds)
                rerun, rerun_changed = _timed_solve(lab, stage, only)  # every node converged by the last run
                rows.append((stage, serials, parallels, changed, rerun, rerun_changed))
        finally:
            destroy_by_name(LAB)
    for stage, serials, parallels, changed, rerun, rerun_changed in rows:
        for round_, (serial, parallel) in enumerate(zip(serials, parallels, strict=True), start=1):
            first = "serial" if round_ % 2 else "parallel"
            per_node = ", ".join(f"{s:.1f}" for s in serial)
            print(
                f"{stage} round {round_} ({first} first): serial {per_node} s (sum {sum(serial):.1f} s); "
                f"parallel {parallel:.1f} s"
            )
        total = statistics.median(sum(serial) for serial in serials)
        parallel = statistics.median(parallels)
        print(f"  medians: serial {total:.1f} s, parallel {parallel:.1f} s, {changed} changes")
        print(f"  ratio parallel/serial: {parallel / total:.2f} (target <= 0.45)")
        print(
            f"  re-run {rerun:.1f} s, {rerun_changed} changes; ratio re-run/first: {rerun / parallel:.2f} (target <= 0.15)"
        )
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/stage.py needs root (libvirt qemu:///system, host mode)")
    sys.exit(main())
