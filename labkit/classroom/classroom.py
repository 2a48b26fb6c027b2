"""A class: a golden lab solved and verified to a stage, and a lab per trainee cloned from it with its memory.

    from labkit.classroom import Classroom
    room = Classroom("k8s-0412")
    room.up("three-node", trainees=["alice", "bob"], until="etcd")   # golden solved once, then a clone each
    room.check("etcd")                                              # every trainee's etcd checks, in parallel
    print(room.status().to_json())                                  # the trainer's grid
    room.destroy()

The golden lab is ``CLASS-golden``, each trainee's ``CLASS-<trainee>``: full labs that every ``labkit`` command
works on with ``--name``. The golden's VMs stay shut off once cloned (a clone needs its still disk, not its RAM).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from labkit.classroom import capacity
from labkit.classroom.access import (
    DEFAULT_LISTEN,
    DEFAULT_WEB_URL,
    AccessOptions,
    AccessReport,
    check_options,
    open_access,
    remove_access,
    trainee_labs,
)
from labkit.classroom.gateway import Listen, require_gateway_tools
from labkit.classroom.placement import HostRoom, place
from labkit.classroom.progress import TraineeReporter
from labkit.classroom.record import (
    FAILING,
    UNREACHABLE,
    VERIFIED,
    Cell,
    ClassRecord,
    known_classes,
    lock_path,
    now,
    read_record,
    record_path,
    write_record,
)
from labkit.classroom.roster import check_names, golden_lab, trainee_lab
from labkit.classroom.sweep import labelled_labs, labs_of_class
from labkit.errors import HostError, LabError, LabkitError, UsageError
from labkit.hostsetup import pool
from labkit.hostsetup.hostmode import local_host
from labkit.hostsetup.pool_survey import survey
from labkit.kinds.checks import CheckResult
from labkit.kinds.compile import load_scenario
from labkit.lab import Lab, ResetReport, destroy_by_name
from labkit.lab.cloning import CloneReport, clone_lab, find_verified_set
from labkit.lab.names import check_lab_name
from labkit.lock import lab_lock
from labkit.machines.clones import disk_bytes, free_bytes, golden_disk
from labkit.machines.domains import Removal
from labkit.machines.isolation import is_isolated, isolate
from labkit.machines.libvirt_host import LibvirtHost
from labkit.model.scenario import Scenario
from labkit.paths import LabPaths
from labkit.progress import LogReporter, Reporter

CHECK_PARALLEL = 4
GOLDEN_STOP_TIMEOUT = 120.0


@dataclass
class ClassUpReport:
    name: str
    golden: str
    stage: str
    golden_reused: bool
    cloned: dict[str, CloneReport] = field(default_factory=dict)
    already: list[str] = field(default_factory=list)
    ksm_turned_on: bool = False
    isolated: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class TraineeRow:
    trainee: str
    lab: str
    exists: bool
    cells: dict[str, Cell]
    isolated: bool = False
    """Its VMs are kept from other labs and from the host's services (nftables rules in force)."""
    host: str = "local"
    """The libvirt host of the pool the lab lives on."""
    host_unreachable: str = ""
    """Why that host did not answer, when it did not (then ``isolated`` is unknown, shown False)."""


@dataclass
class ClassStatus:
    name: str
    scenario: str
    stage: str
    golden: str
    stages: list[str]
    trainees: list[TraineeRow]
    host: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def first_failure(results: list[CheckResult]) -> Cell:
    """A stage's grid cell from its check results."""
    if any(r.unreachable for r in results):
        down = next(r for r in results if r.unreachable)
        return Cell(UNREACHABLE, f"{down.node}: {down.seen}", now())
    failed = next((r for r in results if not r.ok), None)
    if failed is None:
        return Cell(VERIFIED, "", now())
    seen = " ".join(str(failed.seen).split())[:160]
    return Cell(FAILING, f"{failed.check} on {failed.node}: {seen}", now())


