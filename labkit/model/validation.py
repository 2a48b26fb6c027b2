"""Turn pydantic errors into readable problems, and check what one field alone cannot tell.

Cross-field rules run on the raw YAML data, defensively, so they are reported together with type errors
elsewhere in the file: a bad ``cpus`` never hides a duplicate IP.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from labkit.errors import Problem
from labkit.model.endpoints import EndpointError, resolve_etcd_endpoint
from labkit.model.sandbox import confined, confined_template
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


class _Finding(NamedTuple):
    """A problem before it is given its file and line: where in the document, what is wrong, the fix."""

    loc: Loc
    message: str
    fix: str


def semantic_problems(data: dict[str, Any], base: Path, file: str, lines: dict[Loc, int]) -> list[Problem]:
    """Rules across fields: duplicates, addresses vs networks, overlaps, references, guide files."""
    network = data.get("network")
    if not isinstance(network, dict):
        network = {}
    lab, pods, services = (_net(network.get(key)) for key in ("lab", "pods", "services"))
    nodes = _items(data, "nodes")
    node_names = _first_index_by_name(nodes)
    findings = itertools.chain(
        _node_problems(nodes, node_names, lab),
        _network_overlap_problems([("lab", lab), ("pods", pods), ("services", services)]),
        _cluster_dns_problems(network.get("cluster_dns"), services),
        _etcd_endpoint_problems(network.get("etcd_endpoint"), nodes, node_names),
        _version_problems(data.get("versions")),
        _stage_problems(_items(data, "stages"), base, nodes, node_names),
    )
    return [
        Problem(file, line_for(lines, loc), format_loc(loc), message, fix) for loc, message, fix in findings
    ]


def _first_index_by_name(items: list[tuple[int, dict[str, Any]]]) -> dict[str, int]:
    """Each string ``name`` among the items, with the index of the first item that has it, in document order."""
    first: dict[str, int] = {}
    for index, item in items:
        name = item.get("name")
        if isinstance(name, str):
            first.setdefault(name, index)
    return first


def _node_problems(
    nodes: list[tuple[int, dict[str, Any]]], node_names: dict[str, int], lab: ipaddress.IPv4Network | None
) -> Iterator[_Finding]:
    first_by_ip: dict[ipaddress.IPv4Address, int] = {}
    for i, node in nodes:
        yield from _node_name_problems(i, node.get("name"), node_names)
        addr = _addr(node.get("ip"))
        if addr is not None:
            yield from _node_ip_problems(i, addr, first_by_ip.setdefault(addr, i), lab)


def _node_name_problems(i: int, name: Any, node_names: dict[str, int]) -> Iterator[_Finding]:
    if not isinstance(name, str):
        return
    if node_names[name] != i:
        yield _Finding(
            ("nodes", i, "name"),
            f"node name {name!r} is already used by nodes[{node_names[name]}]",
            "give every node its own name",
        )
    if name in KNOWN_ROLES or name == SELECT_ALL:
        yield _Finding(
            ("nodes", i, "name"),
            f"node name {name!r} is also a role name",
            "rename the node so `on:` selectors stay unambiguous",
        )


def _node_ip_problems(
    i: int, addr: ipaddress.IPv4Address, first_with_ip: int, lab: ipaddress.IPv4Network | None
) -> Iterator[_Finding]:
    loc: Loc = ("nodes", i, "ip")
    if first_with_ip != i:
        yield _Finding(
            loc, f"IP {addr} is already used by nodes[{first_with_ip}]", "give every node its own IP"
        )
    if lab is None:
        return
    if addr not in lab:
        yield _Finding(
            loc,
            f"IP {addr} is outside the lab network {lab}",
            f"pick an address inside {lab} or widen network.lab",
        )
    elif addr in (lab.network_address, lab.broadcast_address):
        yield _Finding(loc, f"IP {addr} is the network or broadcast address of {lab}", "pick a host address")


def _network_overlap_problems(
    ranges: list[tuple[str, ipaddress.IPv4Network | None]],
) -> Iterator[_Finding]:
    """Each range against the ranges after it, then against labkit's management pool."""
    for a_index, (a_name, a_net) in enumerate(ranges):
        if a_net is None:
            continue
        for b_name, b_net in ranges[a_index + 1 :]:
            if b_net is not None and a_net.overlaps(b_net):
                yield _Finding(
                    ("network", b_name),
                    f"network.{b_name} {b_net} overlaps network.{a_name} {a_net}",
                    "choose ranges that do not overlap",
                )
        if a_net.overlaps(MANAGEMENT_POOL):
            yield _Finding(
                ("network", a_name),
                f"network.{a_name} {a_net} overlaps {MANAGEMENT_POOL}, labkit's management networks",
                "choose another range",
            )


def _cluster_dns_problems(cluster_dns: Any, services: ipaddress.IPv4Network | None) -> Iterator[_Finding]:
    dns = _addr(cluster_dns)
    if dns is not None and services is not None and dns not in services:
        yield _Finding(
            ("network", "cluster_dns"),
            f"cluster_dns {dns} is outside network.services {services}",
            f"pick an address inside {services}",
        )


def _etcd_endpoint_problems(
    endpoint: Any, nodes: list[tuple[int, dict[str, Any]]], node_names: dict[str, int]
) -> Iterator[_Finding]:
    if not isinstance(endpoint, str) or not node_names:
        return
    node_ips = {n["name"]: str(n.get("ip")) for _, n in nodes if isinstance(n.get("name"), str)}
    etcd_nodes = [n["name"] for _, n in nodes if "etcd" in _strings(n.get("roles")) and n.get("name")]
    try:
        resolve_etcd_endpoint(endpoint, node_ips, etcd_nodes[0] if etcd_nodes else next(iter(node_names)))
    except EndpointError as exc:
        yield _Finding(("network", "etcd_endpoint"), exc.message, exc.hint or "")


