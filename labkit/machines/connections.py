"""Fabric connections to a lab's nodes: the lab's key (or Vagrant's insecure key on a fresh box), no user config.

One Connection per node, reused for every command of a phase; paramiko is told nothing about the user's own
~/.ssh/config, agent or known_hosts, so a developer's settings never change what labkit does.

Nothing waits forever on a node:
- opening a connection is bounded (TCP connect, SSH banner, authentication, channel open);
- the transport sends keepalives and the socket gives up on unacknowledged data (``TCP_USER_TIMEOUT``), so a
  VM that is gone or paused ends the connection instead of leaving it half-open;
- every command runs within a budget (:meth:`NodeConnection.budget`: a step's or check's ``timeout``, else
  :data:`COMMAND_TIMEOUT`). When the budget runs out the command's channel is closed; when the node does not
  even answer that, a watchdog closes the whole transport. Either way the caller gets :class:`NodeTimeout`
  naming the node and what was running. The remote command is wrapped in coreutils ``timeout`` so it ends on
  the node too;
- :func:`close_all` (called by the main thread on Ctrl-C) closes connections from outside their worker threads,
  which makes every blocked read in them return.

A node of a remote host is reached through that host: its management network lives there. The connection
jumps through the host's own SSH connection (fabric's ``gateway``, a ``direct-tcpip`` channel, as OpenSSH's
``ProxyJump``), opened within the connection's ``connect_timeout``.

Host keys: a connection made with ``known_hosts`` accepts only the key recorded for its node (looked up by node
name, like OpenSSH's ``HostKeyAlias``, since management IPs can change) and refuses any other with
:class:`HostKeyChanged`; see :class:`NodeHostKeys`.
"""

from __future__ import annotations

import contextlib
import errno
import math
import shlex
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut, Failure, ThreadException
from paramiko import AuthenticationException, SSHException
from paramiko.hostkeys import HostKeys
from paramiko.pkey import PKey

from labkit.errors import LabError
from labkit.machines.sshkeys import SSH_USER

CONNECT_TIMEOUT = 30
KEEPALIVE_INTERVAL = 10
"""Seconds between SSH keepalive packets on an idle transport."""
TCP_USER_TIMEOUT = 45
"""Seconds of unacknowledged data after which the kernel drops the connection (a VM gone or paused)."""
COMMAND_TIMEOUT = 600.0
"""A command's budget when nobody set one (``lab.run``, node set-up)."""
WATCHDOG_GRACE = 5.0
"""After the budget, how long closing the command's channel may take before the whole transport is closed."""
LIVENESS_TIMEOUT = 5.0
"""After a timeout, how long the node has to open a channel to show it still answers."""
REMOTE_GRACE = 3
"""The remote ``timeout`` fires this much after the local one, to end the command on the node too."""
OPEN_ADMINISTRATIVELY_PROHIBITED = 1
"""SSH's reason code when a server refuses to open a forwarding channel (RFC 4254, 5.1)."""


class NodeUnreachable(LabError):
    """A node that does not answer: connection refused or timed out, no SSH banner, transport lost."""

    def __init__(self, node: str, what: str, detail: str) -> None:
        super().__init__(
            f"{node}: unreachable while running {what}: {detail}",
            "is the VM running and not paused? `labkit status`; then run the command again",
        )
        self.node = node
        self.what = what
        self.detail = detail

    @property
    def short(self) -> str:
        """The error without the node and what ran (for reports that already name them), with its fix."""
        return f"{self.outcome} ({self.hint})"

    @property
    def outcome(self) -> str:
        return f"unreachable: {self.detail}"


class NodeTimeout(NodeUnreachable):
    """A command that did not finish within its budget (the node stopped answering, or the command hangs)."""

    def __init__(self, node: str, what: str, seconds: float, answered: bool) -> None:
        why = "the command did not finish" if answered else "no answer from the node"
        LabError.__init__(
            self,
            f"{node}: {what} timed out after {seconds:.0f} s ({why})",
            "`labkit status` shows whether the VM is running or paused; if the command needs longer, raise "
            "`timeout:` on it in the scenario; then run the same command again",
        )
        self.node = node
        self.what = what
        self.seconds = seconds
        self.answered = answered
        self.detail = why

    @property
    def outcome(self) -> str:
        return f"timed out after {self.seconds:.0f} s ({self.detail})"


