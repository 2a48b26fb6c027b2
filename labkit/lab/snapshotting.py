"""A lab's snapshot sets: take one of every VM (all or nothing), list, delete, and reset or retry to one, with
the guest clocks set again after the revert."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from labkit.errors import LabError, UsageError
from labkit.lab.core import BOOT_SSH_TIMEOUT, SSH_AFTER_REVERT_TIMEOUT, LabCore
from labkit.lab.reports import ResetReport
from labkit.machines.connections import REMOTE_ERRORS
from labkit.machines.domains import lab_domains
from labkit.machines.guest import grant_keys_script
from labkit.machines.snapshots import (
    SnapshotRecord,
    SnapshotSet,
    check_name,
    cleanup_sets,
    delete_set,
    disk_usage,
    find_set,
    list_sets,
    revert_set,
    take_set,
)
from labkit.machines.snapshots import now as snapshot_now
from labkit.progress import LogReporter, Reporter
from labkit.state import LabState, verified_after_reset


class LabSnapshots(LabCore):
    """Snapshot-set operations of a lab: every VM under one name, all or nothing."""

    # ---- snapshots -------------------------------------------------------------------------------------

    def _domains(self, conn: Any) -> dict[str, Any]:
        """Every node's domain, or a LabError naming the missing ones (before anything is changed)."""
        names = [n.name for n in self.scenario.nodes]
        domains = lab_domains(conn, self.name, names)
        missing = [n for n in names if n not in domains]
        if missing:
            raise LabError(
                f"lab {self.name} has no VM for {', '.join(missing)}",
                f"`labkit up {self.scenario.name} --name {self.name}` recreates it",
            )
        return {n: domains[n] for n in names}

    def snapshot(
        self,
        name: str,
        force: bool = False,
        stage: str | None = None,
        verified: bool = False,
        checks: list[dict[str, Any]] | None = None,
        disk_only: bool = False,
    ) -> SnapshotRecord:
        """Snapshot every VM under ``name``, all or nothing. ``disk_only``: shut the VMs down, snapshot their
        disks without memory (much less disk), boot them again and wait for SSH; a reset to it then boots."""
        check_name(name)
        conn = self.host.connect()
        with self._locked("snapshot"):
            state = self._require_state()
            stage = stage or state.current_stage
            # `labkit snapshot etcd-ok` right after `labkit check etcd` passed is a verified snapshot too
            verified = verified or (
                stage is not None and name == f"{stage}-ok" and stage in state.verified_stages
            )
            record = SnapshotRecord(
                name=name,
                taken=snapshot_now(),
                stage=stage,
                verified=verified,
                checks=checks or [],
                versions=self.scenario.versions.model_dump(exclude_none=True),
                disk_only=disk_only,
                verified_stages=[
                    s.name
                    for s in self.scenario.stages
                    if s.name in state.verified_stages or (verified and s.name == stage)
                ],
            )
            take_set(self._domains(conn), record, force=force)
            if disk_only:
                with ThreadPoolExecutor(max_workers=len(self.scenario.nodes)) as pool:
                    waits = [
                        pool.submit(self._fix_clock, n.name, LogReporter(), BOOT_SSH_TIMEOUT)
                        for n in self.scenario.nodes
                    ]
                for wait in waits:
                    wait.result()
        return record

    def snapshots(self) -> list[SnapshotSet]:
        return list_sets(lab_domains(self.host.connect(), self.name, [n.name for n in self.scenario.nodes]))

    def delete_snapshot(self, name: str) -> list[str]:
        conn = self.host.connect()
        with self._locked("snapshot delete"):
            return delete_set(self._domains(conn), name)

    def disk_usage(self) -> int:
        return disk_usage(lab_domains(self.host.connect(), self.name, [n.name for n in self.scenario.nodes]))

    def reset(self, name: str, reporter: Reporter | None = None) -> ResetReport:
        """Revert every VM to snapshot set ``name``, then set guest clocks from the (reverted) hardware clock
        and wait until every node answers SSH. Refused before touching any VM if one lacks the snapshot."""
        reporter = reporter or LogReporter()
        check_name(name)
        started = time.monotonic()
        conn = self.host.connect()
        with self._locked("reset"):
            state = self._require_state()
            domains = self._domains(conn)
            cleanup_sets(domains)  # leftovers of an interrupted snapshot or delete
            found = _set_on_every_node(domains, name)
            record = found.record
            reverted, offsets = self._revert_and_fix_clocks(domains, name, found, reporter, started)
            self._forget_after_revert(state, record)
            self._save()
        return ResetReport(
            name=name,
            stage=record.stage,
            seconds=time.monotonic() - started,
            revert_seconds=reverted,
            clock_offsets=offsets,
        )

    def _revert_and_fix_clocks(
        self, domains: dict[str, Any], name: str, found: SnapshotSet, reporter: Reporter, started: float
    ) -> tuple[float, dict[str, float]]:
        """Revert every VM to ``found`` in parallel, each node's clock fixed in its own revert thread. Returns
        the seconds from ``started`` to the last revert, and the clock offset of each node."""
        record = found.record
        reporter.start(list(domains), 3)
        reverted_at: dict[str, float] = {}
        offsets: dict[str, float] = {}

        def after_revert(node: str) -> None:
            # in the node's own revert thread: its SSH wait overlaps the other nodes' reverts
            reverted_at[node] = time.monotonic() - started
            reporter.step(node, "reverted; booting" if record.disk_only else "reverted; waiting for SSH", 1)
            timeout = BOOT_SSH_TIMEOUT if record.disk_only else SSH_AFTER_REVERT_TIMEOUT
            offsets[node] = self._fix_clock(node, reporter, timeout)

        try:
            revert_set(
                {node: dom.name() for node, dom in domains.items()},
                name,
                self.host.open,
                on_node=after_revert,
                snapshots=found.snapshots,
            )
        finally:
            reporter.finish()
        return max(reverted_at.values(), default=0.0), offsets

    def _forget_after_revert(self, state: LabState, record: SnapshotRecord) -> None:
        # the stages after the snapshot's are no longer solved (their additions are gone with the revert)
        state.reset_to(record.stage, [s.name for s in self.scenario.stages])
        # what was verified when the set was taken, not what was verified before this reset
        state.verified_stages = verified_after_reset(
            [s.name for s in self.scenario.stages],
            bool(record.taken),
            record.stage,
            record.verified,
            record.verified_stages,
        )

    def _fix_clock(self, node: str, reporter: Reporter, timeout: float = SSH_AFTER_REVERT_TIMEOUT) -> float:
        """SSH connections do not survive a revert and the guest clock stays at snapshot time: reconnect (the
        new tap port forwards at once with STP off) and run ``hwclock --hctosys``; return the clock offset."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self._connection(node) as conn:
                    result = conn.run(f"sudo hwclock --hctosys && {self._after_revert()}date +%s.%N")
                    host_now = time.time()
                break
            except REMOTE_ERRORS as exc:  # sshd not answering yet: refused, no banner, reset, timed out
                if time.monotonic() > deadline:
                    raise LabError(
                        f"{node} did not answer SSH within {timeout:.0f} s after the revert "
                        f"(last error: {type(exc).__name__}: {exc})",
                        "`labkit reset` again, or `labkit status`",
                    ) from None
                time.sleep(0.5)
        if not result.ok:
            raise LabError(f"{node}: hwclock --hctosys failed: {result.stderr.strip()}")
        offset = float(result.stdout.strip().splitlines()[-1]) - host_now
        reporter.step(node, f"clock set (offset {offset:+.1f} s)", 3)
        return offset

    def _after_revert(self) -> str:
        """Granted keys written again (the snapshot's disk may predate them), as a command prefix."""
        if self.state is None or not self.state.granted_keys:
            return ""
        return f"{{ {grant_keys_script(self.state.granted_keys)}; }} && "

    def retry(self, stage: str, reporter: Reporter | None = None) -> ResetReport:
        """Reset to the snapshot of the stage before ``stage`` so the trainee can do ``stage`` again."""
        names = [s.name for s in self.scenario.stages]
        target = self.scenario.stage(stage)
        index = names.index(target.name)
        nodes = [n.name for n in self.scenario.nodes]
        sets = {s.record.name: s for s in self.snapshots()}
        for previous in reversed(self.scenario.stages[:index]):
            found = sets.get(previous.snapshot_name)
            if found is None:
                continue
            if found.record.verified and found.record.stage == previous.name and found.complete(nodes):
                return self.reset(previous.snapshot_name, reporter)
            # the nearest one is not verified: never reset silently to it, nor further back than it
            raise UsageError(
                f"snapshot {found.record.name} is not verified (not taken after the {previous.name} checks "
                "passed, or missing on some VM): retry does not go back to it",
                f"`labkit check {previous.name}` then `labkit snapshot {found.record.name} --force`; or "
                f"`labkit reset {found.record.name}` to go there anyway",
            )
        raise UsageError(
            f"no verified snapshot of a stage before {stage} (looked for "
            f"{', '.join(s.snapshot_name for s in reversed(self.scenario.stages[:index])) or 'none'})",
            "solve and check the earlier stages first, or `labkit reset NAME` to a snapshot of your own",
        )


def _set_on_every_node(domains: dict[str, Any], name: str) -> SnapshotSet:
    """Set ``name`` as it stands; a UsageError, before any VM is touched, if a node lacks its snapshot."""
    found = find_set(domains, name)
    lacking = [node for node in domains if found is None or node not in found.snapshots]
    if found is None or lacking:
        raise UsageError(
            f"snapshot {name} is missing on {', '.join(lacking)}: nothing was reverted",
            "see `labkit snapshots`",
        )
    return found
