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
    version: int = STATE_VERSION

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
