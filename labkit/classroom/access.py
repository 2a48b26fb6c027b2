"""``labkit class access``: a bundle per trainee whose key reaches that trainee's nodes, and nothing else, through
the class gateway (:mod:`labkit.classroom.gateway`, where the restriction is explained).

    report = open_access("k8s-0412", trainee_labs("k8s-0412", ["alice", "bob"]), AccessOptions(), labs)

In order: the trainees' labs are read (a lab without node addresses or recorded host keys is refused before
anything is made); each trainee gets a bundle (:mod:`labkit.classroom.bundles`); the gateway's authorized_keys
gets one restricted line per trainee key; the gateway is started, or kept when it runs this config; last, each
trainee's key is granted in their lab's VMs. Run again, it keeps every key and token and adds new trainees.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from labkit.classroom import tokens
from labkit.classroom.access_paths import AccessPaths
from labkit.classroom.bundle_text import (
    Endpoint,
    TraineeLab,
    authorized_keys_line,
    check_bundle_dir,
    check_ip,
    default_bundle_dir,
)
from labkit.classroom.bundles import Bundle, private_dir, public_key, write_bundle
from labkit.classroom.gateway import (
    Listen,
    end_sessions,
    ensure_account,
    ensure_gateway,
    ensure_host_key,
    require_gateway_tools,
    stop_gateway,
    write_authorized_keys,
)
from labkit.classroom.relays import ensure_relay, relay_ports, stop_relays
from labkit.classroom.roster import trainee_lab
from labkit.errors import UsageError
from labkit.hostsetup import pool
from labkit.hostsetup.pool import LOCAL
from labkit.paths import LabPaths
from labkit.state import read_state

DEFAULT_LISTEN = "0.0.0.0:2222"
DEFAULT_WEB_URL = "http://127.0.0.1:8080"
KEY_LABEL = "trainee"
"""The label a trainee's key carries in their lab (``Lab.grant_key``)."""
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


class KeyGrantee(Protocol):
    """What access needs of a trainee's lab: to accept a key on every node, now and after every reset."""

    def grant_key(self, label: str, public_key: str) -> None: ...


@dataclass(frozen=True)
class AccessOptions:
    listen: Listen = field(default_factory=lambda: Listen.parse(DEFAULT_LISTEN))
    address: str | None = None
    """The address trainees reach the class host at (default: the listen address)."""
    web_url: str = DEFAULT_WEB_URL
    rotate: bool = False
    """New keys and page tokens for every trainee (the old ones stop working)."""
    bundle_dir: str | None = None
    """Where trainees unpack their bundle (default ``~/labkit-CLASS``)."""