def _version_problems(versions: Any) -> Iterator[_Finding]:
    if isinstance(versions, dict):
        for refusal in version_refusals(versions):
            yield _Finding(("versions", refusal.field), refusal.message, refusal.fix)


def _stage_problems(
    stages: list[tuple[int, dict[str, Any]]],
    base: Path,
    nodes: list[tuple[int, dict[str, Any]]],
    node_names: dict[str, int],
) -> Iterator[_Finding]:
    """Per stage its name, requires, templates and guides; then the `on:` targets no node answers to."""
    stage_names = _first_index_by_name(stages)
    roles_defined = {r for _, n in nodes for r in _strings(n.get("roles"))}
    for s, stage in stages:
        yield from _stage_name_problems(s, stage.get("name"), stage_names)
        yield from _requires_problems(s, stage.get("requires"), stage_names, stages)
        yield from _template_problems(s, stage, base)
        yield from _guide_problems(s, stage.get("guide"), base)
    for target, uses in _unknown_targets(stages, node_names, roles_defined).items():
        yield _unknown_target_problem(target, uses, node_names)


def _stage_name_problems(s: int, name: Any, stage_names: dict[str, int]) -> Iterator[_Finding]:
    if isinstance(name, str) and stage_names[name] != s:
        yield _Finding(
            ("stages", s, "name"),
            f"stage name {name!r} is already used by stages[{stage_names[name]}]",
            "give every stage its own name",
        )


def _requires_problems(
    s: int, requires: Any, stage_names: dict[str, int], stages: list[tuple[int, dict[str, Any]]]
) -> Iterator[_Finding]:
    listed_so_far = {name for name, first in stage_names.items() if first <= s}
    for r, required in enumerate(requires if isinstance(requires, list) else []):
        if isinstance(required, str) and required not in listed_so_far:
            later = any(st.get("name") == required for _, st in stages)
            yield _Finding(
                ("stages", s, "requires", r),
                f"stage {required!r} is {'defined only after this one' if later else 'not defined'}",
                "require only stages listed before this one",
            )


def _actions(stage: dict[str, Any]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """The stage's steps, then its checks: ``(kind, index, action)``."""
    for kind in ("steps", "checks"):
        for a, action in _items(stage, kind):
            yield kind, a, action


def _template_problems(s: int, stage: dict[str, Any], base: Path) -> Iterator[_Finding]:
    for kind, a, action in _actions(stage):
        args = action.get("args")
        template = args.get("template") if isinstance(args, dict) else None
        # a path with Jinja markup is only known once rendered
        if not isinstance(template, str) or "{" in template:
            continue
        loc: Loc = ("stages", s, kind, a, "args", "template")
        if confined_template(base, template) is None:
            yield _Finding(
                loc,
                f"template {template!r} lies outside the scenario directory",
                "keep templates inside the scenario's directory, as real files (not symlinks out)",
            )
        elif not (base / template).is_file():
            yield _Finding(loc, f"template file {template!r} does not exist", f"create {base / template}")


def _guide_problems(s: int, guide: Any, base: Path) -> Iterator[_Finding]:
    if not isinstance(guide, dict):
        return
    for lang, rel in guide.items():
        if not isinstance(rel, str):
            continue
        if confined(base, rel) is None:
            yield _Finding(
                ("stages", s, "guide", lang),
                f"guide file {rel!r} lies outside the scenario directory",
                "keep guides inside the scenario's directory (e.g. guides/en/NN-stage.md)",
            )
        elif not (base / rel).is_file():
            yield _Finding(
                ("stages", s, "guide", lang),
                f"guide file {rel!r} does not exist",
                f"create {base / rel} or correct the path",
            )


def _strings(value: Any) -> list[str]:
    """The strings of a YAML list; anything else (a wrong type the model reports) as no strings."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _unknown_targets(
    stages: list[tuple[int, dict[str, Any]]], node_names: dict[str, int], roles_defined: set[str]
) -> dict[str, list[tuple[Loc, str]]]:
    """Each `on:` target that is neither 'all', a node nor a role some node has: where it is used, by which stage."""
    unknown: dict[str, list[tuple[Loc, str]]] = {}
    for s, stage in stages:
        for kind, a, action in _actions(stage):
            on = action.get("on", [SELECT_ALL])
            for o, target in enumerate(on if isinstance(on, list) else []):
                if (
                    isinstance(target, str)
                    and target != SELECT_ALL
                    and target not in node_names
                    and target not in roles_defined
                ):
                    unknown.setdefault(str(target), []).append(
                        (("stages", s, kind, a, "on", o), str(stage.get("name", f"stages[{s}]")))
                    )
    return unknown


def _unknown_target_problem(target: str, uses: list[tuple[Loc, str]], node_names: dict[str, int]) -> _Finding:
    """One problem per target, at its first use; a target used more than once names the stages using it."""
    first, _ = uses[0]
    is_role = target in KNOWN_ROLES
    fix = (
        "give a node that role or target another node or role"
        if is_role
        else f"use a node ({', '.join(node_names) or 'none'}), a role or 'all'"
    )
    if len(uses) == 1:
        what = (
            f"no node has role {target!r}"
            if is_role
            else f"{target!r} is neither a node nor a role of this scenario"
        )
        return _Finding(first, what, fix)
    stages = list(dict.fromkeys(stage for _, stage in uses))
    why = "no node has that role" if is_role else "it is neither a node nor a role of this scenario"
    return _Finding(
        first,
        f"{target!r} is targeted by {len(uses)} steps and checks "
        f"(stage{'s' if len(stages) > 1 else ''} {', '.join(stages)}) but {why}",
        fix,
    )