class HostKeyChanged(LabError):
    """The node presented a host key other than the one recorded at ``labkit up``."""


class NoHostKey(LabError):
    """No host key recorded for the node: the lab predates host-key recording, or its known_hosts is lost."""


UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, SSHException, NodeUnreachable)
"""Exceptions that mean "the node did not answer" (``socket.timeout``, refused, no banner, closed transport);
:func:`is_unreachable` excludes authentication and host-key refusals, which are answers."""


REMOTE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    SSHException,
    Failure,
    ThreadException,
    NodeUnreachable,
)
"""What a remote action raises for remote reasons: socket and SFTP errors (OSError), a transport closed under
it (EOFError), paramiko's SSH errors, invoke's UnexpectedExit/CommandTimedOut (``Failure``) and I/O thread
errors, and :class:`NodeUnreachable` (NodeTimeout included). Anything else out of a step or check is a bug in labkit and is not caught as the node's result."""


ANSWERED_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.ENOENT,
        errno.EEXIST,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
    }
)
"""OSErrors that are an answer, not silence: the node's SFTP server refused a file (permission denied, no such
directory, disk full, ...) or a local file is missing. Reported as a failed step, never as "unreachable"."""


def is_unreachable(exc: BaseException) -> bool:
    if isinstance(exc, (AuthenticationException, HostKeyChanged, NoHostKey)):
        return False
    if isinstance(exc, OSError) and exc.errno in ANSWERED_ERRNOS:
        return False
    return isinstance(exc, UNREACHABLE_ERRORS)


def fingerprint(key: PKey) -> str:
    return str(key.fingerprint)  # "SHA256:..." like ssh-keygen -l


class NodeHostKeys:
    """A lab's ``known_hosts``: one line per node, keyed by node name (OpenSSH reads it with ``HostKeyAlias``).

    ``record=True`` (``labkit up`` only) records the key of a node that has none yet; a node with a recorded
    key must present exactly that key. Thread-safe: nodes connect in parallel."""

    _lock = threading.Lock()

    def __init__(self, path: Path, record: bool = False) -> None:
        self.path = path
        self.record = record

    def load(self) -> HostKeys:
        keys = HostKeys()
        if self.path.is_file():
            keys.load(str(self.path))
        return keys

    def forget(self, nodes: Iterable[str]) -> None:
        """Drop the keys of nodes whose VMs are new (created again: a new first boot, a new key)."""
        with self._lock:
            keys = self.load()
            changed = False
            for node in nodes:
                if node in keys:
                    del keys[node]
                    changed = True
            if changed:
                self._save(keys)

    def _save(self, keys: HostKeys) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        keys.save(str(tmp))
        tmp.replace(self.path)

    def verify(self, node: str, address: str, key: PKey) -> None:
        with self._lock:
            keys = self.load()
            known = keys.lookup(node)
            if known is None or not known:
                if not self.record:
                    raise NoHostKey(
                        f"{node}: no host key recorded in {self.path}; labkit will not trust {address} blindly",
                        "`labkit up` records the keys of the lab's VMs (it changes nothing else on a running lab)",
                    )
                keys.add(node, key.get_name(), key)
                self._save(keys)
                return
            recorded = known.get(key.get_name())
            if recorded is not None and recorded == key:
                return
            was = ", ".join(f"{k.get_name()} {fingerprint(k)}" for k in known.values())
            raise HostKeyChanged(
                f"{node} ({address}) presented host key {key.get_name()} {fingerprint(key)}, "
                f"but the key recorded at `labkit up` is {was}: refusing to connect (another machine answers "
                "at that address, or the VM was replaced outside labkit)",
                f"if the VM was recreated on purpose, remove the line for {node} from {self.path} and run "
                "`labkit up` to record its new key; otherwise find out what answers at that address",
            )


class _CheckRecordedKey:
    """paramiko's missing-host-key policy, made the only check: the client holds no keys of its own, so
    every key is judged here against the node's recorded one (by node name, not by address)."""

    def __init__(self, node: str, host_keys: NodeHostKeys) -> None:
        self.node = node
        self.host_keys = host_keys

    def missing_host_key(self, client: Any, hostname: str, key: PKey) -> None:
        self.host_keys.verify(self.node, hostname, key)


