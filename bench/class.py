"""Benchmark: a class's trainee labs cloned with their memory, against building one lab from scratch.

In one run, on pod-routes `--until routes` (the CNI plugins built from Debian's binaries and served on loopback,
as in the vm tests; three-node `--until etcd` needs cri's sandbox image, which no registry here provides):
- **baseline**: `labkit up pod-routes --until routes` of one lab from scratch, as a user types it;
- **class**: `labkit class up` of TRAINEES trainees at routes (the golden lab is built once, then a clone each);
  the time to the k-th ready trainee lab (cloned, SSH answering, the routes checks passing), and each added
  clone as a fraction of the baseline (target <= 1/20);
- **RAM per added lab**, with KSM off and then on (host MemAvailable before and after, settled);
- **disk per trainee lab** above the golden lab (its qcow2 copies).

    sudo .venv/bin/python bench/class.py [--trainees N]   (needs `labkit host up` or a systemd libvirtd)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from labkit.classroom import Classroom  # noqa: E402
from labkit.classroom.capacity import KSM, ksm_state, ram_available_mib  # noqa: E402
from labkit.hostsetup.hostmode import enter_host_namespace  # noqa: E402
from labkit.kinds.compile import load_scenario  # noqa: E402
from labkit.lab import Lab, destroy_by_name  # noqa: E402
from labkit.lab.readiness import ensure_boxes  # noqa: E402
from labkit.machines.clones import disk_bytes, golden_disk  # noqa: E402
from labkit.progress import LogReporter  # noqa: E402
from tests.integration.artifact_server import serve_artifacts  # noqa: E402

SCRATCH = "bench-scratch"
CLASS = "bench-class"
SCENARIO = "pod-routes"
POINT = "routes"
SERVED = [("cni-plugins", "1.1.1")]


def labkit_cli(*args: str) -> None:
    command = [sys.executable, "-c", "from labkit.cli import main; main()", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"labkit {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")


def scratch_build() -> float:
    started = time.monotonic()
    labkit_cli("up", SCENARIO, "--name", SCRATCH, "--until", POINT)
    seconds = time.monotonic() - started
    destroy_by_name(SCRATCH)
    return seconds


def set_ksm(run: int) -> None:
    if ksm_state() is not None:
        (KSM / "run").write_text(f"{run}\n")


def settled_ram(seconds: float) -> int:
    time.sleep(seconds)
    return ram_available_mib() or 0


def ready_seconds(room: Classroom, trainee: str) -> float:
    """From the start of its clone to its checks passing (KSM left as it is)."""
    started = time.monotonic()
    room.up(SCENARIO, [trainee], POINT, ksm=False)
    lab = Lab.load(f"{CLASS}-{trainee}")
    if not all(r.ok for r in lab.probe(POINT)):
        raise SystemExit(f"{trainee}: the {POINT} checks fail on the clone")
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trainees", type=int, default=3, help="trainee labs to clone (default 3)")
    parser.add_argument(
        "--settle", type=float, default=60.0, help="seconds to wait before reading RAM (default 60)"
    )
    args = parser.parse_args()
    ensure_boxes(load_scenario(SCENARIO), LogReporter())
    enter_host_namespace()
    ksm_before = ksm_state()
    room = Classroom(CLASS)
    with (
        tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp,
        serve_artifacts(SERVED, Path(tmp)) as served,
    ):
        served.fetch()
        try:
            room.destroy()
            baseline = scratch_build()
            started = time.monotonic()
            room.up(SCENARIO, [], POINT, ksm=False)  # the golden lab only
            golden_seconds = time.monotonic() - started
            room.stop_golden()  # as class up does before it clones: the baseline RAM is without the golden's VMs
            set_ksm(0)
            ram = [settled_ram(args.settle)]
            ready = []
            for k in range(1, args.trainees + 1):
                ready.append(ready_seconds(room, f"t{k}"))
                ram.append(settled_ram(args.settle))
            ram_off = (ram[0] - ram[-1]) / args.trainees
            set_ksm(1)
            ram_on = (ram[0] - settled_ram(args.settle)) / args.trainees
            golden = Lab.load(f"{CLASS}-golden")
            golden_bytes = sum(
                disk_bytes(golden_disk(d)) for d in golden._domains(golden.host.connect()).values()
            )
            clone = Lab.load(f"{CLASS}-t1")
            clone_bytes = sum(
                disk_bytes(golden_disk(d)) for d in clone._domains(clone.host.connect()).values()
            )
        finally:
            room.destroy()
            destroy_by_name(SCRATCH)
            if ksm_before is not None:
                set_ksm(ksm_before["run"])
    print(f"baseline: labkit up {SCENARIO} --until {POINT} from scratch {baseline:.1f} s")
    print(f"golden lab (up + solve + verify to {POINT}, once per class) {golden_seconds:.1f} s")
    total = golden_seconds
    for k, seconds in enumerate(ready, 1):
        total += seconds
        print(
            f"trainee {k}: ready (cloned, SSH, {POINT} checks pass) in {seconds:.1f} s = {seconds / baseline:.3f} "
            f"of a rebuild (1/{baseline / seconds:.0f}; target <= 1/20); k-th ready at {total:.1f} s"
        )
    print(f"RAM per added trainee lab: {ram_off:.0f} MiB with KSM off, {ram_on:.0f} MiB with KSM on")
    print(
        f"disk per trainee lab: {clone_bytes / 2**20:.0f} MiB (golden lab's disks: {golden_bytes / 2**20:.0f} MiB)"
    )
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/class.py needs root (libvirt qemu:///system, host mode, KSM)")
    sys.exit(main())
