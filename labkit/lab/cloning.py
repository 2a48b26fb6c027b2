"""Make a lab as a clone of another lab's verified snapshot set, with its memory: the trainee labs of a class.

Each node's domain is cloned from the golden's (shut off) at the set's snapshot and reverted there, running
(:mod:`labkit.machines.clones`); the new lab has its own two networks, its own SSH key and a management address
from its own network; the lab network keeps its addresses (every lab's is an isolated bridge). Its first
snapshot set is the cloned ``<stage>-ok``, taken again on the clone once its key, address and clock are its own
(a reset then comes back to this lab, not to the golden's memory), verified as the golden's was.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import LabError, UsageError
from labkit.lab.lifecycle import Lab
from labkit.machines.clones import CloneSpec, clone_domain, flap_link, golden_disk
from labkit.machines.domains import (
    destroy_lab,
    domain_labels,
    ensure_networks,
    lab_domains,
    management_network_name,
    network_cidrs,
)
from labkit.machines.host_files import copy_overlay, ensure_backing_chain
from labkit.machines.libvirt_host import LibvirtHost
from labkit.machines.snapshots import SnapshotSet, find_set
from labkit.machines.sshkeys import ensure_lab_key, forget_lab_key
from labkit.machines.vagrantfile import default_management_network, domain_prefix, lab_network
from labkit.progress import LogReporter, Reporter
from labkit.state import LabState, NodeState

CLONE_PHASES = 3  # cloned and running; the lab's own key in place; the clock set


@dataclass
class CloneReport:
    lab: str
    snapshot: str
    seconds: float = 0.0
    host: str = "local"
    copy_seconds: dict[str, float] = field(default_factory=dict)
    """Per node: its disk copied (and, the first time on a host, the box it is backed by)."""
    revert_seconds: dict[str, float] = field(default_factory=dict)
    """Per node: from the start of its clone to its VM running (the copies included)."""
    clock_offsets: dict[str, float] = field(default_factory=dict)


def find_verified_set(golden: Lab, snapshot: str) -> SnapshotSet | None:
    """The golden's set ``snapshot`` when it is complete and verified (what a clone starts from), else None."""
    nodes = [n.name for n in golden.scenario.nodes]
    found = find_set(lab_domains(golden.host.connect(), golden.name, nodes), snapshot)
    if found is None or not found.complete(nodes) or not found.record.verified:
        return None
    return found


def verified_set(golden: Lab, snapshot: str) -> SnapshotSet:
    """The golden's set ``snapshot``, complete and verified, or a UsageError saying what to do."""
    found = find_verified_set(golden, snapshot)
    if found is None:
        raise UsageError(
            f"lab {golden.name} has no complete verified snapshot {snapshot}",
            f"`labkit solve {snapshot.removesuffix('-ok')} --name {golden.name}` takes it",
        )
    return found


def _description(golden_dom: Any, lab: str, node: str, class_name: str) -> str:
    labels = domain_labels(golden_dom)
    return (
        f"labkit lab={lab} scenario={labels.get('scenario', '')} node={node} class={class_name} "
        f"path={labels.get('path', '')}"
    )


def _clone_state(
    golden: Lab, name: str, class_name: str, snapshot: SnapshotSet, cidr: str, host: str
) -> LabState:
    source = golden._require_state()
    nodes = {
        node: NodeState(
            name=node,
            domain=f"{domain_prefix(name)}{node}",
            lab_ip=state.lab_ip,
            lab_mac=state.lab_mac,
            lab_iface=state.lab_iface,
            configured=True,
        )
        for node, state in source.nodes.items()
    }
    stages = [s.name for s in golden.scenario.stages]
    record = snapshot.record
    keep = set(stages[: stages.index(record.stage) + 1]) if record.stage in stages else set()
    return LabState(
        lab=name,
        scenario=source.scenario,
        scenario_path=source.scenario_path,
        accel=source.accel,
        accel_reason=f"{source.accel}: cloned from {golden.name}",
        management_network=management_network_name(name),
        management_cidr=cidr,
        lab_network=lab_network(name).name,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        nodes=nodes,
        current_stage=record.stage,
        verified_stages=[s for s in (record.verified_stages or []) if s in keep],
        solved_stages=[s for s in source.solved_stages if s in keep],
        class_name=class_name,
        cloned_from=f"{golden.name}/{record.name}",
        host=host,
    )


