"""``port``: a TCP port listening, on a given address or any."""

from __future__ import annotations

from labkit.kinds.checks.base import CheckArgs, CheckKind, Conn, run


class PortArgs(CheckArgs):
    port: int
    address: str | None = None


class PortListening(CheckKind):
    """A TCP port listening, on a given address (or any)."""

    kind = "port"
    args_model = PortArgs
    args: PortArgs

    def probe(self, conn: Conn) -> tuple[bool, str]:
        listening = []
        for line in run(conn, "ss -ltnH").stdout.splitlines():
            fields = line.split()
            if len(fields) >= 4:
                address, _, port = fields[3].rpartition(":")
                if port == str(self.args.port):
                    listening.append(address.strip("[]"))
        wanted = self.args.address
        ok = bool(listening) and (
            wanted is None or wanted in listening or any(a in ("*", "0.0.0.0") for a in listening)
        )
        seen = (
            f"port {self.args.port} on {', '.join(listening)}"
            if listening
            else f"nothing on port {self.args.port}"
        )
        return ok, seen
