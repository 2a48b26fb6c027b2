"""The scenario format: pydantic models (``extra="forbid"``), loading with file:line errors, and lookup by name.

A scenario is a course packaged as data: ``scenarios/<name>/scenario.yaml`` plus its guides and templates.
:func:`load_scenario` returns a fully validated :class:`Scenario` or raises :class:`ScenarioError` listing
every problem of the file at once.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from labkit.errors import UsageError
from labkit.model.image_refs import ImageRefError, parse_reference

KNOWN_ROLES = ("etcd", "apiserver", "scheduler", "controller-manager", "worker")
SELECT_ALL = "all"
HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
SLUG_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")
VERSION_RE = re.compile(r"^v?\d+\.\d+\.\d+$")
MEMORY_RE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|[kmgt])?\s*$", re.IGNORECASE)
MEMORY_UNITS_MIB = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
SCENARIO_FILE = "scenario.yaml"
# labkit gives every lab its own management network (the one vagrant and SSH use) out of this pool; a
# scenario's networks must not overlap it.
MANAGEMENT_POOL = ipaddress.IPv4Network("172.29.0.0/16")


def _fail(message: str, fix: str) -> PydanticCustomError:
    return PydanticCustomError("labkit", message, {"fix": fix})


def parse_memory_mib(value: object) -> int:
    """``1536`` (MiB), ``"1536M"``, ``"1.5G"`` is refused, ``"2G"`` -> 2048. Raises ValueError when not a size."""
    if isinstance(value, bool):
        raise ValueError("not a size")
    if isinstance(value, int):
        mib = value
    else:
        match = MEMORY_RE.match(str(value))
        if not match:
            raise ValueError("not a size")
        unit = (match.group(2) or "M")[0].upper()
        mib = int(int(match.group(1)) * MEMORY_UNITS_MIB[unit])
    if mib <= 0:
        raise ValueError("not positive")
    return mib


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class Backend(Model):
    """flannel backend: udp (the course's), vxlan or host-gw."""

    type: Literal["udp", "vxlan", "host-gw"] = "vxlan"
    port: Annotated[int, Field(ge=1, le=65535)] | None = None


class Network(Model):
    lab: str = Field(description="CIDR of the lab network the nodes' fixed IPs live on")
    pods: str = Field(description="CIDR flannel hands out pod subnets from (flannel's Network)")
    pod_subnet_len: Annotated[int, Field(ge=8, le=30)] = 24
    services: str = Field(description="Kubernetes service cluster IP range")
    cluster_dns: str | None = Field(default=None, description="kube-dns service IP, inside services")
    etcd_endpoint: str | None = Field(
        default=None,
        description="etcd URL for flanneld and kube-apiserver (default: the etcd node's lab IP); a node name "
        "is written as that node's IP (labkit.model.endpoints)",
    )
    backend: Backend = Backend()

    @field_validator("lab", "pods", "services")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError:
            raise _fail(
                f"{value!r} is not a network in CIDR form",
                "write it like 192.168.56.0/24 (host bits zero)",
            ) from None
        if net.version != 4:
            raise _fail(f"{value!r} is IPv6", "use an IPv4 network; the course is IPv4 only")
        return str(net)

    @field_validator("cluster_dns")
    @classmethod
    def _dns(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_ipv4(value)
        return value

    @property
    def lab_network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.lab)

    @property
    def pod_network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.pods)

    @property
    def service_network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.services)


def _parse_ipv4(value: str) -> ipaddress.IPv4Address:
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise _fail(
            f"{value!r} is not an IP address", "write a dotted IPv4 address like 192.168.56.11"
        ) from None
    if not isinstance(addr, ipaddress.IPv4Address):
        raise _fail(f"{value!r} is IPv6", "use an IPv4 address")
    return addr


class Versions(Model):
    """The components a scenario installs; one it does not install is left out (pod-routes: CNI plugins only)."""

    kubernetes: str | None = None
    etcd: str | None = None
    flannel: str | None = None
    cni_plugins: str | None = None
    flannel_cni_plugin: str | None = Field(
        default=None, description="flannel-io/cni-plugin release, needed when cni_plugins >= 1.0"
    )

    @field_validator("kubernetes", "etcd", "flannel", "cni_plugins", "flannel_cni_plugin")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = str(value)
        if not VERSION_RE.match(value):
            raise _fail(f"{value!r} is not a version", "write MAJOR.MINOR.PATCH, e.g. 1.19.7")
        return value.removeprefix("v")


class Images(Model):
    """The container images the scenario's pods run, by role; each is loaded on the nodes from the host's
    cache (``kind: image`` steps), never pulled inside a guest. A role the scenario does not use is left out."""

    pause: str | None = Field(
        default=None, description="the pod sandbox image (kubelet --pod-infra-container-image)"
    )
    web: str | None = Field(default=None, description="the workload image (hello-app)")
    client: str | None = Field(default=None, description="the client pod image (busybox)")
    dns: str | None = Field(default=None, description="the cluster DNS image (CoreDNS)")

    @field_validator("pause", "web", "client", "dns")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parse_reference(value)
        except ImageRefError as exc:
            raise _fail(str(exc), "write a tagged reference like registry.k8s.io/pause:3.2") from None
        return value.strip()

    def by_role(self) -> dict[str, str]:
        """role -> reference, for the roles the scenario gives."""
        return {role: ref for role, ref in self.model_dump().items() if ref is not None}


