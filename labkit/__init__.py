"""labkit: Kubernetes training labs on real virtual machines.

The library is the product; the ``labkit`` CLI only parses arguments and prints. The public API is
:mod:`labkit.api` (``from labkit.api import Lab, load_scenario``). The packages are layers, each importing
only the ones below it (import-linter contracts in ``pyproject.toml`` keep it so)::

    cli            the face: one module per command group; parse, call, print
    web            the class web page: the trainer's grid, a page per trainee (the only package with HTTP)
    classroom      a class: the golden lab, a clone per trainee, the grid, tokens, trainee self-service
    lab            one lab's lifecycle (up, solve, check, snapshot, reset, retry, destroy): the orchestrator
    hostsetup      this host: host mode (libvirtd in a netns), box build, accelerator, doctor
    machines       a libvirt host as a value, domains and networks, snapshot sets, SSH to nodes, vagrant
    kinds          step and check kinds, diagnoses, guides; compiling a scenario for its nodes
    artifacts      pinned binaries and images: catalog, fetch and verify, cache and lock, import/export
    model          the scenario as data: YAML with positions, pydantic models, validation; pure
    errors, paths, state, lock, progress   small shared values
"""

from __future__ import annotations

__version__ = "0.1.0"
