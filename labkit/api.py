"""labkit's public Python API: what the CLI uses, for scripts and pytest fixtures.

>>> from labkit.api import Lab, load_scenario
>>> lab = Lab.create("three-node", name="alice")   # doctest: +SKIP
>>> lab.up(); lab.solve("etcd"); lab.verify("etcd")  # doctest: +SKIP
"""

from __future__ import annotations

from labkit.errors import LabError, LabkitError, ScenarioError, UsageError
from labkit.kinds.compile import load_scenario
from labkit.lab import Lab
from labkit.model.loading import available_scenarios
from labkit.model.scenario import Scenario

__all__ = [
    "Lab",
    "LabError",
    "LabkitError",
    "Scenario",
    "ScenarioError",
    "UsageError",
    "available_scenarios",
    "load_scenario",
]
