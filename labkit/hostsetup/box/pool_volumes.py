"""The libvirt volumes vagrant-libvirt uploads box versions to: deleted with their box version, unless a
VM's disk is still an overlay of them."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from labkit.hostsetup.box.buildlog import BuildLog, Progress
from labkit.hostsetup.box.definition import BoxDefinition


def box_volume_name(box_name: str, version: str) -> str:
    """The volume vagrant-libvirt uploads a box version's box.img to (see its handle_box_image.rb)."""
    return f"{box_name.replace('/', '-VAGRANTSLASH-')}_vagrant_box_image_{version}_box.img"


def delete_pool_volumes(
    log: BuildLog, definition: BoxDefinition, versions: Sequence[str], progress: Progress
) -> None:
    """Delete the volumes vagrant-libvirt uploaded for removed versions, unless a VM disk still backs on them."""
    if not versions or not _libvirt_reachable():
        return
    names = {box_volume_name(definition.name, v) for v in versions}
    rc, pools_text = _virsh(log, "pool-list", "--name")
    if rc != 0:
        return
    volumes: dict[str, dict[str, str]] = {}  # pool -> volume name -> path
    for pool in (p.strip() for p in pools_text.splitlines() if p.strip()):
        rc, listing = _virsh(log, "vol-list", "--pool", pool)
        if rc == 0:
            volumes[pool] = dict(
                (parts[0], parts[1].strip()) for parts in (line.split(None, 1) for line in listing.splitlines())
                if len(parts) == 2
            )  # fmt: skip
    targets = [
        (pool, name, path) for pool, vols in volumes.items() for name, path in vols.items() if name in names
    ]
    if not targets:
        return
    backing: set[str] = set()  # what the other volumes (the VMs' disks, in any pool) are overlays of
    for pool, vols in volumes.items():
        for other in vols:
            if other not in names:
                _, xml = _virsh(log, "vol-dumpxml", "--pool", pool, other)
                backing.update(p.strip() for p in re.findall(r"<backingStore>\s*<path>([^<]+)</path>", xml))
    for pool, name, path in targets:
        if path in backing:
            progress(f"kept libvirt volume {pool}/{name}: a VM disk still backs on it")
            continue
        rc, _ = _virsh(log, "vol-delete", "--pool", pool, name)
        if rc == 0:
            progress(f"deleted libvirt volume {pool}/{name}")


def _libvirt_reachable() -> bool:
    if not shutil.which("virsh"):
        return False
    uri = os.environ.get("LIBVIRT_DEFAULT_URI", "")
    if (not uri or uri == "qemu:///system") and not Path("/run/libvirt/libvirt-sock").exists():
        return False
    try:
        proc = subprocess.run(["virsh", "-q", "uri"], capture_output=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _virsh(log: BuildLog, *args: str) -> tuple[int, str]:
    argv = ["virsh", "-q", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    log.note(f"$ {shlex.join(argv)} -> {proc.returncode} {proc.stderr.strip()}")
    return proc.returncode, proc.stdout


__all__ = ["box_volume_name", "delete_pool_volumes"]