class Node(Model):
    name: str
    roles: list[str] = Field(min_length=1)
    ip: str
    cpus: int = 1
    memory: int | str = "1536M"
    box: str | None = None

    @field_validator("name")
    @classmethod
    def _hostname(cls, value: str) -> str:
        if not HOSTNAME_RE.match(value):
            raise _fail(
                f"{value!r} is not a valid hostname",
                "use lowercase letters, digits and '-', starting and ending with a letter or digit",
            )
        return value

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        unknown = [r for r in value if r not in KNOWN_ROLES]
        if unknown:
            raise _fail(
                f"unknown role {', '.join(map(repr, unknown))}",
                f"use roles from: {', '.join(KNOWN_ROLES)}",
            )
        return value

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        return str(_parse_ipv4(value))

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, value: int) -> int:
        if value < 1:
            raise _fail(f"cpus is {value}", "give at least 1 cpu")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: int | str) -> int:
        try:
            return parse_memory_mib(value)
        except ValueError:
            raise _fail(
                f"{value!r} is not a positive memory size",
                "write MiB as a number (1536) or with a unit (1536M, 2G)",
            ) from None

    @property
    def memory_mib(self) -> int:
        return int(self.memory)


class Guide(Model):
    ja: str | None = None
    en: str | None = None


class Action(Model):
    """Common shape of steps and checks: a kind from a registry, the nodes it runs on, its arguments."""

    name: str
    kind: str
    on: list[str] = Field(default_factory=lambda: [SELECT_ALL], description="node names, roles, or 'all'")
    args: dict[str, Any] = Field(default_factory=dict)


STEP_TIMEOUT = 600.0
CHECK_TIMEOUT = 120.0
MAX_TIMEOUT = 6 * 3600.0


def _timeout(value: object) -> float:
    """A step's or check's ``timeout``: seconds, a number in (0, 6 h]; ``true`` or ``"10m"`` are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TIMEOUT:
        raise _fail(
            f"timeout {value!r} is not a number of seconds above 0 and at most {MAX_TIMEOUT:.0f}",
            "write the seconds the action may take on one node, e.g. timeout: 900",
        )
    return float(value)


class Step(Action):
    timeout: float = Field(
        default=STEP_TIMEOUT, description="seconds the step may take on one node before it is ended"
    )

    _timeout = field_validator("timeout", mode="before")(_timeout)


class Check(Action):
    hint: Guide | str | None = None
    timeout: float = Field(
        default=CHECK_TIMEOUT, description="seconds the check may take on one node before it is ended"
    )

    _timeout = field_validator("timeout", mode="before")(_timeout)


class Stage(Model):
    name: str
    title: str
    title_ja: str | None = None
    guide: Guide = Guide()
    requires: list[str] = Field(default_factory=list, description="stages that must be done before this one")
    steps: list[Step] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG_RE.match(value):
            raise _fail(f"{value!r} is not a valid stage name", "use lowercase letters, digits and '-'")
        return value

    @property
    def snapshot_name(self) -> str:
        return f"{self.name}-ok"


class Scenario(Model):
    name: str
    description: str
    box: str = "labkit/debian12"
    accel: Literal["auto", "kvm", "qemu"] = "auto"
    mirror: str | None = Field(
        default=None,
        description="base URL replacing the artifacts' upstream hosts (classrooms behind a proxy)",
    )
    network: Network
    versions: Versions
    images: Images = Images()
    nodes: list[Node] = Field(min_length=1)
    stages: list[Stage] = Field(default_factory=list)

    # set by load_scenario, not by YAML
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SLUG_RE.match(value):
            raise _fail(f"{value!r} is not a valid scenario name", "use lowercase letters, digits and '-'")
        return value

    @property
    def directory(self) -> Path | None:
        return self.source.parent if self.source else None

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise UsageError(
            f"scenario {self.name} has no node {name!r}",
            f"nodes: {', '.join(n.name for n in self.nodes)}",
        )

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise UsageError(
            f"scenario {self.name} has no stage {name!r}",
            f"stages: {', '.join(s.name for s in self.stages)}",
        )

    def nodes_with_role(self, role: str) -> list[Node]:
        return [n for n in self.nodes if role in n.roles]

    def select(self, selectors: list[str]) -> list[Node]:
        """Nodes matched by a step's or check's ``on``: node names, roles or ``all``, in scenario order."""
        wanted = set(selectors)
        return [
            n
            for n in self.nodes
            if SELECT_ALL in wanted or n.name in wanted or any(r in wanted for r in n.roles)
        ]

    def box_of(self, node: Node) -> str:
        return node.box or self.box


__all__ = [
    "KNOWN_ROLES",
    "Check",
    "Images",
    "Network",
    "Node",
    "Scenario",
    "Stage",
    "Step",
    "Versions",
]
