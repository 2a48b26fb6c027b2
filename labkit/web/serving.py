"""Serving the class web page with uvicorn: the listen address, the socket, the server.

The socket is bound by :func:`listening_socket` before labkit enters host mode's network namespace (where the
labs' addresses are): a socket stays in the namespace it was made in, so the page is on this host's own
network while its checks reach the labs.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

import uvicorn
from starlette.types import ASGIApp

from labkit.errors import HostError, UsageError

DEFAULT_LISTEN = "127.0.0.1:8080"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) as a host and a port; a UsageError saying the form."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(
            f"--listen {text!r} is not HOST:PORT",
            "e.g. --listen 127.0.0.1:8080, or --listen 0.0.0.0:8080 to let the room's machines in",
        )
    return host, int(port)


def url_host(host: str) -> str:
    """The host as a URL writes it: this machine's name for a wildcard address, IPv6 in brackets."""
    if host in ("0.0.0.0", "::"):
        return socket.gethostname()
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (uvicorn makes it listen); a one-line error with the fix when the
    address is taken or not this host's."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        where = f"{url_host(host)}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise HostError(
                f"cannot listen on {where}: the address is in use",
                f"stop what listens there (`ss -ltnp 'sport = :{port}'` shows it), or pick another port: "
                f"--listen {host}:{port + 1}",
            ) from None
        if exc.errno == errno.EACCES:
            raise HostError(
                f"cannot listen on {where}: ports below 1024 need root", "use a port above 1024"
            ) from None
        raise HostError(
            f"cannot listen on {where}: {exc.strerror or exc}",
            "give an address of this host: --listen 127.0.0.1:8080, or 0.0.0.0:8080 for every interface",
        ) from None
    return sock


def serve(app: ASGIApp, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C (or SIGTERM)."""
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn stopped cleanly and raises the Ctrl-C again for whoever called it: nothing more to do
    finally:
        sock.close()
