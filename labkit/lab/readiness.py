"""What the host must have before a lab boots or a stage is solved: free RAM for the VMs, the boxes, and every
artifact and image the stages' steps will upload. Each refuses up front, naming everything missing at once."""

from __future__ import annotations

import os
from pathlib import Path

from labkit import paths
from labkit.artifacts import Artifact, MissingArtifactsError, load_catalog
from labkit.errors import HostError
from labkit.hostsetup import box
from labkit.hostsetup.accel import AccelChoice
from labkit.hostsetup.doctor import mem_available_mib
from labkit.kinds.compile import build_for_nodes
from labkit.kinds.guides import guide_context
from labkit.kinds.steps.base import StepContext
from labkit.kinds.templating import node_variables
from labkit.model.image_refs import Image
from labkit.model.scenario import Scenario
from labkit.progress import Reporter
from labkit.state import LabState

# Host RAM one VM really costs, beyond its configured memory being mostly untouched at first:
# emulated (TCG) ~1.45 GB each, 1 GiB of it QEMU's translation cache (vm-lab.md).
RAM_PER_VM_MIB = {"qemu": 1500, "kvm": 1100}


def refuse_missing_artifacts(scenario: Scenario, state: LabState | None, stages: list[str]) -> None:
    """What solving ``stages`` needs from the host (cached artifacts and images, templates that render),
    checked before any VM is booted: ``up --until`` refuses up front, naming every missing artifact and image."""
    context = guide_context(scenario, state)
    catalog = load_catalog(os.environ.get("LABKIT_CATALOG") or None)
    missing: list[Artifact] = []
    missing_images: list[Image] = []
    for name in stages:
        stage = scenario.stage(name)
        for step in stage.steps:
            nodes = [n.name for n in scenario.select(step.on)]
            for node, kind in zip(nodes, build_for_nodes(scenario, stage, step, context), strict=True):
                variables = {**context, "node": node_variables(scenario, node, context)}
                try:
                    kind.preflight(StepContext(node, variables, scenario.directory, catalog))
                except MissingArtifactsError as exc:
                    missing += [a for a in exc.artifacts if a not in missing]
                    missing_images += [i for i in exc.images if i not in missing_images]
    if missing or missing_images:
        raise MissingArtifactsError(missing, scenario.name, images=missing_images)


def refuse_short_memory(
    scenario: Scenario,
    accel: AccelChoice,
    running: set[str],
    available_mib: int | None = None,
    where: str = "",
) -> None:
    """Enough free host RAM for the VMs not running yet, or a HostError saying how much is missing.
    ``available_mib``: a remote host's free RAM (``where`` names it); default: this machine's."""
    to_boot = [n for n in scenario.nodes if n.name not in running]
    if not to_boot:
        return
    need = sum(min(RAM_PER_VM_MIB[accel.driver], n.memory_mib + 600) for n in to_boot)
    available = available_mib
    if available is None:
        available = mem_available_mib(Path("/proc/meminfo").read_text())
    if available is not None and available < need:
        raise HostError(
            f"not enough free RAM{where} for {len(to_boot)} VMs: {available} MiB available, ~{need} MiB needed",
            "stop other labs (`labkit destroy LAB`) or lower the nodes' memory in the scenario",
        )


def ensure_boxes(scenario: Scenario, reporter: Reporter) -> None:
    """Every box the nodes use: labkit's own built (or rebuilt when its definition changed), others installed."""
    for name in sorted({scenario.box_of(n) for n in scenario.nodes}):
        if name.startswith("labkit/"):
            definition = name.removeprefix("labkit/")
            if not box.box_is_current(definition):
                reporter.note(f"box {name} is missing or outdated: building it from {paths.boxes_dir()}")
                box.ensure_box(definition)
        elif name not in {b.name for b in box.list_boxes()}:
            raise HostError(
                f"box {name} is not installed in labkit's VAGRANT_HOME ({paths.vagrant_home()})",
                f"VAGRANT_HOME={paths.vagrant_home()} vagrant box add {name} FILE.box",
            )
