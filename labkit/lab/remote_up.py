"""What `labkit up` asks of a remote libvirt host instead of this machine: the accelerator libvirt offers there,
its free RAM, and the command vagrant reaches the VMs' SSH ports through (the VMs' management networks live on
that host, so vagrant's SSH jumps through the host's sshd, as labkit's own connections do)."""

from __future__ import annotations

import shlex
from typing import Any

from labkit.errors import HostError
from labkit.hostsetup.accel import AccelChoice, detect_accel, requested_driver
from labkit.hostsetup.pool import second_host_known_hosts
from labkit.machines.host_facts import accelerator_offered, ram_from_stats
from labkit.machines.libvirt_host import LibvirtHost

MIB = 1 << 20


def choose_accel(host: LibvirtHost, conn: Any, requested: str | None) -> AccelChoice:
    """kvm or qemu for VMs on ``host``: this machine's detection, or what libvirt offers on a remote host.
    A second host on this machine shares its kernel and /dev/kvm, so this machine's detection holds there
    (libvirt offers kvm wherever /dev/kvm opens, even a PVM one that cannot boot a stock kernel)."""
    if not host.remote:
        return detect_accel(requested)
    if second_host_known_hosts(host.uri) is not None:
        here = detect_accel(requested)
        return AccelChoice(here.driver, f"{here.reason} (a second host on this machine)")
    offered = accelerator_offered(conn.getCapabilities())
    wanted = requested_driver(requested)
    if wanted is None:
        return AccelChoice(
            "kvm" if offered == "kvm" else "qemu", f"{offered}: offered by libvirt on {host.name}"
        )
    if wanted == "kvm" and offered != "kvm":
        raise HostError(
            f"kvm was requested but libvirt on {host.name} offers no KVM domains",
            "use --accel qemu (software emulation), or load kvm_intel/kvm_amd on that host",
        )
    return AccelChoice(wanted, f"{wanted}: requested, offered on {host.name}")


def free_ram_mib(host: LibvirtHost, conn: Any) -> int | None:
    """Free RAM on a remote host by libvirt's node statistics; None here (readiness reads /proc/meminfo)."""
    import libvirt

    if not host.remote:
        return None
    free, _ = ram_from_stats(conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0))
    return None if free is None else free // MIB


def vagrant_proxy_command(host: LibvirtHost) -> str | None:
    """The ProxyCommand vagrant's SSH to a VM goes through on a remote host (its sshd forwards to the VM's
    port 22, the host key checked as labkit checks it); None on this machine."""
    if not host.remote:
        return None
    argv = host.ssh_login().ssh_argv()
    return shlex.join([*argv[:-1], "-W", "%h:%p", argv[-1]])
