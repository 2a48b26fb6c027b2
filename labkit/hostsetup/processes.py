"""The processes host mode starts and stops: found by /proc (start time guards against PID reuse), waited
for, stopped by PID only, and the processes inside a network namespace."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from labkit.errors import HostError

log = logging.getLogger(__name__)

NETNS_DIR = Path("/run/netns")

PIDFILES = {"libvirtd": Path("/run/libvirtd.pid"), "virtlogd": Path("/run/virtlogd.pid")}
LIBVIRT_DAEMONS = ("libvirtd", "virtqemud")
STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Daemon:
    """A process host mode started. ``start_ticks`` (field 22 of /proc/PID/stat) guards against PID reuse."""

    name: str
    pid: int
    start_ticks: int

    @property
    def running(self) -> bool:
        """True while the process lives; a zombie (exited, never reaped: PID 1 here does not reap) is not."""
        stat = proc_stat(self.pid)
        return stat is not None and stat[0] not in ("Z", "X") and stat[1] == self.start_ticks


# --------------------------------------------------------------------------------------------- processes


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on, or None if there is no such process."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return data[data.rindex(")") + 2 :].split()  # comm may contain spaces and parentheses


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process, or None if there is no such process."""
    fields = _stat_fields(pid)
    return None if fields is None else (fields[0], int(fields[19]))  # fields 3 and 22 of proc(5)


def cmdline(pid: int) -> str:
    """A process's command line, its arguments joined by spaces ("" when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def recorded_process(name: str, pidfile: Path, marker: str) -> Daemon | None:
    """The live process ``pidfile`` names, when its command line has ``marker`` as one of its words (a file
    only that process was started with): a reused PID or another program's is not taken for it."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    stat = proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X") or f" {marker} " not in f" {cmdline(pid)} ":
        return None
    return Daemon(name, pid, stat[1])


def children(parent: Daemon, name: str) -> list[Daemon]:
    """The live processes whose parent is ``parent`` (while it still runs)."""
    if not parent.running:
        return []
    found = []
    for pid in live_pids():
        fields = _stat_fields(pid)
        if fields is not None and int(fields[1]) == parent.pid:
            found.append(Daemon(name, pid, int(fields[19])))
    return found


def start_in_background(
    argv: list[str], ready: Callable[[], bool], timeout: float
) -> subprocess.Popen[bytes] | None:
    """Start ``argv`` in its own session (a Ctrl-C of labkit does not reach it), with no terminal, and wait
    until ``ready()``; the process, or None when it exited or was not ready in ``timeout`` (then it is killed)."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
        start_new_session=True,
    )
    wait_until(lambda: proc.poll() is not None or ready(), timeout, 0.05)
    if proc.poll() is None and ready():
        return proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    return None


def log_tail(log: Path, since: int = 0, lines: int = 3) -> str:
    """The last ``lines`` of ``log`` written after byte ``since``, on one line ("no log" when empty)."""
    try:
        with log.open("rb") as handle:
            handle.seek(since)
            text = handle.read().decode(errors="replace")
    except OSError:
        return "no log"
    return " | ".join(text.strip().splitlines()[-lines:]) or "no log"


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def live_pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            pid = int(entry.name)
            stat = proc_stat(pid)
            if stat is not None and stat[0] not in ("Z", "X"):
                yield pid


def find_libvirtd() -> int | None:
    """PID of a running libvirtd (or modular virtqemud), whoever started it."""
    for pid in live_pids():
        if comm(pid) in LIBVIRT_DAEMONS:
            return pid
    return None


def daemon_from_pidfile(name: str) -> Daemon | None:
    try:
        pid = int(PIDFILES[name].read_text().strip())
    except (OSError, ValueError):
        return None
    stat = proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X") or comm(pid) != name:
        return None
    return Daemon(name, pid, stat[1])


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def stop_process(daemon: Daemon, pidfile: Path | None, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, wait until it exited (gone or zombie), SIGKILL after ``timeout``; then drop a stale pidfile."""
    was_running = daemon.running
    if was_running:
        log.debug("stopping %s (pid %d)", daemon.name, daemon.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon.pid, signal.SIGTERM)
        if not wait_until(lambda: not daemon.running, timeout):
            log.warning(
                "%s (pid %d) ignored SIGTERM for %.0f s: killing it", daemon.name, daemon.pid, timeout
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(daemon.pid, signal.SIGKILL)
            if not wait_until(lambda: not daemon.running, 10.0):
                raise HostError(
                    f"{daemon.name} (pid {daemon.pid}) survived SIGKILL", hint="check `ps` for it"
                )
    if pidfile is not None:
        # A clean exit removes the pidfile; after SIGKILL (or a crash) it stays behind.
        if was_running:
            wait_until(lambda: not pidfile.exists(), 2.0)
        with contextlib.suppress(OSError, ValueError):
            if int(pidfile.read_text().strip()) == daemon.pid:
                pidfile.unlink()


def run_tool(cmd: list[str], what: str, timeout: float = 60.0) -> None:
    """Run a command with its output in a temporary file (a daemon keeping a pipe open cannot hang us)."""
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=timeout, cwd="/", check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HostError(f"{what} failed: {exc}") from exc
        if proc.returncode != 0:
            out.seek(0)
            text = out.read().decode(errors="replace").strip()
            raise HostError(f"{what} failed (exit {proc.returncode}): {text or 'no output'}")


# --------------------------------------------------------------------------------------------- namespaces


def ns_id(path: Path | str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def pids_in_netns(ns: tuple[int, int]) -> list[int]:
    """Live processes (other than this one) whose network namespace is ``ns``."""
    found = []
    me = os.getpid()
    for pid in live_pids():
        if pid == me:
            continue
        with contextlib.suppress(OSError):
            if ns_id(f"/proc/{pid}/ns/net") == ns:
                found.append(pid)
    return found


def run_daemonizing(cmd: list[str], log: Path, timeout: float) -> tuple[int, str]:
    """Run a libvirt daemon's ``-d`` start (it forks into the background once ready) with its warnings and
    errors kept in ``log``: without systemd libvirt logs to stderr, which ``-d`` sends to /dev/null. Returns the
    exit code and what the command printed."""
    env = dict(os.environ)
    env["LIBVIRT_LOG_OUTPUTS"] = f"3:file:{log}"
    with tempfile.TemporaryFile() as out:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            cwd="/",
            timeout=timeout,
            check=False,
        )
        out.seek(0)
        return proc.returncode, out.read().decode(errors="replace").strip()
