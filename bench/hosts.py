"""Benchmark: placing and cloning a trainee lab on another libvirt host, against cloning it on this one.

In one run, on pod-routes `--until routes` (as bench/class.py): a second host on this machine
(`labkit host up --name bench-h2`, reached by qemu+ssh over a veth), the golden lab built here, then
- **baseline**: a trainee lab cloned on this host (`class up --hosts local`), to its checks passing;
- **the base image copy** to bench-h2 (the box image the golden's disks are backed by, over SSH, checked by
  sha256), then the same call again, which finds it there;
- **remote**: two trainee labs cloned on bench-h2, one after the other: the golden's disks are copied, then
  the same clone steps run there.

    .venv/bin/python bench/hosts.py      (root; needs `labkit host up` or a systemd libvirtd)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from labkit.classroom import Classroom  # noqa: E402
from labkit.hostsetup.hostmode import enter_host_namespace, local_host  # noqa: E402
from labkit.hostsetup.pool import libvirt_host  # noqa: E402
from labkit.hostsetup.second_host.layout import SecondHostPaths  # noqa: E402
from labkit.kinds.compile import load_scenario  # noqa: E402
from labkit.lab import Lab  # noqa: E402
from labkit.lab.cloning import CloneReport  # noqa: E402
from labkit.lab.readiness import ensure_boxes  # noqa: E402
from labkit.machines.clones import golden_disk  # noqa: E402
from labkit.machines.host_files import CopyReport, ensure_backing_chain  # noqa: E402
from labkit.progress import LogReporter  # noqa: E402
from tests.integration.artifact_server import serve_artifacts  # noqa: E402

CLASS = "bench-hosts"
H2 = "bench-h2"
SCENARIO = "pod-routes"
POINT = "routes"
SERVED = [("cni-plugins", "1.1.1")]


def labkit_cli(*args: str) -> str:
    command = [sys.executable, "-c", "from labkit.cli import main; main()", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"labkit {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def second_host() -> None:
    labkit_cli("host", "down", "--name", H2)
    shutil.rmtree(SecondHostPaths.for_host(H2).root, ignore_errors=True)  # a fresh host, no earlier VMs
    subprocess.run(
        [sys.executable, "-c", "from labkit.cli import main; main()", "hosts", "remove", H2],
        capture_output=True,
        check=False,
    )
    uri = re.search(r"its URI: (\S+)", labkit_cli("host", "up", "--name", H2))
    if uri is None:
        raise SystemExit("labkit host up --name printed no URI")
    labkit_cli("hosts", "add", H2, uri.group(1))


def ready(room: Classroom, trainee: str, host: str) -> tuple[float, CloneReport]:
    """From `class up` of one trainee on ``host`` to its checks passing there."""
    started = time.monotonic()
    report = room.up(SCENARIO, [trainee], POINT, ksm=False, hosts=[host])
    if not all(r.ok for r in Lab.load(f"{CLASS}-{trainee}").probe(POINT)):
        raise SystemExit(f"{trainee}: the {POINT} checks fail on the clone on {host}")
    return time.monotonic() - started, report.cloned[trainee]


def base_image_copies() -> tuple[list[CopyReport], list[CopyReport]]:
    """The box image behind the golden's first disk put on bench-h2: copied, then found there."""
    golden = Lab.load(f"{CLASS}-golden")
    overlay = str(golden_disk(next(iter(golden._domains(golden.host.connect()).values()))))
    target = libvirt_host(H2)
    return ensure_backing_chain(local_host(), target, overlay), ensure_backing_chain(
        local_host(), target, overlay
    )


def _copies(reports: list[CopyReport]) -> str:
    return ", ".join(
        f"{Path(r.path).name} {r.bytes / 2**20:.0f} MiB {'copied' if r.copied else 'already there'} in "
        f"{r.seconds:.2f} s"
        for r in reports
    )


def main() -> int:
    ensure_boxes(load_scenario(SCENARIO), LogReporter())
    enter_host_namespace()
    room = Classroom(CLASS)
    with (
        tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp,
        serve_artifacts(SERVED, Path(tmp)) as served,
    ):
        served.fetch()
        try:
            room.destroy()
            second_host()
            started = time.monotonic()
            room.up(SCENARIO, [], POINT, ksm=False)  # the golden lab, on this host
            golden_seconds = time.monotonic() - started
            local, local_report = ready(room, "l1", "local")
            box_first, box_again = base_image_copies()
            first, first_report = ready(room, "r1", H2)
            again, again_report = ready(room, "r2", H2)
        finally:
            room.destroy()
            labkit_cli("hosts", "remove", H2)
            labkit_cli("host", "down", "--name", H2)
    print(f"golden lab (up + solve + verify to {POINT}, here) {golden_seconds:.1f} s")
    print(f"baseline: a trainee lab cloned on this host, ready in {local:.1f} s")
    print(f"base image to the second host, first: {_copies(box_first)}")
    print(f"base image to the second host, again: {_copies(box_again)}")
    for label, seconds, report in (
        ("on the second host", first, first_report),
        ("on the second host, another", again, again_report),
    ):
        copies = ", ".join(f"{n} {s:.1f} s" for n, s in sorted(report.copy_seconds.items()))
        print(
            f"trainee lab {label}: ready in {seconds:.1f} s = {seconds / local:.2f} x local (copies: {copies})"
        )
    print(
        f"local copies for comparison: {', '.join(f'{n} {s:.1f} s' for n, s in local_report.copy_seconds.items())}"
    )
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/hosts.py needs root (libvirt qemu:///system, host mode, a second host)")
    sys.exit(main())
