"""A lab: one running instance of a scenario on a libvirt host. The library API behind ``labkit up/status/ssh/
solve/check/snapshot/reset/retry/destroy``.

    from labkit.api import Lab
    lab = Lab.create("three-node", name="trainee1")   # validates; touches nothing yet
    lab.up()                                          # boots, configures hostnames, IPs, /etc/hosts
    print(lab.run("node1", "hostname").stdout)
    lab.destroy()

A lab is found again by name with :meth:`Lab.load`, from its directory or, when that is gone, from libvirt.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from labkit.errors import HostError, LabError, ScenarioError, UsageError
from labkit.hostsetup.accel import AccelChoice, detect_accel
from labkit.hostsetup.hostmode import local_host
from labkit.hostsetup.pool import lab_host
from labkit.kinds.checks import CheckResult
from labkit.kinds.compile import load_scenario
from labkit.lab.core import MGMT_IP_TIMEOUT
from labkit.lab.names import check_lab_name, known_labs
from labkit.lab.readiness import ensure_boxes, refuse_missing_artifacts, refuse_short_memory
from labkit.lab.remote_up import choose_accel, free_ram_mib, vagrant_proxy_command
from labkit.lab.reports import LabStatus, NodeStatus, UpReport, Verification
from labkit.lab.snapshotting import LabSnapshots
from labkit.lab.solving import StageReport, sync_nodes
from labkit.lock import lab_lock
from labkit.machines.domains import (
    Removal,
    destroy_lab,
    dhcp_address,
    domain_labels,
    domain_state,
    ensure_networks,
    interface_macs,
    lab_domains,
    labs_in_libvirt,
    management_network_name,
    network_cidrs,
)
from labkit.machines.guest import configure_script, parse_output, remote_command
from labkit.machines.isolation import lift_isolation
from labkit.machines.libvirt_host import LibvirtHost
from labkit.machines.providers.vagrant_libvirt import BOOT_PHASES, VagrantLibvirt
from labkit.machines.snapshots import (
    disk_usage,
    list_sets,
)
from labkit.machines.sshkeys import ensure_lab_key, forget_lab_key, write_ssh_config
from labkit.machines.vagrantfile import (
    LibvirtNetwork,
    RenderOptions,
    default_management_network,
    lab_network,
    write_vagrantfile,
)
from labkit.model.scenario import Scenario
from labkit.paths import LabPaths
from labkit.progress import LogReporter, Reporter
from labkit.state import LabState, NodeState, read_state


class Lab(LabSnapshots):
    """One lab. ``create`` for a new or existing lab of a scenario, ``load`` for an existing lab by name."""

    # ---- finding labs -------------------------------------------------------------------------------

    @classmethod
    def create(
        cls, scenario: str | Path | Scenario, name: str | None = None, host: LibvirtHost | None = None
    ) -> Lab:
        """The lab ``name`` (default: the scenario's name) of ``scenario``, validated. Touches no VM."""
        loaded = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        lab_name = check_lab_name(name or loaded.name)
        state = read_state(LabPaths.for_lab(lab_name).state)
        if state is not None and state.scenario != loaded.name:
            raise UsageError(
                f"lab {lab_name} already runs scenario {state.scenario}",
                f"pick another name with --name, or `labkit destroy {lab_name}` first",
            )
        _refuse_other_host(lab_name, state, host)
        return cls(loaded, lab_name, state, host)

    @classmethod
    def load(cls, name: str | None = None, host: LibvirtHost | None = None) -> Lab:
        """An existing lab: by name, or the only one there is, on the host its state records. Rebuilt from
        libvirt (``host``, default this machine) if its state is lost."""
        if name is None:
            labs = known_labs()
            if len(labs) == 1:
                name = labs[0]
            elif not labs:
                raise UsageError("no lab on this host", "start one with `labkit up SCENARIO`")
            else:
                raise UsageError(
                    f"several labs on this host: {', '.join(labs)}", "choose one with --name LAB"
                )
        check_lab_name(name)
        state = read_state(LabPaths.for_lab(name).state)
        if state is not None:
            _refuse_other_host(name, state, host)
            return cls(load_scenario(state.scenario_path), name, state, host)
        return cls._rediscover(name, host or local_host())

    @classmethod
    def _rediscover(cls, name: str, host: LibvirtHost) -> Lab:
        conn = host.connect()
        if name not in labs_in_libvirt(conn):
            known = ", ".join(known_labs()) or "none"
            raise UsageError(f"no lab named {name!r} on this host (labs: {known})", "see `labkit status`")
        labels: dict[str, str] = {}
        for dom in lab_domains(conn, name).values():
            labels = domain_labels(dom)
            if labels.get("lab") == name:
                break
        candidates = [labels.get("path", ""), labels.get("scenario", ""), name]
        scenario = None
        for candidate in filter(None, candidates):
            try:
                scenario = load_scenario(candidate)
                break
            except UsageError:
                continue
        if scenario is None:
            raise LabError(
                f"lab {name} exists in libvirt but its directory {LabPaths.for_lab(name).root} is gone "
                "and its scenario is unknown",
                f"`labkit destroy {name}` removes it from libvirt",
            )
        lab = cls(scenario, name, None, host)
        lab.state = lab._new_state(conn, detect_accel(None if scenario.accel == "auto" else scenario.accel))
        cidrs = network_cidrs(conn)
        lab.state.management_cidr = cidrs.get(management_network_name(name), lab.state.management_cidr)
        lab._rediscovered = True
        with contextlib.suppress(LabError):
            lab._discover_addresses(conn, timeout=0, persist=False)
        return lab

    _rediscovered = False

    # ---- bringing it up -----------------------------------------------------------------------------

    def _new_state(self, conn: Any, accel: AccelChoice) -> LabState:
        taken = {
            cidr for net, cidr in network_cidrs(conn).items() if net != management_network_name(self.name)
        }
        mgmt = default_management_network(self.name, taken)
        return LabState(
            lab=self.name,
            scenario=self.scenario.name,
            scenario_path=str(self.scenario.source),
            accel=accel.driver,
            accel_reason=accel.reason,
            management_network=mgmt.name,
            management_cidr=mgmt.cidr,
            lab_network=lab_network(self.name).name,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            host=self.host.name,
            nodes={
                n.name: NodeState(name=n.name, domain=f"labkit-{self.name}-{n.name}", lab_ip=n.ip)
                for n in self.scenario.nodes
            },
        )

    def up(self, reporter: Reporter | None = None, accel: str | None = None) -> UpReport:
        """Boot every VM and configure hostname, lab IP, /etc/hosts and the lab key. Safe to run again."""
        reporter = reporter or LogReporter()
        started = time.monotonic()
        self._refuse_clone()
        # The box is built from the host's apt mirror: before entering host mode's namespace, which has no route.
        ensure_boxes(self.scenario, reporter)
        conn = self.host.connect()
        self.host.ensure_pool()
        choice = choose_accel(
            self.host, conn, accel or (None if self.scenario.accel == "auto" else self.scenario.accel)
        )
        if self.state is not None and self.state.accel != choice.driver and lab_domains(conn, self.name):
            kept = detect_accel(self.state.accel)
            choice = AccelChoice(kept.driver, f"{kept.driver}: kept from when the lab's VMs were created")
        reporter.note(f"accelerator {choice.reason}")
        with self._locked("up"):
            domains = lab_domains(conn, self.name, [n.name for n in self.scenario.nodes])
            # a VM created now boots for the first time with a new host key: its old record must go
            self._host_keys().forget(n.name for n in self.scenario.nodes if n.name not in domains)
            running = {node for node, dom in domains.items() if domain_state(dom) == "running"}
            where = f" on host {self.host.name}" if self.host.remote else ""
            refuse_short_memory(self.scenario, choice, running, free_ram_mib(self.host, conn), where)
            if self.state is None:
                self.state = self._new_state(conn, choice)
            self.state.accel, self.state.accel_reason = choice.driver, choice.reason
            self._save()
            public_key = ensure_lab_key(self.paths)
            self._render(choice)
            made = ensure_networks(conn, self.name, self.state.management_cidr)
            if made:
                reporter.note(f"networks ready: {', '.join(made)}")
            report = UpReport(lab=self.name, accel=choice)
            names = [n.name for n in self.scenario.nodes]
            total = len(BOOT_PHASES) + 1
            reporter.start(names, total)
            try:
                if running == set(names):
                    report.already_running = names
                    for node in names:
                        reporter.step(node, "already running: boot skipped", len(BOOT_PHASES))
                else:
                    report.already_running = sorted(running)
                    report.booted = [n for n in names if n not in running]
                    try:
                        VagrantLibvirt(self.paths).up(lambda node, i, text: reporter.step(node, text, i + 1))
                    except KeyboardInterrupt:  # vagrant's process group has been stopped and waited for
                        reporter.note(
                            f"interrupted during vagrant up: vagrant stopped, nothing of it runs; "
                            f"`labkit up {self.scenario.name} --name {self.name}` resumes"
                        )
                        raise
                self._discover_addresses(conn)
                report.changed = self._configure_nodes(public_key, reporter, total)
            finally:
                reporter.finish()
            self._save()
        report.seconds = time.monotonic() - started
        return report

    def _refuse_clone(self) -> None:
        if self.state is not None and self.state.cloned_from:
            raise UsageError(
                f"lab {self.name} is a clone of {self.state.cloned_from} in class {self.state.class_name}: "
                "vagrant did not make it, so `up` does not boot it",
                f"`labkit reset SNAPSHOT --name {self.name}` brings it back; `labkit class up "
                f"{self.state.class_name} ...` makes it again after `labkit destroy {self.name}`",
            )

    def _render(self, accel: AccelChoice) -> None:
        assert self.state is not None
        options = RenderOptions(
            lab=self.name,
            accel=accel.driver,
            management_network=LibvirtNetwork(self.state.management_network, self.state.management_cidr),
            ssh_private_keys=tuple(str(key) for key in self._keys()),
            libvirt_uri=self.host.uri,
            storage_pool=self.host.pool,
            ssh_proxy_command=vagrant_proxy_command(self.host),
        )
        write_vagrantfile(self.scenario, options, self.paths.root)

    def _discover_addresses(self, conn: Any, timeout: float = MGMT_IP_TIMEOUT, persist: bool = True) -> None:
        """Management IP (DHCP lease) and lab MAC of every node, straight from libvirt."""
        assert self.state is not None
        domains = lab_domains(conn, self.name, list(self.state.nodes))
        deadline = time.monotonic() + timeout
        for name, node in self.state.nodes.items():
            dom = domains.get(name)
            if dom is None:
                raise LabError(
                    f"domain {node.domain} does not exist after vagrant up",
                    f"read {self.paths.log('vagrant-up')}",
                )
            macs = interface_macs(dom)
            mgmt_mac = macs.get(self.state.management_network)
            node.lab_mac = macs.get(self.state.lab_network)
            if mgmt_mac is None or node.lab_mac is None:
                raise LabError(
                    f"{node.domain} is not attached to both lab networks",
                    f"`labkit destroy {self.name}` and `labkit up` again",
                )
            ip = dhcp_address(conn, self.state.management_network, mgmt_mac)
            while ip is None and time.monotonic() < deadline:
                time.sleep(1)
                ip = dhcp_address(conn, self.state.management_network, mgmt_mac)
            if ip is None:
                raise LabError(
                    f"{node.domain} has no DHCP lease on {self.state.management_network}",
                    f"check `virsh net-dhcp-leases {self.state.management_network}`",
                )
            node.management_ip = ip
        if persist:
            self._write_ssh_config()
            self._save()

    def _write_ssh_config(self) -> None:
        """The lab's ssh_config for ``labkit ssh``: through the host when the lab lives on another one."""
        assert self.state is not None
        jump = (self.host.name, self.host.ssh_login()) if self.host.remote else None
        write_ssh_config(self.paths, {n: s.management_ip or "" for n, s in self.state.nodes.items()}, jump)

    def _configure_nodes(
        self, public_key: str, reporter: Reporter, total: int, also_keys: tuple[Path, ...] = ()
    ) -> dict[str, list[str]]:
        assert self.state is not None
        state = self.state

        def configure(name: str) -> tuple[str, list[str]]:
            node_state = state.nodes[name]
            reporter.step(name, "configuring hostname, IP, hosts", total - 1)
            script = configure_script(
                self.scenario.node(name), self.scenario, node_state.lab_mac or "", public_key
            )
            # the first connection to a new VM records its host key; later ones must present the same
            conn = self._connection(name, keys=[*self._keys(), *also_keys], record_host_key=True)
            result = conn.run(remote_command(script))
            if not result.ok:
                raise LabError(
                    f"{name}: configuring the node failed (exit {result.exited}): "
                    f"{(result.stderr or result.stdout).strip()[-400:]}",
                    f"`labkit ssh {name}` to look; `labkit up` again retries",
                )
            parsed = parse_output(name, result.stdout)
            node_state.lab_iface = parsed.iface
            node_state.configured = True
            done = (
                f"configured ({len(parsed.changed)} changes)" if parsed.changed else "configuration unchanged"
            )
            reporter.step(name, done, total)
            return name, parsed.changed

        with ThreadPoolExecutor(max_workers=len(state.nodes)) as pool:
            results = dict(pool.map(configure, list(state.nodes)))
        return results

    def ssh_argv(self, node: str, command: list[str]) -> list[str]:
        """The OpenSSH command line for ``labkit ssh NODE [-- CMD]``: the lab's ssh_config and key."""
        state = self._require_state()
        if node not in state.nodes:
            raise UsageError(f"lab {self.name} has no node {node!r}", f"nodes: {', '.join(state.nodes)}")
        if shutil.which("ssh") is None:
            raise HostError("ssh is not installed", "apt-get install openssh-client")
        if node not in self._host_keys().load():  # ssh would only say "Host key verification failed"
            raise UsageError(
                f"{node}: no host key recorded in {self.paths.known_hosts}",
                f"`labkit up {self.scenario.name} --name {self.name}` records it (a running lab is not changed)",
            )
        self._write_ssh_config()  # a lab written before it knew its host, or whose host's login changed
        return ["ssh", "-F", str(self.paths.ssh_config), node, *command]

    def status(self) -> LabStatus:
        """Nodes with roles, IPs and VM states, from libvirt; the lab's accel, stage and snapshots."""
        conn = self.host.connect()
        state = self.state or self._new_state(conn, detect_accel())
        domains = lab_domains(conn, self.name, list(state.nodes))
        snapshots = {s.record.name for s in list_sets(domains, sizes=False)}
        nodes = []
        for node in self.scenario.nodes:
            dom = domains.get(node.name)
            node_state = state.nodes.get(node.name)
            nodes.append(
                NodeStatus(
                    name=node.name,
                    roles=list(node.roles),
                    lab_ip=node.ip,
                    management_ip=node_state.management_ip if node_state else None,
                    domain=f"labkit-{self.name}-{node.name}",
                    state=domain_state(dom) if dom is not None else "not created",
                )
            )
        return LabStatus(
            lab=self.name,
            scenario=self.scenario.name,
            accel=state.accel,
            accel_reason=state.accel_reason,
            directory=str(self.paths.root),
            current_stage=state.current_stage,
            verified_stages=list(state.verified_stages),
            nodes=nodes,
            solved_stages=list(state.solved_stages),
            snapshots=sorted(snapshots),
            disk_bytes=disk_usage(domains),
            rediscovered=self._rediscovered,
            host=self.host.name,
        )

    # ---- stages --------------------------------------------------------------------------------------

    def preflight(self, stages: list[str]) -> None:
        """Refuse before any VM is touched when the host lacks an artifact or image that ``stages`` need."""
        refuse_missing_artifacts(self.scenario, self.state, stages)

    def stages_until(self, stage: str) -> list[str]:
        """Names of the stages from the first up to and including ``stage`` (validated now, before any boot)."""
        names = [s.name for s in self.scenario.stages]
        return names[: names.index(self.scenario.stage(stage).name) + 1]

    def solve(
        self,
        stage: str,
        *,
        only: set[str] | None = None,
        nodes: set[str] | None = None,
        plan: bool = False,
        reporter: Reporter | None = None,
        verify: bool = True,
    ) -> StageReport:
        """Apply (or, with ``plan``, only show) a stage's reference solution on its nodes, in parallel.
        ``only`` runs some steps, ``nodes`` some nodes; the stage is then not marked done nor verified.
        A whole stage applied is then checked and, when its checks pass, snapshotted as ``<stage>-ok``
        (``verify=False`` skips both).

        Steps see the same values as the chapter guides (``labkit.kinds.guides.guide_context``). Everything that can
        fail on the host (bad step arguments, templates, missing artifacts) fails before any node is touched.
        A catalog other than the shipped one can be given with ``LABKIT_CATALOG=PATH``.
        """
        from labkit.artifacts import load_catalog
        from labkit.kinds.guides import guide_context
        from labkit.lab.solving import run_stage

        target = self.scenario.stage(stage)
        catalog = load_catalog(os.environ.get("LABKIT_CATALOG") or None)
        with self._locked("solve"):
            state = self._require_state()
            context = guide_context(self.scenario, state)
            for note in context["notes"]:
                (reporter or LogReporter()).note(note)
            connections = {node: self._connection(node) for node in state.nodes}
            try:
                report = run_stage(
                    self.scenario,
                    target,
                    connections,
                    only=only,
                    nodes=nodes,
                    plan=plan,
                    context=context,
                    reporter=reporter,
                    catalog=catalog,
                    solved=state.done_stages(),
                )
                if not plan:
                    sync_nodes(connections, reporter or LogReporter())
            finally:
                for conn in connections.values():
                    conn.close()
            whole = only is None and nodes is None
            if not plan and not report.failed and whole:
                state.solved(target.name)
                self._save()
            if verify and not plan and not report.failed and whole and target.checks:
                self.last_verification = self.verify(target.name)  # still under the lock
        return report

    last_verification: Verification | None = None

    def check(self, stage: str | None = None, lang: str = "en") -> tuple[str, list[CheckResult]]:
        """Run a stage's checks (default: the first stage with checks not yet verified); read-only.

        All passing marks the stage verified in the lab's state (a later ``labkit snapshot <stage>-ok`` is then
        recorded as verified); a failure un-verifies it; a node that does not answer changes neither. Runs
        under the lab's lock: the state it reads and writes is not changed by another command meanwhile."""
        with self._locked("check"):
            return self._check(stage, lang)

    def probe(self, stage: str, lang: str = "en") -> list[CheckResult]:
        """Run a stage's checks and return what they saw; read-only on the nodes *and* on the lab's state (no
        lock taken): what a trainer's class-wide check uses while trainees work."""
        return self._run_checks(self._require_state(), stage, lang)[1]

    def _run_checks(self, state: LabState, stage: str | None, lang: str) -> tuple[str, list[CheckResult]]:
        from labkit.kinds.guides import guide_context
        from labkit.lab.checking import run_checks

        if stage is None:
            pending = [s for s in self.scenario.stages if s.checks and s.name not in state.verified_stages]
            if not pending:
                raise UsageError("every stage with checks is verified", "name a stage: labkit check STAGE")
            stage = pending[0].name
        target = self.scenario.stage(stage)
        if not target.checks:
            raise UsageError(
                f"stage {target.name} has no checks yet", "see `labkit guide` for how to check it by hand"
            )
        connections = {node: self._connection(node) for node in state.nodes}
        try:
            results = run_checks(
                self.scenario, target, connections, guide_context(self.scenario, state), lang
            )
        finally:
            for conn in connections.values():
                conn.close()
        return target.name, results

    def _check(self, stage: str | None, lang: str) -> tuple[str, list[CheckResult]]:
        state = self._require_state()
        name, results = self._run_checks(state, stage, lang)
        target = self.scenario.stage(name)
        if any(r.unreachable for r in results):
            pass  # nothing learned about the nodes that did not answer: the stage keeps its state
        elif all(r.ok for r in results):
            if target.name not in state.verified_stages:
                state.verified_stages.append(target.name)
        elif target.name in state.verified_stages:
            state.verified_stages.remove(target.name)
        self._save()
        return target.name, results

    def verify(self, stage: str) -> Verification:
        """Check ``stage``; when every check passes, snapshot the lab as ``<stage>-ok``, marked verified."""
        name, results = self.check(stage)
        verification = Verification(stage=name, results=results)
        if verification.passed:
            snapshot = self.scenario.stage(name).snapshot_name
            self.snapshot(
                snapshot, force=True, stage=name, verified=True, checks=[r.to_json() for r in results]
            )
            verification.snapshot = snapshot
        return verification

    def destroy(self) -> Removal:
        """Remove snapshots, domains, volumes and networks of the lab, then its directory. Idempotent."""
        conn = self.host.connect()
        nodes = [n.name for n in self.scenario.nodes]
        with self._locked("destroy"):
            removed = destroy_lab(conn, self.name, nodes)
            lift_isolation(self.host, self.name)
        shutil.rmtree(self.paths.root, ignore_errors=True)
        forget_lab_key(self.paths)
        return removed


def _refuse_other_host(name: str, state: LabState | None, host: LibvirtHost | None) -> None:
    if state is not None and host is not None and host.name != state.host:
        raise UsageError(
            f"lab {name} lives on host {state.host}, not {host.name}",
            "name the lab alone: labkit finds its host from the lab's record",
        )


def destroy_by_name(name: str, host: LibvirtHost | None = None) -> Removal:
    """Destroy a lab by name even when neither its directory nor its scenario can be found; on the host
    its state records (``host``, default this machine, when there is no state)."""
    check_lab_name(name)
    state = read_state(LabPaths.for_lab(name).state)
    _refuse_other_host(name, state, host)
    host = host or (lab_host(name, state.host) if state is not None else local_host())
    try:
        lab = Lab.load(name, host)
    except (UsageError, LabError, ScenarioError):  # a lab whose scenario is gone or now invalid still goes
        lab = None
    if lab is not None:
        return lab.destroy()  # a busy lab refuses here, and that refusal is final
    paths = LabPaths.for_lab(name)
    with lab_lock(paths.lock, name, "destroy"):
        removed = destroy_lab(host.connect(), name)
        lift_isolation(host, name)
    shutil.rmtree(paths.root, ignore_errors=True)
    forget_lab_key(paths)
    return removed
