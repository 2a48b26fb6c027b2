"""Turn pydantic errors into readable problems, and check what one field alone cannot tell.

Cross-field rules run on the raw YAML data, defensively, so they are reported together with type errors
elsewhere in the file: a bad ``cpus`` never hides a duplicate IP.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from labkit.errors import Problem
from labkit.model.endpoints import EndpointError, resolve_etcd_endpoint
from labkit.model.sandbox import confined
from labkit.model.scenario import KNOWN_ROLES, MANAGEMENT_POOL, SELECT_ALL
from labkit.model.version_guard import version_refusals
from labkit.model.yamlpos import Loc, format_loc, line_for

_GENERIC_FIXES: dict[str, tuple[str, str]] = {
    "missing": ("is required", "add it"),
    "extra_forbidden": ("is not a known field", "remove it or correct its spelling"),
    "int_type": ("must be a whole number", "write a number without quotes"),
    "int_parsing": ("must be a whole number", "write a number without quotes"),
    "string_type": ("must be a string", "quote the value"),
    "list_type": ("must be a list", "write it as a YAML list ([a, b] or '- a' lines)"),
    "dict_type": ("must be a mapping", "write it as `key: value` lines"),
    "model_type": ("must be a mapping", "write it as `key: value` lines"),
    "too_short": ("must not be empty", "give at least one entry"),
    "bool_type": ("must be true or false", "write true or false"),
}


def pydantic_problems(exc: ValidationError, file: str, lines: dict[Loc, int]) -> Iterator[Problem]:
    for err in exc.errors():
        loc: Loc = tuple(err["loc"])
        field = format_loc(loc)
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind == "labkit":
            message, fix = err["msg"], str(ctx.get("fix", ""))
        elif kind == "literal_error":
            message = f"{err['input']!r} is not allowed"
            fix = f"use one of {ctx.get('expected', '')}"
        elif kind in ("greater_than_equal", "less_than_equal"):
            message = f"{err['input']!r} is out of range"
            fix = err["msg"].lower()
        elif kind in _GENERIC_FIXES:
            message, fix = _GENERIC_FIXES[kind]
            if kind == "extra_forbidden":
                message = f"{loc[-1]!r} {message}"
        else:
            message, fix = err["msg"], "see the scenario format in README.md"
        yield Problem(file, line_for(lines, loc), field, message, fix)


def _net(value: Any) -> ipaddress.IPv4Network | None:
    try:
        net = ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        return None
    return net if isinstance(net, ipaddress.IPv4Network) else None


def _addr(value: Any) -> ipaddress.IPv4Address | None:
    try:
        addr = ipaddress.ip_address(str(value))
    except ValueError:
        return None
    return addr if isinstance(addr, ipaddress.IPv4Address) else None


def _items(data: dict[str, Any], key: str) -> list[tuple[int, dict[str, Any]]]:
    value = data.get(key)
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]


def semantic_problems(data: dict[str, Any], base: Path, file: str, lines: dict[Loc, int]) -> list[Problem]:
    """Rules across fields: duplicates, addresses vs networks, overlaps, references, guide files."""
    problems: list[Problem] = []

    def problem(loc: Loc, message: str, fix: str) -> None:
        problems.append(Problem(file, line_for(lines, loc), format_loc(loc), message, fix))

    nodes = _items(data, "nodes")
    network = data.get("network") if isinstance(data.get("network"), dict) else {}
    assert isinstance(network, dict)
    lab = _net(network.get("lab"))
    pods = _net(network.get("pods"))
    services = _net(network.get("services"))

    names: dict[str, int] = {}
    ips: dict[ipaddress.IPv4Address, int] = {}
    for i, node in nodes:
        name = node.get("name")
        if isinstance(name, str):
            if name in names:
                problem(
                    ("nodes", i, "name"),
                    f"node name {name!r} is already used by nodes[{names[name]}]",
                    "give every node its own name",
                )
            else:
                names[name] = i
            if name in KNOWN_ROLES or name == SELECT_ALL:
                problem(
                    ("nodes", i, "name"),
                    f"node name {name!r} is also a role name",
                    "rename the node so `on:` selectors stay unambiguous",
                )
        addr = _addr(node.get("ip"))
        if addr is None:
            continue
        if addr in ips:
            problem(
                ("nodes", i, "ip"),
                f"IP {addr} is already used by nodes[{ips[addr]}]",
                "give every node its own IP",
            )
        else:
            ips[addr] = i
        if lab is not None:
            if addr not in lab:
                problem(
                    ("nodes", i, "ip"),
                    f"IP {addr} is outside the lab network {lab}",
                    f"pick an address inside {lab} or widen network.lab",
                )
            elif addr in (lab.network_address, lab.broadcast_address):
                problem(
                    ("nodes", i, "ip"),
                    f"IP {addr} is the network or broadcast address of {lab}",
                    "pick a host address",
                )

    ranges = [("lab", lab), ("pods", pods), ("services", services)]
    for a_index, (a_name, a_net) in enumerate(ranges):
        if a_net is None:
            continue
        for b_name, b_net in ranges[a_index + 1 :]:
            if b_net is not None and a_net.overlaps(b_net):
                problem(
                    ("network", b_name),
                    f"network.{b_name} {b_net} overlaps network.{a_name} {a_net}",
                    "choose ranges that do not overlap",
                )
        if a_net.overlaps(MANAGEMENT_POOL):
            problem(
                ("network", a_name),
                f"network.{a_name} {a_net} overlaps {MANAGEMENT_POOL}, labkit's management networks",
                "choose another range",
            )

    dns = _addr(network.get("cluster_dns"))
    if dns is not None and services is not None and dns not in services:
        problem(
            ("network", "cluster_dns"),
            f"cluster_dns {dns} is outside network.services {services}",
            f"pick an address inside {services}",
        )

    endpoint = network.get("etcd_endpoint")
    if isinstance(endpoint, str) and names:
        node_ips = {n["name"]: str(n.get("ip")) for _, n in nodes if isinstance(n.get("name"), str)}
        etcd_nodes = [n["name"] for _, n in nodes if "etcd" in (n.get("roles") or []) and n.get("name")]
        try:
            resolve_etcd_endpoint(endpoint, node_ips, etcd_nodes[0] if etcd_nodes else next(iter(names)))
        except EndpointError as exc:
            problem(("network", "etcd_endpoint"), exc.message, exc.hint or "")

    versions = data.get("versions")
    if isinstance(versions, dict):
        for refusal in version_refusals(versions):
            problem(("versions", refusal.field), refusal.message, refusal.fix)

    roles_defined = {r for _, n in nodes for r in (n.get("roles") or []) if isinstance(r, str)}
    stage_names: dict[str, int] = {}
    unknown_targets: dict[str, list[tuple[Loc, str]]] = {}
    for s, stage in _items(data, "stages"):
        name = stage.get("name")
        if isinstance(name, str):
            if name in stage_names:
                problem(
                    ("stages", s, "name"),
                    f"stage name {name!r} is already used by stages[{stage_names[name]}]",
                    "give every stage its own name",
                )
            else:
                stage_names[name] = s
        requires = stage.get("requires") or []
        for r, required in enumerate(requires if isinstance(requires, list) else []):
            if required not in stage_names:
                later = any(st.get("name") == required for _, st in _items(data, "stages"))
                problem(
                    ("stages", s, "requires", r),
                    f"stage {required!r} is {'defined only after this one' if later else 'not defined'}",
                    "require only stages listed before this one",
                )
        for kind in ("steps", "checks"):
            for a, action in _items(stage, kind):
                args = action.get("args")
                template = args.get("template") if isinstance(args, dict) else None
                if isinstance(template, str) and "{" not in template:
                    template_loc: Loc = ("stages", s, kind, a, "args", "template")
                    if confined(base, template) is None:
                        problem(
                            template_loc,
                            f"template {template!r} lies outside the scenario directory",
                            "keep templates inside the scenario's directory, as real files (not symlinks out)",
                        )
                    elif not (base / template).is_file():
                        problem(
                            template_loc,
                            f"template file {template!r} does not exist",
                            f"create {base / template}",
                        )
                on = action.get("on", [SELECT_ALL])
                for o, target in enumerate(on if isinstance(on, list) else []):
                    if target != SELECT_ALL and target not in names and target not in roles_defined:
                        unknown_targets.setdefault(str(target), []).append(
                            (("stages", s, kind, a, "on", o), str(stage.get("name", f"stages[{s}]")))
                        )
        guide = stage.get("guide")
        if isinstance(guide, dict):
            for lang, rel in guide.items():
                if not isinstance(rel, str):
                    continue
                if confined(base, rel) is None:
                    problem(
                        ("stages", s, "guide", lang),
                        f"guide file {rel!r} lies outside the scenario directory",
                        "keep guides inside the scenario's directory (e.g. guides/en/NN-stage.md)",
                    )
                elif not (base / rel).is_file():
                    problem(
                        ("stages", s, "guide", lang),
                        f"guide file {rel!r} does not exist",
                        f"create {base / rel} or correct the path",
                    )
    for target, uses in unknown_targets.items():
        first, _ = uses[0]
        what = (
            f"no node has role {target!r}"
            if target in KNOWN_ROLES
            else f"{target!r} is neither a node nor a role of this scenario"
        )
        fix = (
            "give a node that role or target another node or role"
            if target in KNOWN_ROLES
            else f"use a node ({', '.join(names) or 'none'}), a role or 'all'"
        )
        if len(uses) > 1:
            stages = list(dict.fromkeys(stage for _, stage in uses))
            what = (
                f"{target!r} is targeted by {len(uses)} steps and checks (stage{'s' if len(stages) > 1 else ''} "
                f"{', '.join(stages)}) but {'no node has that role' if target in KNOWN_ROLES else 'it is neither a node nor a role of this scenario'}"
            )
        problem(first, what, fix)
    return problems
