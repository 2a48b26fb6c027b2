"""labkit: Kubernetes training labs on real virtual machines.

The library is the product; the ``labkit`` CLI only parses arguments and prints.
Start with :func:`labkit.model.scenario.load_scenario` and :class:`labkit.lab.Lab`.
"""

from __future__ import annotations

__version__ = "0.1.0"
