"""``labkit doctor``: check the host's prerequisites, each with the exact command that fixes it."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.errors import HostError, LabkitError
from labkit.hostsetup.accel import AccelChoice, detect_accel
from labkit.paths import vagrant_home

# Host RAM one VM costs, measured (docs/vm-lab.md): under TCG QEMU's translation cache adds ~1 GiB.
MIB_PER_VM = {"qemu": 1536, "kvm": 1126}


@dataclass(frozen=True)
class DoctorCheck:
    """One prerequisite: what was checked, whether it holds, what was seen, and the command that fixes it."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


def _check_vagrant() -> DoctorCheck:
    path = shutil.which("vagrant")
    if path is None:
        return DoctorCheck("vagrant", False, "vagrant is not on PATH", "apt-get install vagrant")
    return DoctorCheck("vagrant", True, path)


def parse_plugin_list(text: str) -> dict[str, str]:
    """``vagrant plugin list`` output -> {plugin: version}; e.g. ``vagrant-libvirt (0.11.2, system)``."""
    plugins: dict[str, str] = {}
    for line in text.splitlines():
        name, _, rest = line.strip().partition(" (")
        if name and rest and not line.startswith(" "):
            plugins[name] = rest.split(",")[0].rstrip(")").strip()
    return plugins


def _check_plugin(have_vagrant: bool) -> DoctorCheck:
    fix = "apt-get install vagrant-libvirt"
    if not have_vagrant:
        return DoctorCheck(
            "vagrant-libvirt", False, "needs vagrant", "apt-get install vagrant vagrant-libvirt"
        )
    env = {**os.environ, "VAGRANT_HOME": str(vagrant_home())}
    try:
        proc = subprocess.run(
            ["vagrant", "plugin", "list"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return DoctorCheck("vagrant-libvirt", False, f"`vagrant plugin list` failed: {exc}", fix)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return DoctorCheck("vagrant-libvirt", False, f"`vagrant plugin list` failed: {last[0]}", fix)
    plugins = parse_plugin_list(proc.stdout)
    if "vagrant-libvirt" not in plugins:
        return DoctorCheck("vagrant-libvirt", False, "plugin not installed", fix)
    return DoctorCheck("vagrant-libvirt", True, f"version {plugins['vagrant-libvirt']}")


def _check_libvirt() -> tuple[DoctorCheck, Any]:
    from labkit.hostsetup.hostmode import local_host

    try:
        host = local_host()
        conn = host.connect()
    except HostError as exc:
        fix = "labkit host up" if not Path("/run/systemd/system").is_dir() else "systemctl start libvirtd"
        return DoctorCheck("libvirtd", False, exc.message, fix), None
    version = conn.getLibVersion()
    detail = f"libvirt {version // 1_000_000}.{version // 1000 % 1000}.{version % 1000} at {conn.getURI()}"
    if host.netns is not None:
        detail += f" (host mode, netns {host.netns.name})"
    return DoctorCheck("libvirtd", True, detail), conn


def _check_pool(conn: Any) -> DoctorCheck:
    fix = (
        "virsh pool-define-as default dir --target /var/lib/libvirt/images && "
        "virsh pool-start default && virsh pool-autostart default"
    )
    if conn is None:
        return DoctorCheck("storage pool", False, "needs libvirtd", "labkit host up")
    import libvirt

    try:
        pool = conn.storagePoolLookupByName("default")
    except libvirt.libvirtError:
        return DoctorCheck("storage pool", False, "pool 'default' is not defined", fix)
    if not pool.isActive():
        return DoctorCheck(
            "storage pool", False, "pool 'default' is defined but inactive", "virsh pool-start default"
        )
    return DoctorCheck("storage pool", True, "pool 'default' is active")


def _box_names(boxes: Any) -> set[str]:
    names = set()
    for box in boxes or ():
        if isinstance(box, str):
            names.add(box)
        elif isinstance(box, dict):
            names.add(str(box.get("name", "")))
        else:
            names.add(str(getattr(box, "name", box)))
    return names


def _check_box(box: str) -> DoctorCheck:
    fix = f"labkit box build {box.removeprefix('labkit/')}"
    try:
        box_module = importlib.import_module("labkit.hostsetup.box")  # written in parallel; may not exist yet
    except ImportError as exc:
        return DoctorCheck("box", False, f"box module missing ({exc})", None)
    try:
        names = _box_names(box_module.list_boxes())
    except (LabkitError, OSError) as exc:  # a failing listing must not stop the other checks
        return DoctorCheck("box", False, f"cannot list boxes: {exc}", fix)
    if box not in names:
        have = ", ".join(sorted(names)) or "none"
        return DoctorCheck("box", False, f"{box} is not added (have: {have})", fix)
    return DoctorCheck("box", True, box)


def _check_accel(accel: AccelChoice) -> DoctorCheck:
    return DoctorCheck("accelerator", True, accel.reason)


def mem_available_mib(meminfo: str) -> int | None:
    """MemAvailable of a /proc/meminfo text, in MiB."""
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return None


def check_memory(vms: int, driver: str, meminfo: str) -> DoctorCheck:
    """Enough available RAM for ``vms`` VMs under ``driver``?"""
    need = vms * MIB_PER_VM[driver]
    have = mem_available_mib(meminfo)
    name = "memory"
    if have is None:
        return DoctorCheck(name, False, "no MemAvailable in /proc/meminfo", None)
    detail = f"{have / 1024:.1f} GiB available, {vms} {driver} VMs need ~{need / 1024:.1f} GiB"
    if have < need:
        fit = have // MIB_PER_VM[driver]
        return DoctorCheck(
            name,
            False,
            f"{detail} (room for {fit})",
            "virsh list --state-running  (then `labkit destroy LAB` for labs you do not need)",
        )
    return DoctorCheck(name, True, detail)


def _check_tool(name: str, needed_for: str) -> DoctorCheck:
    path = shutil.which(name)
    if path is None:
        return DoctorCheck(name, False, f"needed {needed_for}", f"apt-get install {name}")
    return DoctorCheck(name, True, path)


def run_doctor(vms: int = 3, box: str = "labkit/debian12") -> list[DoctorCheck]:
    """Check everything a lab of ``vms`` VMs from ``box`` needs; never raises for a missing prerequisite."""
    checks = [_check_vagrant()]
    checks.append(_check_plugin(checks[0].ok))
    libvirtd, conn = _check_libvirt()
    checks.append(libvirtd)
    try:
        checks.append(_check_pool(conn))
    finally:
        if conn is not None:
            conn.close()
    checks.append(_check_box(box))
    accel = detect_accel()
    checks.append(_check_accel(accel))
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        meminfo = ""
    checks.append(check_memory(vms, accel.driver, meminfo))
    checks.append(_check_tool("mmdebstrap", "to build boxes"))
    checks.append(_check_tool("skopeo", "to fetch container images by digest (labkit artifacts fetch)"))
    return checks
