"""vagrant-libvirt through python-vagrant: ``vagrant up`` with progress per VM, a log per lab, readable errors.

Every call sets VAGRANT_HOME to labkit's own (boxes shared by all labs) and never reads the user's ~/.vagrant.d.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import vagrant

from labkit import paths
from labkit.errors import HostError, LabError
from labkit.paths import LabPaths

# vagrant-libvirt's phases of `up`, in order, as they appear in its "==> node: ..." lines.
BOOT_PHASES: tuple[tuple[str, str], ...] = (
    ("Checking if box", "checking box"),
    ("Creating image", "creating disk"),
    ("Creating domain", "creating domain"),
    ("Starting domain", "starting domain"),
    ("Waiting for domain to get an IP", "waiting for an IP (DHCP)"),
    ("Waiting for machine to boot", "booting, waiting for SSH"),
    ("Machine booted and ready", "SSH ready"),
)
ALREADY_RUNNING = ("Domain is already running", "Machine already provisioned")
LINE_RE = re.compile(r"^==> (?P<node>[\w.-]+): (?P<text>.*)$")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# Known failures: (pattern in vagrant's output, what happened, what to do)
KNOWN_FAILURES: tuple[tuple[str, str, str], ...] = (
    (
        "Timed out while waiting for the machine to boot",
        "a VM booted but never answered SSH",
        "read its serial console with `virsh console DOMAIN`; under emulation boots take minutes, "
        "check `labkit doctor` for free RAM and CPU",
    ),
    (
        "Waiting for domain to get an IP address",
        "a VM never got a DHCP lease on the management network",
        "check that the domain runs (`virsh list`) and that dnsmasq runs for the lab's -mgmt network",
    ),
    (
        "Cannot allocate memory",
        "QEMU could not allocate the VM's memory",
        "free RAM or lower the nodes' memory in the scenario (~1.5 GB per emulated VM)",
    ),
    (
        "could not be found",
        "the box is not installed in labkit's VAGRANT_HOME",
        "run `labkit box build`",
    ),
    (
        "Failed to connect socket",
        "libvirtd is not reachable",
        "run `labkit host up` (no systemd) or `systemctl start libvirtd`",
    ),
    (
        "Call to virDomainCreateWithFlags failed",
        "libvirt could not start a domain",
        "read the QEMU log in /var/log/libvirt/qemu/DOMAIN.log",
    ),
)


def vagrant_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "VAGRANT_HOME": str(paths.vagrant_home()),
            "VAGRANT_DEFAULT_PROVIDER": "libvirt",
            "VAGRANT_CHECKPOINT_DISABLE": "1",
            "VAGRANT_NO_COLOR": "1",
            "VAGRANT_FORCE_COLOR": "0",
        }
    )
    return env


def phase_of(text: str) -> int | None:
    for index, (marker, _label) in enumerate(BOOT_PHASES):
        if text.startswith(marker):
            return index
    return None


def _diagnose(log_text: str) -> tuple[str, str] | None:
    for pattern, what, fix in KNOWN_FAILURES:
        if pattern in log_text:
            return what, fix
    return None


class VagrantLibvirt:
    """Runs vagrant in a lab directory."""

    def __init__(self, lab: LabPaths) -> None:
        self.lab = lab

    def _client(self, log: IO[str] | None = None) -> vagrant.Vagrant:
        @contextlib.contextmanager
        def to_log() -> Iterator[IO[str] | None]:
            yield log

        return vagrant.Vagrant(root=str(self.lab.root), env=vagrant_env(), err_cm=to_log if log else None)

    def up(self, on_progress: Callable[[str, int, str], None]) -> None:
        """``vagrant up`` of every machine in parallel; ``on_progress(node, phase_index, text)`` per known phase."""
        self.lab.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.lab.log("vagrant-up")
        with log_path.open("a") as log:
            log.write("\n==== labkit: vagrant up ====\n")
            log.flush()
            try:
                for raw in self._client(log).up(provider="libvirt", stream_output=True):
                    line = ANSI_RE.sub("", raw)  # vagrant colours its output even when piped
                    log.write(line)
                    log.flush()
                    self._report(line.rstrip("\n"), on_progress)
            except FileNotFoundError:
                raise HostError(
                    "vagrant is not installed", "apt-get install vagrant vagrant-libvirt"
                ) from None
            except subprocess.CalledProcessError:
                log.flush()
                raise self._failure(log_path) from None

    @staticmethod
    def _report(line: str, on_progress: Callable[[str, int, str], None]) -> None:
        match = LINE_RE.match(line)
        if not match:
            return
        node, text = match["node"], match["text"]
        index = phase_of(text)
        if index is not None:
            on_progress(node, index, BOOT_PHASES[index][1])
        elif text.startswith(ALREADY_RUNNING):
            on_progress(node, len(BOOT_PHASES) - 1, "already running")

    def _failure(self, log_path: Path) -> LabError:
        text = log_path.read_text(errors="replace")
        last_run = text.rsplit("==== labkit: vagrant up ====", 1)[-1]
        diagnosis = _diagnose(last_run)
        tail = " | ".join(line.strip() for line in last_run.strip().splitlines()[-3:])
        if diagnosis:
            what, fix = diagnosis
            return LabError(f"vagrant up failed: {what} (log: {log_path})", fix)
        return LabError(
            f"vagrant up failed: {tail} (log: {log_path})", "read the log; `labkit up` again resumes"
        )