class Classroom:
    """One class. Its golden lab and new clones go on ``host`` (default: this machine); every lab of the class
    is then found on the host its own state records."""

    def __init__(self, name: str, host: LibvirtHost | None = None) -> None:
        self.name = check_lab_name(name)
        self.host = host or local_host()

    # ---- the record ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, action: str) -> Iterator[None]:
        with lab_lock(lock_path(self.name), f"class {self.name}", action):
            yield

    def record(self) -> ClassRecord:
        found = read_record(self.name)
        if found is None:
            known = ", ".join(known_classes()) or "none"
            raise UsageError(
                f"no class named {self.name!r} (classes: {known})", "start one with `labkit class up`"
            )
        return found

    def _lab(self, trainee: str) -> Lab:
        """A trainee's lab, on the host its state records."""
        return Lab.load(trainee_lab(self.name, trainee))

    # ---- up ------------------------------------------------------------------------------------------

    def up(
        self,
        scenario: str | Scenario,
        trainees: list[str],
        until: str,
        reporter: Reporter | None = None,
        ksm: bool = True,
        hosts: list[str] | None = None,
    ) -> ClassUpReport:
        """The golden lab solved and verified to ``until`` (reused when it is), then a clone for each trainee
        who has none. Everything is validated, and the host's room for the new labs checked, before any VM.
        ``ksm``: turn the kernel's same-page merging on for the clones where it is off (labkit turns it off
        again with its last class). ``hosts``: pool hosts (``labkit hosts list``) to spread the trainee labs
        over, whole labs by free RAM and disk; the golden lab stays on the class's own host."""
        reporter = reporter or LogReporter()
        started = time.monotonic()
        loaded = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        stage = loaded.stage(until)
        if not stage.checks:
            raise UsageError(
                f"stage {stage.name} has no checks: a class starts from a verified stage",
                "pick a stage with checks for --until",
            )
        check_names(self.name, trainees)
        targets = {name: pool.libvirt_host(name) for name in hosts or []}  # unknown host: one line, now
        with self._locked("up"):
            record = self._record_for(loaded, stage.name)
            golden = Lab.create(loaded, golden_lab(self.name), self.host)
            reused = self._ensure_golden(golden, stage.name, reporter)
            wanted = [t for t in trainees if not self._has_lab(t)]
            report = ClassUpReport(self.name, golden.name, stage.name, reused)
            report.already = [t for t in trainees if t not in wanted]
            placed = dict.fromkeys(wanted, self.host.name)
            if wanted:
                if targets:
                    self._stop_golden(golden)  # its RAM is free for the survey
                    placed = self._place(golden, wanted, list(targets))
                else:
                    self._room_for(golden, len(wanted))
                    self._stop_golden(golden)
                report.ksm_turned_on = capacity.turn_ksm_on() if ksm else False
                record.ksm_turned_on = record.ksm_turned_on or report.ksm_turned_on
            record.trainees = list(dict.fromkeys([*record.trainees, *trainees]))
            write_record(record)
            self._clone_all(golden, stage.snapshot_name, placed, targets, report, reporter)
            report.isolated = self.isolate(trainees)
        report.seconds = time.monotonic() - started
        return report

    def _record_for(self, scenario: Scenario, stage: str) -> ClassRecord:
        record = read_record(self.name)
        if record is None:
            return ClassRecord(
                name=self.name,
                scenario=scenario.name,
                scenario_path=str(scenario.source),
                stage=stage,
                golden=golden_lab(self.name),
                created_at=now(),
            )
        if record.scenario != scenario.name or record.stage != stage:
            raise UsageError(
                f"class {self.name} runs {record.scenario} from stage {record.stage}",
                f"use `--until {record.stage}` with {record.scenario}, or another class name",
            )
        return record

    def _has_lab(self, trainee: str) -> bool:
        return LabPaths.for_lab(trainee_lab(self.name, trainee)).state.exists()

    def _ensure_golden(self, golden: Lab, stage: str, reporter: Reporter) -> bool:
        """Solve the golden lab to ``stage`` unless its ``<stage>-ok`` is already there and verified."""
        snapshot = golden.scenario.stage(stage).snapshot_name
        if golden.state is not None and find_verified_set(golden, snapshot) is not None:
            reporter.note(f"golden lab {golden.name}: {snapshot} verified, reused")
            return True
        stages = golden.stages_until(stage)
        golden.preflight(stages)
        golden.up(reporter)
        for name in stages:
            assert golden.state is not None
            if (
                name in golden.state.verified_stages
                and find_verified_set(golden, golden.scenario.stage(name).snapshot_name) is not None
            ):
                continue
            report = golden.solve(name, reporter=reporter)
            if report.failed:
                raise LabError(f"golden lab {golden.name}: solving {name} failed: {report.summary()}")
            verification = golden.last_verification
            if golden.scenario.stage(name).checks and (verification is None or not verification.passed):
                raise LabError(
                    f"golden lab {golden.name}: the checks of {name} failed after its solution",
                    f"`labkit check {name} --name {golden.name}` shows what fails",
                )
        return False

    def _room_for(self, golden: Lab, count: int) -> None:
        assert golden.state is not None
        domains = golden._domains(golden.host.connect())
        disks = sum(disk_bytes(golden_disk(dom)) for dom in domains.values())
        per_vm = capacity.RAM_PER_CLONE_VM_MIB.get(golden.state.accel, 700)
        room = capacity.Capacity(
            ram_available_mib=capacity.ram_available_mib(),
            ram_per_lab_mib=per_vm * len(domains),
            disk_free_bytes=free_bytes(golden.host.pool_path),
            disk_per_lab_bytes=disks,
        )
        room.refuse_beyond(count, self.name)

    def stop_golden(self) -> None:
        """Shut the golden lab's VMs off: a class needs its disks, not its RAM, once it is verified."""
        self._stop_golden(Lab.load(golden_lab(self.name)))

    def _stop_golden(self, golden: Lab) -> None:
        """Shut the golden's VMs off (QEMU stopped cleanly: its disks are closed before they are copied)."""
        import libvirt

        for dom in golden._domains(golden.host.connect()).values():
            if not dom.isActive():
                continue
            try:
                dom.destroyFlags(libvirt.VIR_DOMAIN_DESTROY_GRACEFUL)
            except libvirt.libvirtError:
                dom.destroy()
            deadline = time.monotonic() + GOLDEN_STOP_TIMEOUT
            while dom.isActive() and time.monotonic() < deadline:
                time.sleep(0.5)

    def _place(self, golden: Lab, trainees: list[str], hosts: list[str]) -> dict[str, str]:
        """Trainee -> host, whole labs over ``hosts`` by RAM and disk left (the golden already shut off)."""
        assert golden.state is not None
        domains = golden._domains(golden.host.connect())
        disks = sum(disk_bytes(golden_disk(dom)) for dom in domains.values())
        per_vm = capacity.RAM_PER_CLONE_VM_MIB.get(golden.state.accel, 700)
        facts = {report.host.name: report.facts for report in survey()}
        rooms = []
        for name in hosts:
            seen = facts[name]
            rooms.append(
                HostRoom(
                    name=name,
                    reachable=seen.reachable,
                    reason=seen.reason,
                    ram_free_mib=seen.ram_free // 2**20 if seen.ram_free is not None else None,
                    disk_free_bytes=seen.disk_free,
                    labs=len(seen.labs),
                    max_labs=pool.pool_host(name).max_labs,
                )
            )
        return place(self.name, trainees, rooms, per_vm * len(domains), disks)

    def _clone_all(
        self,
        golden: Lab,
        snapshot: str,
        placed: dict[str, str],
        targets: dict[str, LibvirtHost],
        report: ClassUpReport,
        reporter: Reporter,
    ) -> None:
        if not placed:
            return
        reporter.start(list(placed), 3)
        try:
            for trainee, host in placed.items():
                _, cloned = clone_lab(
                    golden,
                    snapshot,
                    trainee_lab(self.name, trainee),
                    self.name,
                    TraineeReporter(reporter, trainee),
                    targets.get(host, self.host),
                )
                report.cloned[trainee] = cloned
                reporter.step(trainee, f"ready on {host} in {cloned.seconds:.1f} s", 3)
        finally:
            reporter.finish()

    def isolate(self, trainees: list[str] | None = None) -> list[str]:
        """Each trainee lab's table of nftables rules written (again): its VMs reach neither another lab nor
        the host's services. Idempotent; the rules live in the kernel, so a restarted host needs this again."""
        done = []
        for trainee in trainees if trainees is not None else self.record().trainees:
            if self._has_lab(trainee):
                isolate(self._lab(trainee).host, trainee_lab(self.name, trainee))
                done.append(trainee)
        return done

    # ---- the grid ------------------------------------------------------------------------------------

    def status(self) -> ClassStatus:
        """Trainee x stage: verified / failing (first failing check) / unreachable / not tried, from the last
        class-wide check and each lab's own verified stages; and the host's free resources."""
        record = self.record()
        scenario = load_scenario(record.scenario_path)
        stages = [s.name for s in scenario.stages if s.checks]
        down: dict[str, str] = {}  # host -> why it did not answer: asked once per status, not once per lab
        rows = [self._row(record, trainee, stages, down) for trainee in record.trainees]
        return ClassStatus(
            name=record.name,
            scenario=record.scenario,
            stage=record.stage,
            golden=record.golden,
            stages=stages,
            trainees=rows,
            host=host_resources(self.host),
        )

    def _row(self, record: ClassRecord, trainee: str, stages: list[str], down: dict[str, str]) -> TraineeRow:
        lab = trainee_lab(self.name, trainee)
        row = TraineeRow(trainee=trainee, lab=lab, exists=LabPaths.for_lab(lab).state.exists(), cells={})
        loaded = None
        if row.exists:
            with contextlib.suppress(LabkitError):
                loaded = self._lab(trainee)
        verified = list(loaded.state.verified_stages) if loaded is not None and loaded.state else []
        row.cells = record.cells(trainee, stages, verified)
        if loaded is not None:
            row.host = loaded.host.name
            row.host_unreachable = down.get(row.host, "")
            if not row.host_unreachable:
                try:
                    if loaded.host.remote:
                        loaded.host.connect()  # its libvirt answers, within the host's deadline
                    row.isolated = is_isolated(loaded.host, lab)
                except HostError as exc:  # that host is down: its labs say so, the others are listed
                    row.host_unreachable = down[row.host] = exc.message
        return row

    def check(self, stage: str | None = None, reporter: Reporter | None = None) -> dict[str, Cell]:
        """Run ``stage``'s checks (default: the class's stage) on every trainee lab, a few at a time; read-only
        on the labs. The grid is updated with what was seen."""
        reporter = reporter or LogReporter()
        record = self.record()
        target = stage or record.stage
        scenario = load_scenario(record.scenario_path)
        scenario.stage(target)  # a UsageError naming the stages when it is not one
        (self.host).enter()  # threads made below inherit the network namespace

        def probe(trainee: str) -> Cell:
            try:
                return first_failure(self._lab(trainee).probe(target))
            except LabkitError as exc:  # a lab, or its whole host, that does not answer
                return Cell(UNREACHABLE, exc.message, now())

        reporter.start(record.trainees, 1)
        try:
            with ThreadPoolExecutor(max_workers=CHECK_PARALLEL) as pool:
                cells = dict(zip(record.trainees, pool.map(probe, record.trainees), strict=True))
            for trainee, cell in cells.items():
                reporter.step(trainee, cell.status + (f": {cell.detail}" if cell.detail else ""), 1)
        finally:
            reporter.finish()
        with self._locked("check"):
            fresh = self.record()
            for trainee, cell in cells.items():
                fresh.set_cell(trainee, target, cell)
            write_record(fresh)
        return cells

    # ---- one trainee, and the end ------------------------------------------------------------------

    def reset(self, trainee: str, snapshot: str, reporter: Reporter | None = None) -> ResetReport:
        """The trainer's reset of one trainee's lab; the grid forgets that trainee's later checks."""
        record = self.record()
        if trainee not in record.trainees:
            raise UsageError(
                f"class {self.name} has no trainee {trainee!r}", f"trainees: {', '.join(record.trainees)}"
            )
        report = self._lab(trainee).reset(snapshot, reporter)
        with self._locked("reset"):
            fresh = self.record()
            fresh.grid.pop(trainee, None)
            write_record(fresh)
        return report

    def destroy(self) -> dict[str, Removal]:
        """Every trainee lab and the golden lab, found by their records and by the class label on their
        domains on every reachable host of the pool (never by a name prefix); then the class record."""
        record = read_record(self.name)
        labelled, _ = labelled_labs(self.name, self.host)
        labs = set(labelled)
        if record is not None:
            labs |= {trainee_lab(self.name, t) for t in record.trainees} | {record.golden}
        labs.add(golden_lab(self.name))
        removed = {}
        with self._locked("destroy"):
            for lab in sorted(labs):  # each on the host its state records; one found in libvirt only: there
                recorded = LabPaths.for_lab(lab).state.exists()
                removed[lab] = destroy_by_name(lab, None if recorded else labelled.get(lab, self.host))
            record_path(self.name).unlink(missing_ok=True)
            remove_access(self.name)
            if record is not None and record.ksm_turned_on and not known_classes():
                capacity.turn_ksm_off()
        return removed

    # ---- trainee access ------------------------------------------------------------------------------

    def access_options(
        self,
        listen: str = DEFAULT_LISTEN,
        address: str | None = None,
        web_url: str = DEFAULT_WEB_URL,
        rotate: bool = False,
        bundle_dir: str | None = None,
    ) -> AccessOptions:
        """The options of :meth:`access`, checked with everything it needs (the class, each trainee's lab with
        its addresses and host keys, sshd, root) before anything is made."""
        options = AccessOptions(Listen.parse(listen), address, web_url, rotate, bundle_dir)
        check_options(options)
        trainee_labs(self.name, self.record().trainees)
        require_gateway_tools()
        return options

    def access(
        self,
        listen: str = DEFAULT_LISTEN,
        address: str | None = None,
        web_url: str = DEFAULT_WEB_URL,
        rotate: bool = False,
        bundle_dir: str | None = None,
    ) -> AccessReport:
        """Per trainee, an SSH bundle whose key reaches that trainee's nodes only, through the class gateway
        (an sshd labkit runs for the class in this host's network namespace); the key granted in the lab."""
        options = self.access_options(listen, address, web_url, rotate, bundle_dir)
        labs = trainee_labs(self.name, self.record().trainees)
        self.host.enter()  # the gateway must reach the labs' management networks
        with self._locked("access"):
            grantees = {lab.trainee: self._lab(lab.trainee) for lab in labs}
            return open_access(self.name, labs, options, grantees)


def host_resources(host: LibvirtHost) -> dict[str, Any]:
    return {
        "host": host.name,
        "ram_available_mib": capacity.ram_available_mib(),
        "disk_free_mib": free_bytes(host.pool_path) // 2**20 if host.pool_path.exists() else None,
        "ksm": capacity.ksm_state(),
    }


__all__ = ["ClassStatus", "ClassUpReport", "Classroom", "TraineeRow", "first_failure", "labs_of_class"]
