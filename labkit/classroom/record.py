"""A class's record (``$LABKIT_HOME/classes/CLASS.json``): its scenario, stage, trainees and the grid of the
last class-wide checks. Labs keep their own state; the record only says which labs make the class."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labkit import paths
from labkit.state import write_json

VERIFIED = "verified"
FAILING = "failing"
UNREACHABLE = "unreachable"
NOT_TRIED = "not tried"


@dataclass
class Cell:
    """One trainee's stage on the grid."""

    status: str = NOT_TRIED
    detail: str = ""
    """For a failing stage, the first failing check: ``check on node: what it saw``."""
    checked_at: str = ""


@dataclass
class ClassRecord:
    name: str
    scenario: str
    scenario_path: str
    stage: str
    golden: str
    trainees: list[str] = field(default_factory=list)
    created_at: str = ""
    ksm_turned_on: bool = False
    """labkit turned KSM on for this class (it turns it off again with the last class)."""
    grid: dict[str, dict[str, Cell]] = field(default_factory=dict)

    def cell(self, trainee: str, stage: str) -> Cell | None:
        return self.grid.get(trainee, {}).get(stage)

    def set_cell(self, trainee: str, stage: str, cell: Cell) -> None:
        self.grid.setdefault(trainee, {})[stage] = cell

    def cells(self, trainee: str, stages: list[str], verified: list[str]) -> dict[str, Cell]:
        """A trainee's row: each stage's last check, else verified when the lab's own state says so."""
        return {s: self.cell(trainee, s) or Cell(VERIFIED if s in verified else NOT_TRIED) for s in stages}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClassRecord:
        data = dict(data)
        grid = {t: {s: Cell(**c) for s, c in cells.items()} for t, cells in data.pop("grid", {}).items()}
        return cls(grid=grid, **data)


def classes_dir() -> Path:
    return paths.labkit_home() / "classes"


def record_path(name: str) -> Path:
    return classes_dir() / f"{name}.json"


def lock_path(name: str) -> Path:
    return classes_dir() / f"{name}.lock"


def read_record(name: str) -> ClassRecord | None:
    path = record_path(name)
    try:
        return ClassRecord.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def write_record(record: ClassRecord) -> None:
    write_json(record_path(record.name), record.to_json())


def known_classes() -> list[str]:
    root = classes_dir()
    return sorted(p.stem for p in root.glob("*.json")) if root.is_dir() else []


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
