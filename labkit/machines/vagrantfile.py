"""Templates: the lab's Vagrantfile (and, later, config files). StrictUndefined, Ruby quoting, no HTML escaping."""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from labkit import __version__, paths
from labkit.model import sandbox
from labkit.model.scenario import MANAGEMENT_POOL, Scenario

DEFAULT_LIBVIRT_URI = "qemu:///system"
DEFAULT_STORAGE_POOL = "default"


def ruby_string(value: object) -> str:
    """A Ruby single-quoted literal: only backslash and quote need escaping, and nothing is interpolated."""
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def make_environment(search_path: Path) -> jinja2.Environment:
    env = sandbox.environment(search_path, trim_blocks=False)
    env.filters["ruby"] = ruby_string
    return env


@dataclass(frozen=True)
class LibvirtNetwork:
    name: str
    cidr: str


def domain_prefix(lab: str) -> str:
    """Domains are ``labkit-<lab>-<node>``: deterministic, so a lab can be found again from libvirt alone."""
    return f"labkit-{lab}-"


def lab_network(lab: str) -> LibvirtNetwork:
    return LibvirtNetwork(f"labkit-{lab}-lab", "")


def default_management_network(lab: str, taken: Collection[str] = ()) -> LibvirtNetwork:
    """A /24 of 172.29.0.0/16 picked from the lab name; ``taken`` CIDRs are skipped (other labs on this host)."""
    subnets = list(MANAGEMENT_POOL.subnets(new_prefix=24))
    start = int(hashlib.sha256(lab.encode()).hexdigest(), 16) % len(subnets)
    for offset in range(len(subnets)):
        cidr = str(subnets[(start + offset) % len(subnets)])
        if cidr not in taken:
            return LibvirtNetwork(f"labkit-{lab}-mgmt", cidr)
    raise RuntimeError("no free management network left in 172.29.0.0/16")


@dataclass(frozen=True)
class RenderOptions:
    lab: str
    accel: str = "qemu"
    management_network: LibvirtNetwork | None = None
    ssh_private_keys: tuple[str, ...] = ()
    libvirt_uri: str = DEFAULT_LIBVIRT_URI
    storage_pool: str = DEFAULT_STORAGE_POOL
    box_versions: dict[str, str] | None = None
    ssh_proxy_command: str | None = None
    """On a remote host: how vagrant's SSH reaches the VMs (their networks live there)."""


def vagrantfile_context(scenario: Scenario, options: RenderOptions) -> dict[str, Any]:
    if options.accel not in ("kvm", "qemu"):
        raise ValueError(f"accel must be kvm or qemu, not {options.accel!r}")
    versions = options.box_versions or {}
    return {
        "labkit_version": __version__,
        "scenario": scenario.name,
        "scenario_path": str(scenario.source or ""),
        "lab": options.lab,
        "accel": options.accel,
        "libvirt_uri": options.libvirt_uri,
        "ssh_proxy_command": options.ssh_proxy_command,
        "storage_pool": options.storage_pool,
        "domain_prefix": domain_prefix(options.lab),
        "management_network": options.management_network or default_management_network(options.lab),
        "lab_network": lab_network(options.lab),
        "ssh_private_keys": list(options.ssh_private_keys),
        "nodes": [
            {
                "name": node.name,
                "roles": node.roles,
                "ip": node.ip,
                "cpus": node.cpus,
                "memory_mib": node.memory_mib,
                "box": scenario.box_of(node),
                "box_version": versions.get(scenario.box_of(node)),
            }
            for node in scenario.nodes
        ],
    }


def render_vagrantfile(scenario: Scenario, options: RenderOptions) -> str:
    template_path = paths.vagrantfile_template()
    env = make_environment(template_path.parent)
    return env.get_template(template_path.name).render(vagrantfile_context(scenario, options))


def write_vagrantfile(scenario: Scenario, options: RenderOptions, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "Vagrantfile"
    text = render_vagrantfile(scenario, options)
    if not target.exists() or target.read_text() != text:
        tmp = target.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(target)
    return target
