"""Benchmark: `labkit up three-node` against plain `vagrant up` of an equivalent hand-written Vagrantfile, and
against the physical limit: the same VMs booted with libvirt directly until their sshd answers.

The baseline lets vagrant do what labkit does itself: `vm.hostname`, a `private_network` with a fixed `ip`
(vagrant-libvirt creates the network, vagrant configures the guest over many SSH round trips) and vagrant's
default key swap (`insert_key`). Both run back to back in one process, same box, same accelerator, one lab at a
time (an emulated VM takes ~1.5 GB). Prints each time and the ratio labkit / vagrant (target <= 0.8).

    sudo .venv/bin/python bench/up.py [--pairs N]       (needs `labkit host up` or a systemd libvirtd)
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from labkit import paths
from labkit.hostsetup.accel import detect_accel
from labkit.hostsetup.hostmode import enter_host_namespace
from labkit.kinds.compile import load_scenario
from labkit.lab import Lab, destroy_by_name
from labkit.lab.readiness import ensure_boxes
from labkit.machines.domains import destroy_lab
from labkit.machines.libvirt_host import libvirt_connect
from labkit.machines.providers.vagrant_libvirt import vagrant_env
from labkit.progress import LogReporter

BASELINE_LAB = "bench-vagrant"
LABKIT_LAB = "bench-labkit"

BASELINE = """Vagrant.configure("2") do |config|
  config.vm.guest = :debian
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.vm.boot_timeout = 900
  config.vm.provider :libvirt do |libvirt|
    libvirt.driver = "{driver}"
    {cpu}
    libvirt.default_prefix = "labkit-{lab}-"
    libvirt.management_network_name = "labkit-{lab}-mgmt"
    libvirt.management_network_address = "172.29.250.0/24"
    libvirt.management_network_mode = "none"
    libvirt.graphics_type = "none"
    libvirt.video_type = "none"
  end
{machines}end
"""

MACHINE = """  config.vm.define "{name}" do |node|
    node.vm.box = "{box}"
    node.vm.hostname = "{name}"
    node.vm.network :private_network, ip: "{ip}", libvirt__network_name: "labkit-{lab}-lab",
      libvirt__forward_mode: "none", libvirt__dhcp_enabled: false
    node.vm.provider :libvirt do |libvirt|
      libvirt.cpus = {cpus}
      libvirt.memory = {memory}
    end
  end
"""


def baseline_up(workdir: Path) -> float:
    scenario = load_scenario("three-node")
    accel = detect_accel()
    cpu = 'libvirt.cpu_mode = "custom"\n    libvirt.cpu_model = "qemu64"' if accel.emulated else ""
    machines = "".join(
        MACHINE.format(
            name=n.name, box=scenario.box_of(n), ip=n.ip, lab=BASELINE_LAB, cpus=n.cpus, memory=n.memory_mib
        )
        for n in scenario.nodes
    )
    (workdir / "Vagrantfile").write_text(
        BASELINE.format(driver=accel.driver, cpu=cpu, lab=BASELINE_LAB, machines=machines)
    )
    started = time.monotonic()
    with (workdir / "vagrant-up.log").open("w") as log:
        subprocess.run(
            ["vagrant", "up", "--provider", "libvirt"],
            cwd=workdir,
            env=vagrant_env(),
            check=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return time.monotonic() - started


def baseline_destroy(workdir: Path) -> None:
    subprocess.run(["vagrant", "destroy", "-f"], cwd=workdir, env=vagrant_env(), capture_output=True)
    destroy_lab(libvirt_connect(), BASELINE_LAB)


def labkit_up() -> float:
    started = time.monotonic()
    Lab.create("three-node", LABKIT_LAB).up()
    return time.monotonic() - started


def _ssh_banner(ip: str) -> bool:
    try:
        with socket.create_connection((ip, 22), timeout=2) as sock:
            sock.settimeout(5)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def physical_boot() -> float:
    """The physical limit: labkit's lab's own VMs, powered off, started with libvirt directly; seconds until
    every one's sshd answers (no vagrant, no configuration)."""
    lab = Lab.load(LABKIT_LAB)
    assert lab.state is not None
    domains = lab._domains(lab.host.connect())
    for dom in domains.values():
        if dom.isActive():
            dom.destroy()
    addresses = [node.management_ip or "" for node in lab.state.nodes.values()]
    started = time.monotonic()
    for dom in domains.values():
        dom.create()
    waiting = set(addresses)
    while waiting:
        if time.monotonic() - started > 900:
            raise SystemExit(f"no SSH from {sorted(waiting)} within 900 s of a direct boot")
        waiting = {ip for ip in waiting if not _ssh_banner(ip)}
        time.sleep(0.2)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=1, help="back-to-back pairs to run (default 1)")
    args = parser.parse_args()
    ensure_boxes(load_scenario("three-node"), LogReporter())  # the box builds only outside the namespace
    enter_host_namespace()
    print(f"VAGRANT_HOME={paths.vagrant_home()}  accel: {detect_accel().reason}")
    rows = []
    for pair in range(args.pairs):
        workdir = Path(tempfile.mkdtemp(prefix="labkit-bench-"))
        try:
            destroy_by_name(LABKIT_LAB)
            baseline_destroy(workdir)
            first_labkit = pair % 2 == 0  # alternate the order: the machine drifts over time
            times: dict[str, float] = {}
            for which in ["labkit", "vagrant"] if first_labkit else ["vagrant", "labkit"]:
                if which == "labkit":
                    times["labkit"] = labkit_up()
                    times["libvirt"] = physical_boot()
                    destroy_by_name(LABKIT_LAB)
                else:
                    times["vagrant"] = baseline_up(workdir)
                    baseline_destroy(workdir)
            ratio = times["labkit"] / times["vagrant"]
            rows.append(ratio)
            print(
                f"pair {pair + 1}: labkit up {times['labkit']:.1f} s, vagrant up {times['vagrant']:.1f} s, "
                f"ratio {ratio:.2f} (target <= 0.80); the same VMs booted by libvirt directly to SSH "
                f"{times['libvirt']:.1f} s: labkit up is {times['labkit'] / times['libvirt']:.1f}x that limit"
            )
        finally:
            destroy_by_name(LABKIT_LAB)
            baseline_destroy(workdir)
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"ratio labkit/vagrant: {', '.join(f'{r:.2f}' for r in rows)}")
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/up.py needs root (libvirt qemu:///system, host mode)")
    sys.exit(main())
