"""Reaching a libvirt host within a deadline.

libvirt's calls block: over ``qemu+ssh`` a host that is down can hold ``virConnectOpen`` for as long as ssh
waits for TCP (minutes without ``ConnectTimeout``), and libvirt-python offers no timeout of its own. So the
call runs in a daemon thread and the caller waits for it only until the deadline; a late connection is
closed by that thread when it finally arrives. ``no_tty=1`` is added to ``qemu+ssh`` URIs that lack it: ssh
must fail rather than ask for a password on the terminal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from labkit.errors import HostError

T = TypeVar("T")


def is_remote(uri: str) -> bool:
    """True for a URI naming another machine (``qemu+ssh://host/system``), False for ``qemu:///system``."""
    return bool(urlsplit(uri).hostname)


def noninteractive(uri: str) -> str:
    """``uri`` with ``no_tty=1`` for the ssh transport, unless it says otherwise."""
    parts = urlsplit(uri)
    if not parts.scheme.endswith("+ssh") or "no_tty=" in parts.query:
        return uri
    return uri + ("&" if parts.query else "?") + "no_tty=1"


def one_line(exc: BaseException) -> str:
    """A libvirt error (ssh's stderr spans lines) as one line."""
    message = getattr(exc, "get_error_message", lambda: None)() or str(exc) or type(exc).__name__
    return " ".join(str(message).split())


@dataclass
class Pending(Generic[T]):
    """A call running in the background: its value or error once done; ``abandon`` drops a late value."""

    cleanup: Callable[[T], None] | None = None
    value: T | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _abandoned: bool = False

    def run(self, call: Callable[[], T]) -> None:
        try:
            value = call()
        except BaseException as exc:  # broad on purpose: handed to the waiting thread as it is
            self.error = exc
            self.done.set()
            return
        with self._lock:  # with abandon's lock: exactly one of the two cleans a late value up
            self.value = value
            late = self._abandoned
        if late and self.cleanup is not None:
            self.cleanup(value)
        self.done.set()

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            arrived = self.value
        if arrived is not None and self.cleanup is not None:
            self.cleanup(arrived)


def start(call: Callable[[], T], name: str, cleanup: Callable[[T], None] | None = None) -> Pending[T]:
    """Run ``call`` in a daemon thread (a hung call never keeps labkit from exiting)."""
    pending: Pending[T] = Pending(cleanup=cleanup)
    threading.Thread(target=pending.run, args=(call,), name=name, daemon=True).start()
    return pending


def _close(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # broad on purpose: closing a late, unwanted connection
        return


def open_within(uri: str, timeout: float, name: str) -> Any:
    """A libvirt connection to ``uri``, or HostError saying why host ``name`` is unreachable."""
    import libvirt

    from labkit.machines.libvirt_host import silence_libvirt_errors

    silence_libvirt_errors()
    pending = start(lambda: libvirt.open(noninteractive(uri)), f"connect {name}", cleanup=_close)
    hint = f"`labkit hosts list` shows which hosts answer; `virsh -c '{uri}' version` tries this one"
    if not pending.done.wait(timeout):
        pending.abandon()
        raise HostError(f"host {name} is unreachable: no answer within {timeout:.0f} s", hint=hint)
    if pending.error is not None:
        raise HostError(
            f"host {name} is unreachable: {one_line(pending.error)}", hint=hint
        ) from pending.error
    return pending.value
