"""Who is in a class: ``--trainees N`` (trainee1..N) or a roster file, one name per line (``#`` comments)."""

from __future__ import annotations

from pathlib import Path

from labkit.errors import UsageError
from labkit.lab import check_lab_name
from labkit.model.scenario import SLUG_RE

GOLDEN = "golden"
"""The golden lab's suffix (``CLASS-golden``): never a trainee's name."""


def numbered(count: int) -> list[str]:
    if count < 1:
        raise UsageError(
            f"--trainees {count}: a class needs at least one trainee", "give --trainees 1 or more"
        )
    return [f"trainee{k}" for k in range(1, count + 1)]


def read_roster(path: Path) -> list[str]:
    """Trainee names from a roster file; a bad name is refused with its line and the fix."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the roster ({exc.strerror})", "give a readable file") from None
    names: list[str] = []
    for number, line in enumerate(lines, 1):
        name = line.split("#", 1)[0].strip()
        if not name:
            continue
        if not SLUG_RE.match(name) or name == GOLDEN:
            raise UsageError(
                f"{path}:{number}: {name!r} is not a trainee name",
                "use lowercase letters, digits and '-' (not 'golden'), one name per line",
            )
        if name in names:
            raise UsageError(f"{path}:{number}: {name!r} is listed twice", "list every trainee once")
        names.append(name)
    if not names:
        raise UsageError(f"{path}: the roster names no trainee", "write one name per line")
    return names


def trainee_lab(class_name: str, trainee: str) -> str:
    return f"{class_name}-{trainee}"


def golden_lab(class_name: str) -> str:
    return f"{class_name}-{GOLDEN}"


def check_names(class_name: str, trainees: list[str]) -> None:
    """Every lab name the class will use is a valid lab name (refused before anything is made)."""
    check_lab_name(class_name)
    for name in [golden_lab(class_name), *(trainee_lab(class_name, t) for t in trainees)]:
        if len(name) > 42:
            raise UsageError(
                f"lab name {name!r} is longer than 42 characters", "use a shorter class or trainee name"
            )
        check_lab_name(name)
