"""One lab's lifecycle: up, solve, check, snapshot, reset, retry, destroy. :class:`Lab` is the orchestrator
every command and script goes through (see :mod:`labkit.lab.lifecycle`)."""

from __future__ import annotations

from labkit.lab.lifecycle import Lab, destroy_by_name
from labkit.lab.names import check_lab_name, known_labs
from labkit.lab.reports import LabStatus, NodeStatus, ResetReport, UpReport, Verification

__all__ = [
    "Lab",
    "LabStatus",
    "NodeStatus",
    "ResetReport",
    "UpReport",
    "Verification",
    "check_lab_name",
    "destroy_by_name",
    "known_labs",
]
