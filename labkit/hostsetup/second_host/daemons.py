"""A second host's daemons: virtlogd, libvirtd and sshd, in its network namespace and one private mount
namespace in which the host's own directories replace libvirt's (see ``layout.PRIVATE_DIRS``).

The first daemon creates that mount namespace (``unshare --mount --propagation private`` inside ``ip netns
exec``: nothing mounted there reaches the machine); the others join it with ``nsenter`` through a daemon
that runs. Each daemon writes its pid file under the host's directory, never /run/libvirtd.pid.
"""

from __future__ import annotations

import shlex
import shutil
import stat
import time
from pathlib import Path
from typing import Any

from labkit.errors import HostError
from labkit.hostsetup.hostmode import QEMU_CONF, qemu_conf_as_root
from labkit.hostsetup.processes import Daemon, comm, proc_stat, run_daemonizing, wait_until
from labkit.hostsetup.second_host.layout import SecondHostPaths
from labkit.hostsetup.second_host.record import SecondHostState
from labkit.machines.libvirt_host import silence_libvirt_errors

LIBVIRT_ETC = Path("/etc/libvirt")
ETC_DIRS = ("qemu/networks/autostart", "qemu/autostart", "storage/autostart", "secrets")
"""Definition directories, empty at first: the host shares no domain, network, pool or secret."""
START_TIMEOUT = 60.0


def prepare_libvirt_dirs(paths: SecondHostPaths, qemu_as_root: bool) -> None:
    """The private libvirt directories: libvirt's configuration files (not its definitions), a fresh runtime
    directory, and the link to libvirtd under labkit's name."""
    for source, target in paths.mounts():
        if not target.is_dir():
            raise HostError(f"{target} does not exist", hint="apt-get install libvirt-daemon-system")
        if source.resolve().is_relative_to(target):
            raise HostError(
                f"{source} lies under {target}, which the second host's mount namespace replaces",
                hint="set LABKIT_HOME outside libvirt's directories",
            )
        source.mkdir(mode=0o700, parents=True, exist_ok=True)
        source.chmod(stat.S_IMODE(target.stat().st_mode))  # as libvirt's own: QEMU's user goes through
    run = paths.private("run")
    shutil.rmtree(run)  # sockets and pid files of an earlier run: this is a new boot for this libvirtd
    run.mkdir(mode=0o755)
    (paths.private("lib") / "images").mkdir(mode=0o711, exist_ok=True)
    etc = paths.private("etc")
    for conf in LIBVIRT_ETC.glob("*.conf"):
        shutil.copy2(conf, etc / conf.name)
    if (LIBVIRT_ETC / "nwfilter").is_dir():
        shutil.copytree(LIBVIRT_ETC / "nwfilter", etc / "nwfilter", dirs_exist_ok=True)
    for sub in ETC_DIRS:
        (etc / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    if qemu_as_root:
        (etc / "qemu.conf").write_text(qemu_conf_as_root(QEMU_CONF.read_text()))
    paths.libvirtd_binary.parent.mkdir(exist_ok=True)
    paths.libvirtd_binary.unlink(missing_ok=True)
    paths.libvirtd_binary.symlink_to(_binary("libvirtd", "libvirt-daemon-system"))


def _binary(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise HostError(f"{name} not found", hint=f"apt-get install {package}")
    return found


def daemon_argv(paths: SecondHostPaths, name: str) -> list[str]:
    """How each daemon starts (it forks into the background and writes its pid file)."""
    if name == "virtlogd":
        return [_binary("virtlogd", "libvirt-daemon-system"), "-d", "-p", str(paths.pidfile(name))]
    if name == "libvirtd":
        return [str(paths.libvirtd_binary), "-d", "-p", str(paths.pidfile(name))]
    if name == "sshd":
        sshd = _binary("sshd", "openssh-server")  # sshd re-executes itself: it needs an absolute path
        return [sshd, "-f", str(paths.sshd_config), "-E", str(paths.log(name))]
    raise ValueError(f"unknown daemon {name}")


def mount_script(paths: SecondHostPaths) -> str:
    """Shell that mounts the host's directories over libvirt's, then runs its arguments."""
    mounts = [f"mount --bind {shlex.quote(str(s))} {shlex.quote(str(t))}" for s, t in paths.mounts()]
    return "set -e; " + "; ".join(mounts) + '; exec "$@"'


def namespace_argv(state: SecondHostState, paths: SecondHostPaths, argv: list[str]) -> list[str]:
    """``argv`` run in the host's namespaces: joining a running daemon's, or making the mount namespace."""
    anchor = next((d for d in state.daemons if d.running), None)
    if anchor is not None:
        return ["nsenter", f"--target={anchor.pid}", "--mount", "--net", "--", *argv]
    unshare = ["unshare", "--mount", "--propagation", "private"]
    return ["ip", "netns", "exec", state.netns, *unshare, "sh", "-c", mount_script(paths), "sh", *argv]


def _from_pidfile(paths: SecondHostPaths, name: str, binary: str) -> Daemon | None:
    try:
        pid = int(paths.pidfile(name).read_text().strip())
    except (OSError, ValueError):
        return None
    stat = proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X") or comm(pid) != Path(binary).name[:15]:
        return None
    return Daemon(name, pid, stat[1])


def start_daemon(state: SecondHostState, paths: SecondHostPaths, name: str) -> Daemon:
    """Start one daemon in the host's namespaces and return it as read from its pid file."""
    argv = daemon_argv(paths, name)
    paths.pidfile(name).unlink(missing_ok=True)
    returncode, text = run_daemonizing(namespace_argv(state, paths, argv), paths.log(name), START_TIMEOUT)
    if returncode == 0:  # each forks into the background once ready; its pid file may lag a little
        wait_until(lambda: _from_pidfile(paths, name, argv[0]) is not None, 10.0)
    daemon = _from_pidfile(paths, name, argv[0]) if returncode == 0 else None
    if daemon is None:
        why = text or _last_line(paths.log(name)) or "no output"
        raise HostError(
            f"{name} of second host {paths.name} did not start (exit {returncode}): {why}",
            hint=f"read {paths.log(name)}",
        )
    return daemon


def _last_line(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def wait_for_libvirtd(paths: SecondHostPaths, daemon: Daemon, timeout: float = START_TIMEOUT) -> Any:
    """A connection to the host's libvirtd through its socket file, once it answers."""
    import libvirt

    silence_libvirt_errors()
    deadline = time.monotonic() + timeout
    last = f"socket {paths.socket} not there yet"
    while time.monotonic() < deadline:
        if not daemon.running:
            raise HostError(
                f"libvirtd (pid {daemon.pid}) exited during start-up", hint=f"read {paths.log('libvirtd')}"
            )
        if paths.socket.exists():
            try:
                conn = libvirt.open(paths.socket_uri)
                conn.getLibVersion()
                return conn
            except libvirt.libvirtError as exc:
                last = exc.get_error_message() or str(exc)
        time.sleep(0.05)
    raise HostError(
        f"libvirtd did not answer within {timeout:.0f} s: {last}", hint=f"read {paths.log('libvirtd')}"
    )
