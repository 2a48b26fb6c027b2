"""vagrant-libvirt through python-vagrant: ``vagrant up`` with progress per VM, a log per lab, readable errors.

Every call sets VAGRANT_HOME to labkit's own (boxes shared by all labs) and never reads the user's ~/.vagrant.d.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

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
STOP_GRACE = 60.0  # vagrant's clean stop after SIGINT (it may remove a half-made domain), then SIGKILL

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


class Interrupted(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so that cleanup runs as for Ctrl-C."""


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Interrupted` (only possible from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: object) -> None:
        raise Interrupted()

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_process_group(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> str:
    """Stop ``proc`` and every process of its group: SIGINT (vagrant cleans up and exits), SIGKILL after
    ``grace`` seconds; return once the leader has ended and the group is empty. Says how it ended."""
    how = "stopped"

    def signal_group(signum: int) -> bool:
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            return False
        return True

    signal_group(signal.SIGINT)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_alive(proc):
        time.sleep(0.2)
    if _group_alive(proc):
        how = f"killed after {grace:.0f} s"
        signal_group(signal.SIGKILL)
        while _group_alive(proc):
            time.sleep(0.1)
    return how


def _group_alive(proc: subprocess.Popen[bytes]) -> bool:
    """True while the leader has not ended or a process of its group lives (zombies excepted)."""
    proc.poll()  # reaps the leader once it has exited
    if proc.returncode is None:
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == proc.pid and fields[0] not in ("Z", "X"):  # field 5: pgrp
            return True
    return False


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

    def up(self, on_progress: Callable[[str, int, str], None]) -> None:
        """``vagrant up`` of every machine in parallel; ``on_progress(node, phase_index, text)`` per known phase.

        vagrant runs in its own process group. If labkit is interrupted (Ctrl-C, or SIGTERM while this runs in
        the main thread), that whole group is stopped (SIGINT, vagrant's own clean stop, then SIGKILL) and
        waited for before the interrupt goes on: no vagrant is left running once the lab's lock is released.
        """
        self.lab.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.lab.log("vagrant-up")
        with log_path.open("a") as log:
            log.write("\n==== labkit: vagrant up ====\n")
            log.flush()
            try:
                proc = subprocess.Popen(
                    [vagrant.get_vagrant_executable() or "vagrant", "up", "--provider=libvirt"],
                    cwd=self.lab.root,
                    env=vagrant_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    start_new_session=True,
                )
            except FileNotFoundError:
                raise HostError(
                    "vagrant is not installed", "apt-get install vagrant vagrant-libvirt"
                ) from None
            try:
                with _sigterm_interrupts():
                    assert proc.stdout is not None
                    for raw in iter(proc.stdout.readline, b""):
                        line = ANSI_RE.sub("", raw.decode(errors="replace"))  # colours even when piped
                        log.write(line)
                        log.flush()
                        self._report(line.rstrip("\n"), on_progress)
                    returncode = proc.wait()
            except BaseException:  # Ctrl-C too: vagrant's process group is stopped, then the error goes on
                stopped = stop_process_group(proc)
                log.write(f"\n==== labkit: interrupted; vagrant (pid {proc.pid}) {stopped} ====\n")
                log.flush()
                raise
            finally:
                if proc.stdout is not None:
                    proc.stdout.close()
            if returncode != 0:
                raise self._failure(log_path)

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