def clone_lab(
    golden: Lab,
    snapshot: str,
    name: str,
    class_name: str,
    reporter: Reporter | None = None,
    host: LibvirtHost | None = None,
) -> tuple[Lab, CloneReport]:
    """Lab ``name`` as a clone of ``golden``'s verified set ``snapshot``, on ``host`` (default: the golden's);
    its VMs run at that snapshot. The golden's VMs must be shut off (their disks are copied; to another host
    with their backing box, once per host, checked by sha256). On failure nothing of the new lab is left."""
    reporter = reporter or LogReporter()
    started = time.monotonic()
    host = host or golden.host
    conn = host.connect()
    found = verified_set(golden, snapshot)
    clone = Lab(golden.scenario, name, None, host)
    if clone.paths.state.exists():
        raise UsageError(f"lab {name} already exists", f"`labkit destroy {name}` first")
    report = CloneReport(lab=name, snapshot=snapshot, host=host.name)
    with clone._locked("clone"):  # taken before anything is made: a busy lab is refused, never removed
        if clone.state is not None:
            raise UsageError(f"lab {name} already exists", f"`labkit destroy {name}` first")
        try:
            taken = {c for net, c in network_cidrs(conn).items() if net != management_network_name(name)}
            state = _clone_state(
                golden, name, class_name, found, default_management_network(name, taken).cidr, host.name
            )
            clone.state = state
            clone._save()
            ensure_networks(conn, name, state.management_cidr)
            public_key = ensure_lab_key(clone.paths)
            shutil.copyfile(
                golden.paths.known_hosts, clone.paths.known_hosts
            )  # the clones keep its host keys
            reporter.start(list(state.nodes), CLONE_PHASES)
            try:
                _clone_domains(golden, clone, found, class_name, report, reporter)
                host.ensure_pool().refresh(0)
                _make_it_its_own(golden, clone, found, public_key, report, reporter)
            finally:
                reporter.finish()
            clone._save()
        except BaseException:
            _remove(clone)
            raise
    report.seconds = time.monotonic() - started
    return clone, report


def _make_it_its_own(
    golden: Lab, clone: Lab, found: SnapshotSet, public_key: str, report: CloneReport, reporter: Reporter
) -> None:
    """The running clone gets its own addresses, key and clock, then its own snapshot set."""
    assert clone.state is not None
    clone._discover_addresses(clone.host.connect())
    clone._configure_nodes(public_key, reporter, 3, also_keys=(golden.paths.ssh_key,))
    nodes = list(clone.state.nodes)
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        fixed = pool.map(lambda n: clone._fix_clock(n, reporter), nodes)
        report.clock_offsets = dict(zip(nodes, fixed, strict=True))
    # the clone's own set replaces the golden's: its memory then holds this lab's key and address
    record = found.record
    clone.snapshot(
        record.name, force=True, stage=record.stage, verified=record.verified, checks=record.checks
    )


def _clone_domains(
    golden: Lab, clone: Lab, found: SnapshotSet, class_name: str, report: CloneReport, reporter: Reporter
) -> None:
    """Every node's domain cloned and reverted, nodes in parallel (one libvirt connection each)."""
    assert golden.state is not None and clone.state is not None
    golden_domains = golden._domains(golden.host.connect())
    networks = {
        golden.state.management_network: clone.state.management_network,
        golden.state.lab_network: clone.state.lab_network,
    }
    source, target = golden.host, clone.host
    pool_dir = target.pool_path
    if target.name != source.name:
        target.ensure_pool()  # the directory the copies go to

    def one(node: str) -> None:
        began = time.monotonic()
        source_conn = source.open()
        target_conn = target.open() if target.name != source.name else source_conn
        try:
            golden_dom = source_conn.lookupByName(golden_domains[node].name())
            spec = CloneSpec(
                name=f"{domain_prefix(clone.name)}{node}",
                description=_description(golden_dom, clone.name, node, class_name),
                disk=Path(pool_dir) / f"{domain_prefix(clone.name)}{node}.img",
                networks=networks,
            )
            overlay = str(golden_disk(golden_dom))
            copies = ensure_backing_chain(source, target, overlay)  # the box: once per host
            copied = copy_overlay(source, target, overlay, str(spec.disk))
            report.copy_seconds[node] = copied.seconds + sum(c.seconds for c in copies if c.copied)
            dom = clone_domain(target_conn, golden_dom, found.snapshots[node], spec, target)
            report.revert_seconds[node] = time.monotonic() - began
            reporter.step(node, f"cloned and running ({report.revert_seconds[node]:.1f} s)", 1)
            assert clone.state is not None
            flap_link(dom, clone.state.management_network)
        finally:
            source_conn.close()
            if target_conn is not source_conn:
                target_conn.close()

    with ThreadPoolExecutor(max_workers=len(golden_domains)) as pool:
        futures = {node: pool.submit(one, node) for node in golden_domains}
    failures = [f"{node}: {f.exception()}" for node, f in futures.items() if f.exception() is not None]
    if failures:
        raise LabError(f"cloning {clone.name} failed on {'; '.join(failures)}", "see the libvirt log")


def _remove(clone: Lab) -> None:
    """Whatever a failed clone left: its domains and disks (by label and name), networks, directory, key."""
    with contextlib.suppress(Exception):
        destroy_lab(clone.host.connect(), clone.name, [n.name for n in clone.scenario.nodes])
    shutil.rmtree(clone.paths.root, ignore_errors=True)
    forget_lab_key(clone.paths)
