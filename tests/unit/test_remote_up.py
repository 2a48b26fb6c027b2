"""What `labkit up` asks of a remote host: the accelerator its libvirt offers, its free RAM, and the ProxyCommand
vagrant's SSH to the VMs goes through (pure logic; the VM test boots a lab on a second host)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from labkit.errors import HostError, UsageError
from labkit.kinds.compile import load_scenario
from labkit.lab.remote_up import choose_accel, free_ram_mib, vagrant_proxy_command
from labkit.machines.host_ssh import HostSsh
from labkit.machines.libvirt_host import LibvirtHost
from labkit.machines.vagrantfile import RenderOptions, render_vagrantfile

KVM_CAPS = "<capabilities><guest><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest></capabilities>"
TCG_CAPS = "<capabilities><guest><arch name='x86_64'><domain type='qemu'/></arch></guest></capabilities>"
REMOTE = LibvirtHost(
    name="h2",
    uri="qemu+ssh://root@10.251.0.2:2200/system?keyfile=/keys/h2",
    ssh=HostSsh(
        "10.251.0.2", port=2200, key_file=Path("/keys/h2"), known_hosts=Path("/hosts/h2/known_hosts")
    ),
)


class Capabilities:
    """A libvirt connection that answers getCapabilities and getMemoryStats only."""

    def __init__(self, xml: str, free_kib: int = 0) -> None:
        self.xml, self.free_kib = xml, free_kib

    def getCapabilities(self) -> str:
        return self.xml

    def getMemoryStats(self, cell: int, flags: int) -> dict[str, int]:
        return {"total": 8 << 20, "free": self.free_kib, "buffers": 0, "cached": 1 << 20}


@pytest.mark.parametrize(
    ("caps", "requested", "driver"),
    [
        (KVM_CAPS, None, "kvm"),
        (TCG_CAPS, None, "qemu"),
        (KVM_CAPS, "qemu", "qemu"),
        (TCG_CAPS, "auto", "qemu"),
    ],
)
def test_a_remote_host_gets_what_its_libvirt_offers(caps: str, requested: str | None, driver: str) -> None:
    choice = choose_accel(REMOTE, Capabilities(caps), requested)
    assert choice.driver == driver and "h2" in choice.reason


def test_kvm_requested_where_the_host_offers_none_is_one_line() -> None:
    with pytest.raises(HostError, match="offers no KVM"):
        choose_accel(REMOTE, Capabilities(TCG_CAPS), "kvm")
    with pytest.raises(UsageError, match="unknown accelerator"):
        choose_accel(REMOTE, Capabilities(KVM_CAPS), "xen")


def test_free_ram_of_a_remote_host_comes_from_libvirt() -> None:
    assert free_ram_mib(REMOTE, Capabilities(TCG_CAPS, free_kib=2 << 20)) == 3 * 1024  # free + cached
    assert free_ram_mib(LibvirtHost(), Capabilities(TCG_CAPS)) is None  # this machine: /proc/meminfo


def test_the_proxy_command_logs_in_to_the_host_as_labkit_does() -> None:
    command = vagrant_proxy_command(REMOTE)
    assert command is not None
    argv = shlex.split(command)
    assert argv[0] == "ssh" and argv[-3:] == ["-W", "%h:%p", "root@10.251.0.2"]
    assert argv[argv.index("-p") + 1] == "2200" and argv[argv.index("-i") + 1] == "/keys/h2"
    assert "StrictHostKeyChecking=yes" in argv and "UserKnownHostsFile=/hosts/h2/known_hosts" in argv
    assert "BatchMode=yes" in argv
    assert vagrant_proxy_command(LibvirtHost()) is None


def test_the_vagrantfile_of_a_remote_lab_names_its_uri_and_proxy() -> None:
    proxy = vagrant_proxy_command(REMOTE)
    text = render_vagrantfile(
        load_scenario("pod-routes"), RenderOptions(lab="r1", libvirt_uri=REMOTE.uri, ssh_proxy_command=proxy)
    )
    assert f"libvirt.uri = '{REMOTE.uri}'" in text
    assert f"config.ssh.proxy_command = '{proxy}'" in text
    local = render_vagrantfile(load_scenario("pod-routes"), RenderOptions(lab="r1"))
    assert "proxy_command" not in local
