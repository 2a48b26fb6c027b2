"""``labkit scenarios|validate|render|guide``: what the scenarios are, whether one is valid, its Vagrantfile
and its stages' guides. None of them boots or changes a VM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from labkit.cli.application import JsonOpt, LabOpt, ScenarioArg, _print_json, out
from labkit.errors import ScenarioError, UsageError
from labkit.kinds.compile import load_scenario
from labkit.machines.vagrant_keys import insecure_private_key
from labkit.machines.vagrantfile import RenderOptions, default_management_network, write_vagrantfile
from labkit.model.loading import available_scenarios
from labkit.model.scenario import Scenario


def scenarios_cmd(as_json: JsonOpt = False) -> None:
    """List the scenarios labkit knows: name, description, nodes and stages."""
    rows: list[dict[str, Any]] = []
    for name, path in available_scenarios().items():
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            rows.append({"name": name, "path": str(path), "error": f"{len(exc.problems)} problem(s)"})
            continue
        rows.append(
            {
                "name": name,
                "path": str(path),
                "description": scenario.description,
                "nodes": [n.name for n in scenario.nodes],
                "stages": [s.name for s in scenario.stages],
            }
        )
    if as_json:
        _print_json(rows)
        return
    table = Table("scenario", "nodes", "stages", "description")
    for row in rows:
        if "error" in row:
            table.add_row(row["name"], "-", "-", f"invalid: {row['error']} (labkit validate {row['name']})")
        else:
            table.add_row(row["name"], str(len(row["nodes"])), str(len(row["stages"])), row["description"])
    out.print(table)


def validate_cmd(scenario: ScenarioArg, as_json: JsonOpt = False) -> None:
    """Check a scenario file completely (schema, addresses, networks, references) without touching any VM."""
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        if as_json:
            _print_json({"valid": False, "problems": [p.__dict__ for p in exc.problems]})
            raise SystemExit(exc.exit_code) from None
        raise
    if as_json:
        _print_json({"valid": True, "scenario": loaded.name, "path": str(loaded.source)})
        return
    out.print(
        f"{loaded.name}: valid ({len(loaded.nodes)} nodes, {len(loaded.stages)} stages) - {loaded.source}"
    )


def render_cmd(
    scenario: ScenarioArg,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the Vagrantfile into")],
    lab: LabOpt = None,
    accel: Annotated[str, typer.Option(help="libvirt driver for the domains: kvm or qemu")] = "qemu",
) -> None:
    """Render the scenario's multi-VM Vagrantfile into a directory (for reading or `vagrant validate`)."""
    loaded: Scenario = load_scenario(scenario)
    lab_name = lab or loaded.name
    if accel not in ("kvm", "qemu"):
        raise typer.BadParameter("must be kvm or qemu", param_hint="--accel")
    key = insecure_private_key()
    target = write_vagrantfile(
        loaded,
        RenderOptions(
            lab=lab_name,
            accel=accel,
            management_network=default_management_network(lab_name),
            ssh_private_keys=(str(key),) if key else (),
        ),
        out_dir,
    )
    out.print(f"wrote {target} ({len(loaded.nodes)} machines, lab {lab_name})")


def guide_cmd(
    stage: Annotated[str, typer.Argument(help="Stage whose guide to print (see `labkit scenarios`)")],
    lang: Annotated[str | None, typer.Option(help="ja or en (default: from the locale)")] = None,
    lab: LabOpt = None,
    scenario: Annotated[
        str | None, typer.Option(help="Scenario to read when no lab exists (default: the lab's)")
    ] = None,
    checklist_only: Annotated[bool, typer.Option("--checklist", help="Print only the checklist")] = False,
) -> None:
    """Print a stage's instructions with this lab's real values filled in, and its comprehension checklist."""
    from labkit.kinds.guides import checklist, default_language, render_guide
    from labkit.lab import Lab, known_labs

    language = lang or default_language()
    if scenario is not None:
        loaded, state = load_scenario(scenario), None
    elif lab is not None or known_labs():
        the_lab = Lab.load(lab)
        loaded, state = the_lab.scenario, the_lab.state
    else:
        raise UsageError("no lab on this host to take values from", "give --scenario NAME (e.g. three-node)")
    if checklist_only:
        for item in checklist(loaded, stage, language, state):
            out.print(f"- [ ] {item}", markup=False)
        return
    out.print(render_guide(loaded, stage, language, state), markup=False)
