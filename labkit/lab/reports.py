"""What the lab's operations report back: to the CLI (printed or as JSON) and to scripts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labkit.hostsetup.accel import AccelChoice
from labkit.kinds.checks import CheckResult


@dataclass
class UpReport:
    lab: str
    accel: AccelChoice
    booted: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def converged(self) -> bool:
        """Nothing had to be done: every VM was running and configured."""
        return not self.booted and not any(self.changed.values())


@dataclass
class Verification:
    stage: str
    results: list[CheckResult]
    snapshot: str | None = None

    @property
    def passed(self) -> bool:
        return all(r.ok for r in self.results)


@dataclass
class ResetReport:
    name: str
    stage: str | None
    seconds: float
    revert_seconds: float
    clock_offsets: dict[str, float]


@dataclass
class NodeStatus:
    name: str
    roles: list[str]
    lab_ip: str
    management_ip: str | None
    domain: str
    state: str


@dataclass
class LabStatus:
    lab: str
    scenario: str
    accel: str
    accel_reason: str
    directory: str
    current_stage: str | None
    verified_stages: list[str]
    nodes: list[NodeStatus]
    snapshots: list[str]
    disk_bytes: int = 0
    rediscovered: bool = False
    solved_stages: list[str] = field(default_factory=list)
    host: str = "local"
    """The pool host the lab's VMs run on (`labkit hosts list`)."""

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)
