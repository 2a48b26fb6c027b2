"""A lab's state (state.json), rewritten atomically after every change.

The state is a cache of what labkit did: the authoritative facts (domains, networks, snapshots) live in
libvirt under deterministic names, so a lost state.json is rebuilt from there (see ``labkit.lab``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_VERSION = 1


@dataclass
class NodeState:
    name: str
    domain: str
    management_ip: str | None = None
    lab_ip: str | None = None
    lab_mac: str | None = None
    lab_iface: str | None = None
    configured: bool = False


@dataclass
class LabState:
    lab: str
    scenario: str
    scenario_path: str
    accel: str
    accel_reason: str
    management_network: str
    management_cidr: str
    lab_network: str
    created_at: str
    nodes: dict[str, NodeState] = field(default_factory=dict)
    current_stage: str | None = None
    verified_stages: list[str] = field(default_factory=list)
    solved_stages: list[str] = field(default_factory=list)
    """Stages whose whole solution labkit applied (their files' additions are kept when another is re-solved)."""
    version: int = STATE_VERSION

    def done_stages(self) -> list[str]:
        """Stages the lab holds: solved by labkit or verified by their checks (done by hand)."""
        return list(dict.fromkeys([*self.solved_stages, *self.verified_stages]))

    def solved(self, stage: str) -> None:
        if stage not in self.solved_stages:
            self.solved_stages.append(stage)
        self.current_stage = stage

    def reset_to(self, stage: str | None, order: list[str]) -> None:
        """After a revert to a snapshot taken at ``stage`` (None: before any stage), the stages after it are
        neither solved nor verified any more: the VMs lost what they did."""
        keep = set(order[: order.index(stage) + 1]) if stage in order else set()
        self.solved_stages = [s for s in self.solved_stages if s in keep]
        self.verified_stages = [s for s in self.verified_stages if s in keep]
        self.current_stage = stage

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabState:
        data = dict(data)
        nodes = {name: NodeState(**node) for name, node in data.pop("nodes", {}).items()}
        return cls(nodes=nodes, **data)


def write_state(path: Path, state: LabState) -> None:
    """Write next to the target and rename, so a crash or Ctrl-C never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(state.to_json(), handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_state(path: Path) -> LabState | None:
    try:
        return LabState.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError):
        return None