class NodeConnection(Connection):  # type: ignore[misc]  # fabric is untyped
    """A fabric Connection with bounded waits, a per-command budget and a name for messages."""

    def __init__(self, *args: Any, node: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.node = node
        self._budget: tuple[str, float, float] | None = None  # what, seconds, deadline

    @contextlib.contextmanager
    def budget(self, what: str, seconds: float) -> Iterator[None]:
        """Commands inside share ``seconds`` (a step's or check's ``timeout``); errors name ``what``."""
        saved = self._budget
        self._budget = (what, seconds, time.monotonic() + seconds)
        try:
            yield
        finally:
            self._budget = saved

    def _current(self) -> tuple[str, float, float]:
        if self._budget is not None:
            return self._budget
        return "a command", COMMAND_TIMEOUT, time.monotonic() + COMMAND_TIMEOUT

    def open(self) -> Any:
        if self.is_connected:
            return None
        result = super().open()
        self.transport.set_keepalive(KEEPALIVE_INTERVAL)
        sock = self.transport.sock
        if isinstance(sock, socket.socket) and hasattr(socket, "TCP_USER_TIMEOUT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, TCP_USER_TIMEOUT * 1000)
        return result

    def open_gateway(self) -> Any:
        """A ``direct-tcpip`` channel to the node through the gateway host, within ``connect_timeout`` (fabric's
        own waits up to an hour); a host whose sshd forbids forwarding is named as the cause."""
        from paramiko import ChannelException

        if not isinstance(self.gateway, Connection):
            return super().open_gateway()
        self.gateway.open()
        try:
            return self.gateway.transport.open_channel(
                kind="direct-tcpip",
                dest_addr=(self.host, int(self.port)),
                src_addr=("", 0),
                timeout=self.connect_timeout,
            )
        except ChannelException as exc:
            if exc.code == OPEN_ADMINISTRATIVELY_PROHIBITED:
                detail = (
                    f"the host's sshd refuses to forward to {self.host}:{self.port} "
                    "(it needs `AllowTcpForwarding local` and `PermitOpen *:22`)"
                )
            else:
                detail = f"the host cannot reach {self.host}:{self.port} ({exc.text})"
            raise NodeUnreachable(self.node, "opening the connection", detail) from None

    def _bounded(self, call: Any, what: str, seconds: float, deadline: float) -> Any:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NodeTimeout(self.node, what, seconds, answered=True)
        fired = threading.Event()

        def watchdog() -> None:
            fired.set()
            self.client.close()  # ends every blocked read and wait on this connection

        timer = threading.Timer(remaining + WATCHDOG_GRACE, watchdog)
        timer.daemon = True
        timer.start()
        try:
            return call(remaining)
        except CommandTimedOut:
            answered = not fired.is_set() and self._answers()
            raise NodeTimeout(self.node, what, seconds, answered=answered) from None
        except (
            Exception
        ) as exc:  # broad on purpose: every exception is re-raised, unchanged or as NodeTimeout
            if fired.is_set():  # the watchdog closed the client under the call: whatever it raised means that
                raise NodeTimeout(self.node, what, seconds, answered=False) from None
            if is_unreachable(exc) and not isinstance(exc, NodeUnreachable):
                raise NodeUnreachable(self.node, what, f"{type(exc).__name__}: {exc}") from None
            raise
        finally:
            timer.cancel()

    def _answers(self) -> bool:
        """Whether the node still opens a channel within a few seconds (a hung command vs a frozen node)."""
        transport = self.transport
        if transport is None or not transport.is_active():
            self.client.close()
            return False
        try:
            channel = transport.open_session(timeout=LIVENESS_TIMEOUT)
        except (SSHException, OSError, EOFError):
            self.client.close()
            return False
        channel.close()
        return True

    def run(self, command: str, **kwargs: Any) -> Any:
        what, seconds, deadline = self._current()

        def call(remaining: float) -> Any:
            kwargs.setdefault("timeout", remaining)
            # the node ends the command too, shortly after labkit stops waiting for it
            remote = math.ceil(remaining) + REMOTE_GRACE
            wrapped = f"timeout -k 5 {remote} sh -c {shlex.quote(command)}"
            ends = time.monotonic() + remaining
            result = super(NodeConnection, self).run(wrapped, **kwargs)
            # invoke reports its timeout only once its timer thread has ended: a run that returns first
            # comes back with the closed channel's exit -1 instead, at the deadline
            if result.exited == -1 and time.monotonic() >= ends - 0.1:
                raise CommandTimedOut(result, timeout=math.ceil(remaining))
            return result

        return self._bounded(call, what, seconds, deadline)

    def put(self, *args: Any, **kwargs: Any) -> Any:
        what, seconds, deadline = self._current()
        return self._bounded(
            lambda _: super(NodeConnection, self).put(*args, **kwargs), what, seconds, deadline
        )

    def sftp(self) -> Any:
        client = super().sftp()
        channel = client.get_channel()
        if channel is not None:
            channel.settimeout(CONNECT_TIMEOUT * 4)  # a stalled transfer raises instead of waiting forever
        return client


def close_all(connections: Iterable[Any]) -> None:
    """Close connections from another thread (Ctrl-C in the main thread): their blocked reads return.
    Best effort, broad on purpose: closing a half-dead paramiko client from another thread can raise anything,
    and the caller is handling Ctrl-C, which a close error must not replace."""
    for conn in connections:
        with contextlib.suppress(Exception):
            conn.client.close()
        with contextlib.suppress(Exception):
            conn.close()


@contextlib.contextmanager
def interruptible(pool: ThreadPoolExecutor, connections: Iterable[Any]) -> Iterator[ThreadPoolExecutor]:
    """``pool`` whose workers talk to ``connections``. Ctrl-C reaches the main thread only: it closes the
    connections first, so the workers' waits on nodes that may never answer end, then the pool shuts down."""
    with pool:
        try:
            yield pool
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            close_all(connections)
            raise


def fabric_config() -> Config:
    # in_stream=False: labkit's remote commands never read the caller's stdin (a CLI user's terminal, pytest)
    return Config(
        overrides={
            "load_ssh_configs": False,
            "run": {"hide": True, "warn": True, "in_stream": False},
            "timeouts": {"connect": CONNECT_TIMEOUT},
        }
    )


def connect(
    host: str,
    keys: list[Path],
    user: str = SSH_USER,
    port: int | None = None,
    *,
    node: str | None = None,
    known_hosts: NodeHostKeys | None = None,
    connect_timeout: int = CONNECT_TIMEOUT,
    gateway: Connection | None = None,
) -> NodeConnection:
    """An (unopened) connection to ``host`` (``port``, default 22) trying ``keys`` in order.

    With ``known_hosts`` the node (``node``, default ``host``) must present its recorded host key; without,
    any key is accepted (tests, and callers that check nothing on the node). With ``gateway`` (an open
    connection to the node's libvirt host, :meth:`LibvirtHost.gateway`) it goes through that host."""
    name = node or host
    connect_kwargs: dict[str, Any] = {
        "key_filename": [str(k) for k in keys if k.is_file()],
        "look_for_keys": False,
        "allow_agent": False,
        "banner_timeout": connect_timeout,
        "auth_timeout": connect_timeout,
        "channel_timeout": connect_timeout,
    }
    conn = NodeConnection(
        host=host,
        user=user,
        port=port,
        config=fabric_config(),
        connect_timeout=connect_timeout,
        connect_kwargs=connect_kwargs,
        node=name,
        gateway=gateway or False,
    )
    if known_hosts is not None:
        # never the user's ~/.ssh/known_hosts: only the lab's own record decides
        conn.client.get_host_keys().clear()
        conn.client.set_missing_host_key_policy(_CheckRecordedKey(name, known_hosts))
    return conn


__all__ = [
    "COMMAND_TIMEOUT",
    "CONNECT_TIMEOUT",
    "REMOTE_ERRORS",
    "HostKeyChanged",
    "NoHostKey",
    "NodeConnection",
    "NodeHostKeys",
    "NodeTimeout",
    "NodeUnreachable",
    "close_all",
    "connect",
    "fabric_config",
    "interruptible",
    "is_unreachable",
]
