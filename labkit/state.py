"""A lab's state (state.json), rewritten atomically after every change.

The state is a cache of what labkit did: the authoritative facts (domains, networks, snapshots) live in
libvirt under deterministic names, so a lost state.json is rebuilt from there (see ``labkit.lab``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_VERSION = 1
log = logging.getLogger("labkit.state")


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
    class_name: str | None = None
    """The class this lab belongs to (its golden lab or a trainee's clone)."""
    cloned_from: str | None = None
    """For a trainee's lab: the golden lab and snapshot it was cloned from (``golden/snapshot``)."""
    host: str = "local"
    """The libvirt host of the pool the lab lives on (``labkit hosts list``); states written before the pool
    existed load as ``local``."""
    granted_keys: dict[str, str] = field(default_factory=dict)
    """SSH public keys let in as the vagrant user besides labkit's own, by label (``trainee``: the key of a
    class's trainee). They are written again after every revert: a snapshot's disk may predate them."""
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
    write_json(path, state.to_json())


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write next to the target and rename, so a crash or Ctrl-C never leaves half a file. An OSError (disk
    full, read-only file system) names ``path``: a failed write of an open file carries no file name."""
    try:
        _write_json(path, data)
    except OSError as exc:
        if exc.errno is None or exc.filename == str(path):
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc  # the same subclass, with the file's path


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C too: no temporary file left behind; the error itself goes on unchanged
        Path(tmp).unlink(missing_ok=True)
        raise


def read_state(path: Path) -> LabState | None:
    """The lab's state, or None when there is none. A file that cannot be read as a state is never dropped:
    it is kept aside as ``state.json.corrupt-<time>`` with a warning, and None is returned (the state is then
    rebuilt from libvirt, as for a lost file)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError(f"a JSON {type(data).__name__}, not an object")
        return LabState.from_json(data)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        kept = keep_corrupt(path)
        if kept is not None:
            log.warning(
                "warning: %s is unreadable (%s: %s); kept as %s, and the lab's state is rebuilt from libvirt",
                path,
                type(exc).__name__,
                exc,
                kept,
            )
        return None


def keep_corrupt(path: Path, now: dt.datetime | None = None) -> Path | None:
    """Rename an unreadable state file to ``<name>.corrupt-<UTC time>`` (never over an earlier one); the
    new name, or None when another process moved it first."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    for n in range(100):
        target = path.with_name(f"{path.name}.corrupt-{stamp}" + (f".{n}" if n else ""))
        if target.exists():
            continue
        try:
            os.link(path, target)  # fails instead of replacing a file that appeared meanwhile
        except FileExistsError:
            continue
        except FileNotFoundError:
            return None
        path.unlink(missing_ok=True)
        return target
    raise OSError(f"cannot keep {path} aside: 100 corrupt copies already")


def verified_after_reset(
    stages: list[str],
    taken: bool,
    stage: str | None,
    verified: bool,
    recorded: list[str] | None,
) -> list[str]:
    """The verified stages after a reset to a snapshot set: those recorded with the set (``recorded``), in
    scenario order. A set recorded before labkit wrote that list: its own stage if the set is verified
    (earlier stages are not known to have passed then: ``labkit check`` verifies them again). A set taken by
    hand (no record, ``taken`` False): none, since nothing says what the VMs hold."""
    if recorded is not None:
        return [s for s in stages if s in recorded]
    if not taken or not verified or stage not in stages:
        return []
    return [stage]
