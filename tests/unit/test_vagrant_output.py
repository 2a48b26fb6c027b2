"""Reading vagrant-libvirt's output: progress phases per VM and known failures (recorded lines)."""

from __future__ import annotations

from pathlib import Path

from labkit.machines.providers.vagrant_libvirt import BOOT_PHASES, VagrantLibvirt, phase_of
from labkit.paths import LabPaths

RECORDED = """Bringing machine 'node1' up with 'libvirt' provider...
==> node1: Checking if box 'labkit/debian12' version '1.0.0' is up to date...
==> node1: Creating image (snapshot of base box volume).
==> node2: Creating domain with the following settings...
==> node1: Starting domain.
==> node1: Waiting for domain to get an IP address...
==> node1: Waiting for machine to boot. This may take a few minutes...
    node1: SSH address: 172.29.4.23:22
==> node1: Machine booted and ready!
==> node3: Domain is already running. Skipping.
"""


def test_phases_in_order() -> None:
    seen: list[tuple[str, int, str]] = []
    for line in RECORDED.splitlines():
        VagrantLibvirt._report(line, lambda node, i, text: seen.append((node, i, text)))
    node1 = [i for node, i, _ in seen if node == "node1"]
    assert node1 == sorted(node1) and node1[-1] == len(BOOT_PHASES) - 1
    assert ("node2", 2, "creating domain") in seen
    assert ("node3", len(BOOT_PHASES) - 1, "already running") in seen
    assert phase_of("SSH address: x") is None


def test_known_failure_is_explained(tmp_path: Path) -> None:
    lab = LabPaths(tmp_path / "lab")
    lab.logs.mkdir(parents=True)
    lab.log("vagrant-up").write_text(
        "==== labkit: vagrant up ====\n==> node1: Waiting for domain to get an IP address...\n"
        "Timed out while waiting for the machine to boot.\n"
    )
    error = VagrantLibvirt(lab)._failure(lab.log("vagrant-up"))
    assert "never answered SSH" in error.message
    assert str(lab.log("vagrant-up")) in error.message
    assert error.hint and "virsh console" in error.hint


def test_unknown_failure_shows_tail_and_log(tmp_path: Path) -> None:
    lab = LabPaths(tmp_path / "lab")
    lab.logs.mkdir(parents=True)
    lab.log("vagrant-up").write_text("==== labkit: vagrant up ====\nsomething odd\nreally odd\n")
    error = VagrantLibvirt(lab)._failure(lab.log("vagrant-up"))
    assert "really odd" in error.message and "vagrant-up.log" in error.message


def test_coloured_lines_are_read() -> None:
    from labkit.machines.providers.vagrant_libvirt import ANSI_RE

    seen: list[str] = []
    line = ANSI_RE.sub("", "\x1b[1m==> node1: Starting domain.\x1b[0m")
    VagrantLibvirt._report(line, lambda node, i, text: seen.append(text))
    assert seen == ["starting domain"]