@dataclass
class AccessReport:
    name: str
    listen: str
    address: str
    """What the bundles name for the gateway: ``--address``, or the listen address."""
    port: int
    gateway: str
    """``started``, ``restarted`` (its config changed) or ``running`` (kept)."""
    bundles: list[Bundle]
    warnings: list[str] = field(default_factory=list)
    relays: dict[str, str] = field(default_factory=dict)
    """Host -> ``started`` or ``running``: the relay to the trainee labs on each other host."""
    sessions_ended: int = 0
    """Connections through the gateway ended by ``--rotate``."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def trainee_labs(class_name: str, trainees: list[str]) -> list[TraineeLab]:
    """Each trainee's lab as the bundles need it, from the lab's state and known_hosts (no VM is touched)."""
    return [_trainee_lab(class_name, trainee) for trainee in trainees]


def _trainee_lab(class_name: str, trainee: str) -> TraineeLab:
    name = trainee_lab(class_name, trainee)
    paths = LabPaths.for_lab(name)
    state = read_state(paths.state)
    if state is None:
        raise UsageError(f"trainee {trainee} has no lab {name}", f"`labkit class up {class_name}` makes it")
    nodes = {node: s.management_ip for node, s in state.nodes.items() if s.management_ip}
    missing = [node for node in state.nodes if node not in nodes]
    if not nodes or missing:
        raise UsageError(
            f"lab {name}: no management address recorded for {', '.join(missing) or 'any node'}",
            f"`labkit status --name {name}` shows whether its VMs run",
        )
    host_keys = paths.known_hosts.read_text().splitlines() if paths.known_hosts.is_file() else []
    named = {n for line in host_keys if line.strip() for n in line.split(maxsplit=1)[0].split(",")}
    unknown = [node for node in nodes if node not in named]
    if unknown:
        raise UsageError(
            f"lab {name}: no host key recorded for {', '.join(unknown)} in {paths.known_hosts}",
            "a trainee's lab gets them from its golden lab when `labkit class up` clones it",
        )
    return TraineeLab(
        trainee, name, {n: check_ip(ip) for n, ip in nodes.items()}, host_keys, host=state.host or LOCAL
    )


def gateway_address(options: AccessOptions) -> tuple[str, list[str]]:
    """The address the bundles name for the gateway, and a warning when it only works on this host."""
    if options.address:
        if not _HOSTNAME.match(options.address):
            check_ip(options.address.strip("[]"))
        return options.address.strip("[]"), []
    if not options.listen.everywhere:
        return options.listen.host, []
    probe = options.listen.probe_address
    return probe, [
        f"the gateway listens on {options.listen} and no --address was given: the bundles name {probe}, which "
        "only this host reaches; give --address with the address trainees reach this host at"
    ]


def check_options(options: AccessOptions) -> None:
    """Every option checked before anything is made."""
    if options.bundle_dir is not None:
        check_bundle_dir(options.bundle_dir)
    gateway_address(options)
    if not options.web_url.startswith(("http://", "https://")):
        raise UsageError(
            f"--web-url {options.web_url!r}: give an http(s) URL", f"for example {DEFAULT_WEB_URL}"
        )


def open_access(
    class_name: str, labs: list[TraineeLab], options: AccessOptions, grantees: Mapping[str, KeyGrantee]
) -> AccessReport:
    """Bundles for ``labs``' trainees, the gateway letting each key reach its own lab, the keys in the labs."""
    check_options(options)
    require_gateway_tools()
    address, warnings = gateway_address(options)
    bundle_dir = check_bundle_dir(options.bundle_dir or default_bundle_dir(class_name))
    paths = AccessPaths.for_class(class_name)
    for directory in (paths.root, paths.gateway, paths.trainees):
        private_dir(directory)
    ensure_account()
    endpoint = Endpoint(address, options.listen.port, ensure_host_key(paths))
    labs, relays = _relayed(paths, labs)
    bundles = [
        write_bundle(paths, lab, endpoint, bundle_dir, options.web_url, options.rotate) for lab in labs
    ]
    keys = {lab.trainee: public_key(paths, lab.trainee) for lab in labs}
    write_authorized_keys(paths, [authorized_keys_line(class_name, lab, keys[lab.trainee]) for lab in labs])
    status = ensure_gateway(paths, options.listen)
    ended = end_sessions(paths) if options.rotate else 0  # the old keys' open tunnels, too
    _grant_in_labs(grantees, keys)
    return AccessReport(
        class_name,
        str(options.listen),
        address,
        options.listen.port,
        status,
        bundles,
        warnings,
        relays,
        ended,
    )


def _relayed(paths: AccessPaths, labs: list[TraineeLab]) -> tuple[list[TraineeLab], dict[str, str]]:
    """``labs``, those on other hosts with their nodes' relay ports; a relay running through each such host
    (host -> ``started`` or ``running``)."""
    remote: dict[str, list[TraineeLab]] = {}
    for lab in labs:
        if lab.host != LOCAL:
            remote.setdefault(lab.host, []).append(lab)
    ports_of: dict[str, dict[str, int]] = {}
    relays = {}
    for host, on_host in remote.items():
        ports = relay_ports(paths, host, [ip for lab in on_host for ip in lab.nodes.values()])
        relays[host] = ensure_relay(paths, pool.libvirt_host(host), ports)
        ports_of[host] = ports
    relayed = [
        replace(lab, relay_ports={n: ports_of[lab.host][ip] for n, ip in lab.nodes.items()})
        if lab.host in ports_of
        else lab
        for lab in labs
    ]
    return relayed, relays


def _grant_in_labs(grantees: Mapping[str, KeyGrantee], keys: dict[str, str]) -> None:
    """The one step that touches VMs: each trainee's node accounts accept that trainee's key."""
    for trainee, key in keys.items():
        grantees[trainee].grant_key(KEY_LABEL, key)


def remove_access(class_name: str) -> None:
    """The end of a class's access: its gateway stopped (by its PID), its bundles and page tokens gone."""
    paths = AccessPaths.for_class(class_name)
    stop_gateway(paths)
    stop_relays(paths)
    shutil.rmtree(paths.root, ignore_errors=True)
    tokens.forget_tokens(class_name)
