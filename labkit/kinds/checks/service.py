"""``service``: a systemd unit active and stable."""

from __future__ import annotations

import time

from labkit.kinds.checks.base import CheckArgs, CheckKind, Conn, q, run


class ServiceArgs(CheckArgs):
    unit: str
    stable_seconds: float = 3.0


class ServiceStable(CheckKind):
    """Active now and still active ``stable_seconds`` later with no restart in between (the course's "run
    systemctl status several times"): a unit in a crash loop is active half of the time."""

    kind = "service"
    args_model = ServiceArgs
    args: ServiceArgs

    def _state(self, conn: Conn) -> tuple[str, str]:
        out = run(conn, f"systemctl show -p ActiveState -p NRestarts {q(self.args.unit)}").stdout
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return values.get("ActiveState", "unknown"), values.get("NRestarts", "?")

    def probe(self, conn: Conn) -> tuple[bool, str]:
        first, restarts_before = self._state(conn)
        if first != "active":
            return False, f"{self.args.unit} is {first}"
        time.sleep(self.args.stable_seconds)
        second, restarts_after = self._state(conn)
        seen = f"{self.args.unit} {first} -> {second}, restarts {restarts_before} -> {restarts_after}"
        return second == "active" and restarts_before == restarts_after, seen
