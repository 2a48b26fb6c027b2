"""What every lab operation stands on: the lab's scenario, name, directory, state and host; the lock under
which its state is read and written; SSH connections to its nodes that accept only their recorded host keys."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labkit.errors import UsageError
from labkit.hostsetup.pool import LOCAL, lab_host
from labkit.lab.names import check_lab_name
from labkit.lock import lab_lock
from labkit.machines.libvirt_host import LibvirtHost
from labkit.machines.vagrant_keys import insecure_private_key
from labkit.model.scenario import Scenario
from labkit.paths import LabPaths
from labkit.state import LabState, read_state, write_state

MGMT_IP_TIMEOUT = 120.0
SSH_AFTER_REVERT_TIMEOUT = 90.0
BOOT_SSH_TIMEOUT = 420.0  # an emulated VM boots in ~40 s alone, several together share the host's cores


class LabCore:
    """A lab's identity and state, its lock, and connections to its nodes. Its host is the one given, else
    the one its state records (a host of the pool), else this machine."""

    def __init__(
        self, scenario: Scenario, name: str, state: LabState | None = None, host: LibvirtHost | None = None
    ) -> None:
        self.scenario = scenario
        self.name = check_lab_name(name)
        self.paths = LabPaths.for_lab(name)
        self.state = state
        self.host = host or lab_host(self.name, state.host if state is not None else LOCAL)

    def _save(self) -> None:
        assert self.state is not None
        write_state(self.paths.state, self.state)

    @contextlib.contextmanager
    def _locked(self, action: str) -> Iterator[None]:
        """The lab's lock, with the state read again under it: another command may have changed state.json
        since this Lab was loaded, and every read-modify-write of it happens inside."""
        with lab_lock(self.paths.lock, self.name, action):
            fresh = read_state(self.paths.state)
            if fresh is not None:
                self.state = fresh
            yield

    def _keys(self) -> list[Path]:
        """The lab's key first; Vagrant's insecure key while a fresh VM still only accepts that one."""
        keys = [self.paths.ssh_key]
        insecure = insecure_private_key()
        if insecure is not None:
            keys.append(insecure)
        return keys

    # ---- using it ------------------------------------------------------------------------------------

    def _require_state(self) -> LabState:
        if self.state is None or not any(n.management_ip for n in self.state.nodes.values()):
            raise UsageError(
                f"lab {self.name} is not up", f"run `labkit up {self.scenario.name} --name {self.name}`"
            )
        return self.state

    def _host_keys(self, record: bool = False) -> Any:
        from labkit.machines.connections import NodeHostKeys

        return NodeHostKeys(self.paths.known_hosts, record=record)

    def _connection(self, node: str, keys: list[Path] | None = None, record_host_key: bool = False) -> Any:
        """A connection to ``node`` that accepts only the host key recorded at ``labkit up``."""
        from labkit.machines.connections import connect

        self.host.enter()
        state = self._require_state()
        if node not in state.nodes:
            raise UsageError(f"lab {self.name} has no node {node!r}", f"nodes: {', '.join(state.nodes)}")
        ip = state.nodes[node].management_ip
        assert ip is not None
        return connect(
            ip,
            keys or [self.paths.ssh_key],
            node=node,
            known_hosts=self._host_keys(record_host_key),
            gateway=self.host.gateway() if self.host.remote else None,
        )

    def run(self, node: str, command: str) -> Any:
        """Run a shell command on a node as the vagrant user (``sudo`` inside for root); returns fabric's Result."""
        with self._connection(node) as conn:
            return conn.run(command)

    # ---- who else may log in -------------------------------------------------------------------------

    def grant_key(self, label: str, public_key: str) -> None:
        """Let ``public_key`` log in to every node as the vagrant user, under ``label`` (a new key for the same
        label replaces the old one). Kept in the lab's state and written again after every revert."""
        from labkit.machines.guest import granted_key_line

        granted_key_line(label, public_key)  # a ValueError before anything changes
        with self._locked("grant key"):
            state = self._require_state()
            state.granted_keys[label] = public_key.strip()
            self._save()
            for node in state.nodes:
                self._write_granted_keys(node)

    def _write_granted_keys(self, node: str) -> None:
        from labkit.errors import LabError
        from labkit.machines.guest import grant_keys_script

        assert self.state is not None
        with self._connection(node) as conn:
            result = conn.run(grant_keys_script(self.state.granted_keys))
        if not result.ok:
            raise LabError(f"{node}: writing the granted SSH keys failed: {result.stderr.strip()}")
