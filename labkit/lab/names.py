"""Lab names: which labs this host has, and what a lab's name may be."""

from __future__ import annotations

from labkit import paths
from labkit.errors import UsageError
from labkit.model.scenario import SLUG_RE


def known_labs() -> list[str]:
    """Labs with a directory on this host (sorted)."""
    root = paths.labs_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "state.json").is_file())


def check_lab_name(name: str) -> str:
    if not SLUG_RE.match(name):
        raise UsageError(f"{name!r} is not a valid lab name", "use lowercase letters, digits and '-'")
    return name
