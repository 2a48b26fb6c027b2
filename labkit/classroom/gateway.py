"""The class gateway: an OpenSSH ``sshd`` that labkit runs for one class, through which trainees reach their labs.

It is labkit's own daemon, never the system's sshd nor its config: ``sshd -D -f CLASS.access/gateway/sshd_config``
started in the background, found again by its PID file, and stopped by that PID only, after checking that the
process's command line names this class's config. It runs in the network namespace labkit runs in (host mode:
the lab host's), so it reaches the VMs' management networks.

One account, ``labkit-trainee``, and one restricted line per trainee key, is as strict as an account per
trainee: sshd picks the key's line when the key authenticates, and that line's options bind the whole
connection. ``restrict`` turns off the pty, agent and X11 forwarding, remote forwarding and user rc;
``port-forwarding`` turns local forwarding back on, and each ``permitopen`` names one ``address:22`` of the
trainee's own lab: sshd refuses any other channel open ("administratively prohibited") before it connects
anywhere. ``command=`` and the config's ``ForceCommand`` make any session ``nologin``. A key is on one line
only, so holding trainee 1's key opens trainee 1's nodes and nothing else. Separate accounts would add nothing
the key options do not already enforce, and would need an account per trainee on the class host.

The keys are read through ``AuthorizedKeysCommand`` (``cat`` of the class's file, run by sshd as root), not
``AuthorizedKeysFile``: sshd opens an AuthorizedKeysFile with the login account's uid, and labkit's home is
private to root (0700), so ``labkit-trainee`` could not read a file under it.
"""

from __future__ import annotations

import errno
import os
import pwd
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from labkit.classroom.access_paths import AccessPaths
from labkit.classroom.bundle_text import ACCOUNT, NOLOGIN, check_ip
from labkit.errors import HostError, UsageError
from labkit.hostsetup.processes import (
    Daemon,
    children,
    log_tail,
    recorded_process,
    run_tool,
    start_in_background,
    stop_process,
)
from labkit.machines.sshkeys import make_key_pair

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
"""sshd's privilege separation directory; systemd makes it for the system's sshd, labkit when there is none."""
START_TIMEOUT = 10.0
INSTALL_HINT = "apt-get install openssh-server (labkit runs its own sshd for the class gateway)"

USERADD = ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", NOLOGIN]

STARTED = "started"
RESTARTED = "restarted"
RUNNING = "running"


@dataclass(frozen=True)
class Listen:
    """The address and port the gateway listens on (``--listen HOST:PORT``)."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"--listen {text!r}: give HOST:PORT", "for example --listen 0.0.0.0:2222")
        return cls(check_ip(host.strip("[]")), int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def everywhere(self) -> bool:
        return self.host in ("0.0.0.0", "::")

    @property
    def probe_address(self) -> str:
        """An address this host reaches the gateway at (loopback when it listens on all addresses)."""
        return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)


def require_gateway_tools() -> None:
    """Refuse before anything is made when the gateway cannot run here."""
    if os.geteuid() != 0:
        raise UsageError(
            "labkit class access needs root: it starts sshd and creates the labkit-trainee account",
            "run it as root (sudo labkit class access ...)",
        )
    if not SSHD.is_file():
        raise HostError(f"{SSHD} is missing", INSTALL_HINT)


def _cat() -> str:
    return "/usr/bin/cat" if Path("/usr/bin/cat").is_file() else "/bin/cat"


def _quoted(path: Path) -> str:
    text = str(path)
    if any(c in text for c in '"\n\r%'):
        raise HostError(
            f"{text}: a path with a quote, % or line break cannot go into sshd_config", "set LABKIT_HOME"
        )
    return f'"{text}"' if " " in text or "\t" in text else text


def sshd_config_text(paths: AccessPaths, listen: Listen) -> str:
    """The gateway's whole sshd_config: key-only logins to ``labkit-trainee``, local forwarding only."""
    lines = [
        f"# the class gateway of labkit class {paths.class_name}, written by `labkit class access`",
        f"Port {listen.port}",
        f"ListenAddress {listen.host}",
        f"HostKey {_quoted(paths.host_key)}",
        f"PidFile {_quoted(paths.pidfile)}",
        "# read as root: the login account cannot read labkit's home (see labkit/classroom/gateway.py)",
        "AuthorizedKeysFile none",
        f"AuthorizedKeysCommand {_cat()} {_quoted(paths.authorized_keys)}",
        "AuthorizedKeysCommandUser root",
        f"AllowUsers {ACCOUNT}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin no",
        "UsePAM no",
        "StrictModes yes",
        "AllowTcpForwarding local",
        "AllowAgentForwarding no",
        "AllowStreamLocalForwarding no",
        "X11Forwarding no",
        "PermitTTY no",
        "PermitTunnel no",
        "GatewayPorts no",
        "PermitUserRC no",
        f"ForceCommand {NOLOGIN}",
        "MaxAuthTries 3",
        "LogLevel VERBOSE",
    ]
    return "\n".join(lines) + "\n"


# ---- the account and the keys --------------------------------------------------------------------------


def _password_field(account: str) -> str:
    found = subprocess.run(["getent", "shadow", account], capture_output=True, text=True, check=False)
    fields = found.stdout.strip().split(":")
    return fields[1] if len(fields) > 1 else ""


def ensure_account() -> None:
    """The system account every trainee key logs in to: no home, no shell, no password."""
    try:
        pwd.getpwnam(ACCOUNT)
    except KeyError:
        run_tool([*USERADD, ACCOUNT], f"creating the account {ACCOUNT}")
    if _password_field(ACCOUNT).startswith("!"):
        # sshd without PAM takes "!" for a locked account and refuses even its keys; "*" matches no password
        run_tool(["usermod", "-p", "*", ACCOUNT], f"unlocking {ACCOUNT} for key logins")


def ensure_host_key(paths: AccessPaths) -> str:
    """The gateway's host key, made once (trainees' bundles pin it); returns ``type base64``."""
    if not paths.host_key.is_file() or not paths.host_public_key.is_file():
        make_key_pair(paths.host_key, f"labkit-gateway-{paths.class_name}")
    return " ".join(paths.host_public_key.read_text().split()[:2])


def write_authorized_keys(paths: AccessPaths, lines: list[str]) -> None:
    """Every trainee key of the class, one restricted line each; read by sshd at each login (no restart)."""
    tmp = paths.authorized_keys.with_name(paths.authorized_keys.name + ".tmp")
    tmp.write_text("".join(f"{line}\n" for line in lines))
    tmp.chmod(0o644)
    tmp.replace(paths.authorized_keys)


# ---- the daemon ----------------------------------------------------------------------------------------


def running_gateway(paths: AccessPaths) -> Daemon | None:
    """The class's sshd, when its PID file names a live process whose command line names this config."""
    return recorded_process("sshd", paths.pidfile, str(paths.sshd_config))


def end_sessions(paths: AccessPaths) -> int:
    """End every connection the running gateway holds (after ``--rotate``: a tunnel opened with an old key
    would otherwise stay up until it disconnects). Each is a child process of the gateway's sshd, forked for
    that connection; the listener itself keeps running. The number ended."""
    gateway = running_gateway(paths)
    if gateway is None:
        return 0
    sessions = children(gateway, "sshd session")
    for session in sessions:
        stop_process(session, None)
    return len(sessions)


def stop_gateway(paths: AccessPaths) -> bool:
    """Stop the class's sshd (by its recorded PID only); True when one was running."""
    running = running_gateway(paths)
    if running is None:
        paths.pidfile.unlink(missing_ok=True)
        return False
    stop_process(running, paths.pidfile)
    return True


def ensure_gateway(paths: AccessPaths, listen: Listen) -> str:
    """The gateway running with this config: kept when it already is, else (re)started. The new config is
    checked with ``sshd -t`` before a running gateway is stopped for it."""
    text = sshd_config_text(paths, listen)
    running = running_gateway(paths)
    if running is not None and paths.sshd_config.is_file() and paths.sshd_config.read_text() == text:
        return RUNNING
    candidate = paths.gateway / "sshd_config.new"
    candidate.write_text(text)
    _validate(candidate)
    if running is None or _configured_listen(paths) != listen:
        _refuse_taken(listen)  # before a running gateway is stopped for a port it cannot have
    if running is not None:
        stop_process(running, paths.pidfile)
    candidate.replace(paths.sshd_config)
    _start(paths, listen)
    return RESTARTED if running is not None else STARTED


def _configured_listen(paths: AccessPaths) -> Listen | None:
    """Where the running gateway listens, from the config it was started with."""
    try:
        lines = paths.sshd_config.read_text().splitlines()
    except OSError:
        return None
    settings = dict(line.split(maxsplit=1) for line in lines if line.strip() and not line.startswith("#"))
    try:
        return Listen(settings["ListenAddress"], int(settings["Port"]))
    except (KeyError, ValueError):
        return None


def _validate(config: Path) -> None:
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    checked = subprocess.run(
        [str(SSHD), "-t", "-f", str(config)], capture_output=True, text=True, check=False
    )
    if checked.returncode != 0:
        detail = " ".join((checked.stderr or checked.stdout).split()) or f"exit {checked.returncode}"
        raise HostError(f"sshd refuses the class gateway's config {config}: {detail}")


def _refuse_taken(listen: Listen) -> None:
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((listen.host, listen.port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"port {listen.port} on {listen.host} is in use", "pick another with --listen HOST:PORT"
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UsageError(
                    f"{listen.host} is not an address of this host", "give one of its addresses with --listen"
                ) from None
            raise


def _answers(listen: Listen) -> bool:
    try:
        with socket.create_connection((listen.probe_address, listen.port), timeout=1):
            return True
    except OSError:
        return False


def _start(paths: AccessPaths, listen: Listen) -> None:
    """Start sshd in the background and wait until its port answers; on failure the error carries the end of
    its log."""
    seen = paths.log.stat().st_size if paths.log.is_file() else 0
    argv = [str(SSHD), "-D", "-f", str(paths.sshd_config), "-E", str(paths.log)]
    proc = start_in_background(argv, lambda: _answers(listen), START_TIMEOUT)
    if proc is None:
        raise HostError(
            f"the class gateway (sshd) did not start on {listen}: {log_tail(paths.log, seen)}",
            f"read {paths.log}",
        )
    # sshd writes the same PID; written here too, it is sure to be there when this returns
    paths.pidfile.write_text(f"{proc.pid}\n")
