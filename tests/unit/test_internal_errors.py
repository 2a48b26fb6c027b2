"""A bug in labkit is an internal error, never "your check failed"; host errors are one line with a fix.

The lab is real on disk (state.json, lock, scenario in a temporary LABKIT_HOME); its nodes are fakes that
answer commands, and a check or step kind is replaced by one that raises the fault under test.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import paramiko
import pytest
from invoke.exceptions import UnexpectedExit
from invoke.runners import Result as InvokeResult
from typer.testing import CliRunner

from labkit.cli import app
from labkit.cli.failures import INTERNAL_ERROR_EXIT, host_error_line
from labkit.kinds import checks
from labkit.kinds.checks.base import Conn
from labkit.kinds.checks.service import ServiceStable
from labkit.kinds.compile import load_scenario
from labkit.kinds.steps.command import CommandStep
from labkit.lab import Lab
from labkit.lab.solving import run_stage
from labkit.paths import LabPaths
from labkit.state import LabState, NodeState, read_state, write_state

from .scenario_factory import scenario_data, write_scenario

HINT = "etcd must run on node1: systemctl start etcd"


@dataclass
class Out:
    exited: int = 0
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.exited == 0


class Node:
    """A node that answers every command with exit 0 (an active, stable unit for the service check)."""

    def __init__(self, answer: Out | None = None) -> None:
        self.answer = answer or Out(0, "active\n0\n0\n")

    def run(self, command: str, **kwargs: Any) -> Out:
        return self.answer

    def put(self, *args: Any, **kwargs: Any) -> None:
        return None

    def close(self) -> None:
        return None


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabPaths:
    """Lab ``t`` on disk with stage etcd verified; its nodes are :class:`Node` fakes; host mode off."""
    data = scenario_data()
    data["stages"][0]["checks"][0]["hint"] = HINT
    scenario = load_scenario(write_scenario(tmp_path / "s", data))
    state = LabState(
        lab="t",
        scenario=scenario.name,
        scenario_path=str(scenario.source),
        accel="qemu",
        accel_reason="r",
        management_network="m",
        management_cidr="172.29.9.0/24",
        lab_network="l",
        created_at="now",
        nodes={
            n: NodeState(name=n, domain=f"labkit-t-{n}", management_ip="192.0.2.1")
            for n in ("node1", "node2")
        },
        verified_stages=["etcd"],
    )
    paths = LabPaths.for_lab("t")
    write_state(paths.state, state)
    monkeypatch.setattr("labkit.hostsetup.hostmode.enter_host_namespace", lambda: None)
    monkeypatch.setattr(Lab, "_connection", lambda self, node, *a, **k: Node())
    return paths


def probe_raising(exc: BaseException) -> type[ServiceStable]:
    class Faulty(ServiceStable):
        def probe(self, conn: Conn) -> tuple[bool, str]:
            raise exc

    return Faulty


def verified(paths: LabPaths) -> list[str]:
    state = read_state(paths.state)
    assert state is not None
    return state.verified_stages


def test_a_bug_in_a_check_kind_is_an_internal_error_not_a_failed_check(
    lab: LabPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(checks.KINDS, "service", probe_raising(KeyError("unit")))
    before = lab.state.read_bytes()
    result = CliRunner().invoke(app, ["check", "etcd"])
    assert result.exit_code == INTERNAL_ERROR_EXIT, result.output
    assert result.stderr.strip() == (
        "error: internal error: KeyError: 'unit' (a bug in labkit; run again with --debug for the traceback "
        "and report it)"
    )
    assert HINT not in result.output
    assert "Traceback" not in result.output
    assert lab.state.read_bytes() == before  # the stage is still verified, nothing written
    assert verified(lab) == ["etcd"]


def test_debug_shows_the_internal_errors_traceback(lab: LabPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(checks.KINDS, "service", probe_raising(KeyError("unit")))
    result = CliRunner().invoke(app, ["--debug", "check", "etcd"])
    assert result.exit_code == INTERNAL_ERROR_EXIT
    assert "Traceback (most recent call last)" in result.stderr
    assert "in probe" in result.stderr  # the frame of the bug
    assert "internal error: KeyError: 'unit'" in result.stderr
    assert HINT not in result.output
    assert verified(lab) == ["etcd"]


def test_a_remote_error_is_still_a_failed_check_with_its_hint(
    lab: LabPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the node answered: the command ran and failed (invoke raises this when a run does not warn)
    failed = UnexpectedExit(
        InvokeResult(stdout="", stderr="unit etcd.service not found", exited=4, command="x")
    )
    monkeypatch.setitem(checks.KINDS, "service", probe_raising(failed))
    result = CliRunner().invoke(app, ["check", "etcd", "--json"])
    assert result.exit_code == 1, result.output
    assert HINT in result.stdout
    assert "UnexpectedExit" in result.stdout
    assert verified(lab) == []  # a real failure un-verifies the stage


def test_a_node_that_does_not_answer_is_unreachable_and_keeps_the_stage_verified(
    lab: LabPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(checks.KINDS, "service", probe_raising(ConnectionRefusedError(111, "refused")))
    result = CliRunner().invoke(app, ["check", "etcd", "--json"])
    assert '"status": "unreachable"' in result.stdout
    assert HINT not in result.stdout
    assert verified(lab) == ["etcd"]


def test_a_bug_in_a_step_kind_is_raised_not_a_failed_step(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    scenario = load_scenario(write_scenario(tmp_path / "s", scenario_data()))

    def apply(self: Any, conn: Any, ctx: Any) -> Any:
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setattr(CommandStep, "apply", apply)
    with pytest.raises(TypeError, match="unsupported operand"):
        run_stage(scenario, "etcd", {"node1": Node(), "node2": Node()})


def test_a_bug_in_a_step_kind_reaches_the_cli_as_an_internal_error(
    lab: LabPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    def apply(self: Any, conn: Any, ctx: Any) -> Any:
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setattr(CommandStep, "apply", apply)
    result = CliRunner().invoke(app, ["solve", "etcd"])
    assert result.exit_code == INTERNAL_ERROR_EXIT, result.output
    assert "error: internal error: TypeError: unsupported operand" in result.stderr
    assert "failed" not in result.output.lower()
    state = read_state(lab.state)
    assert state is not None
    assert state.solved_stages == []


def test_a_remote_error_in_a_step_is_a_failed_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = load_scenario(write_scenario(tmp_path / "s", scenario_data()))

    def apply(self: Any, conn: Any, ctx: Any) -> Any:
        raise paramiko.SSHException("Channel closed.")

    monkeypatch.setattr(CommandStep, "apply", apply)
    report = run_stage(scenario, "etcd", {"node1": Node(), "node2": Node()})
    assert report.failure is not None
    assert report.failure.status == "failed"
    assert "SSHException: Channel closed." in str(report.failure)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            errno.ENOSPC,
            "error: no space left on device writing {state}; fix: free space on that disk (df -h {dir}) "
            "and run the command again",
        ),
        (
            errno.EROFS,
            "error: read-only file system: cannot write {state}; fix: remount it read-write, or set "
            "LABKIT_HOME to a writable directory; then run the command again",
        ),
    ],
)
def test_a_state_write_on_a_full_or_read_only_disk_is_one_line_with_a_fix(
    lab: LabPaths, monkeypatch: pytest.MonkeyPatch, code: int, expected: str
) -> None:
    import os

    before = lab.state.read_bytes()

    def fsync(fd: int) -> None:  # what the kernel answers when the disk fills or goes read-only
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("labkit.state.os.fsync", fsync)
    result = CliRunner().invoke(app, ["check", "etcd"])
    assert result.exit_code == 3, result.output
    assert result.stderr.strip() == expected.format(state=lab.state, dir=lab.state.parent)
    assert "Traceback" not in result.output
    assert lab.state.read_bytes() == before  # the old state is intact
    assert [p.name for p in lab.state.parent.glob(".state-*")] == []  # no temporary file left


def test_libvirtd_not_answering_is_one_line(
    lab: LabPaths, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # a real libvirt error: a connection to a socket nobody listens on (no libvirtd, no VM involved)
    with pytest.raises(libvirt.libvirtError) as caught:
        libvirt.open(f"qemu+unix:///system?socket={tmp_path / 'absent-sock'}")

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise caught.value

    monkeypatch.setattr(Lab, "check", fail)
    result = CliRunner().invoke(app, ["check", "etcd"])
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: cannot reach libvirtd (")
    assert "absent-sock" in lines[0]
    assert lines[0].endswith("; fix: labkit doctor / labkit host up")


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (
            PermissionError(errno.EACCES, "Permission denied", "/srv/labkit/labs/t"),
            "permission denied on /srv",
        ),
        (
            FileNotFoundError(errno.ENOENT, "No such file", "/srv/x.yaml"),
            "no such file or directory: /srv/x.yaml",
        ),
        (paramiko.AuthenticationException("Authentication failed."), "SSH authentication to a node failed"),
        (paramiko.SSHException("Error reading SSH protocol banner"), "SSH to a node failed (SSHException"),
    ],
)
def test_host_errors_have_a_fix(exc: BaseException, words: str) -> None:
    found = host_error_line(exc)
    assert found is not None
    line, code = found
    assert words in line
    assert "; fix: " in line
    assert "\n" not in line
    assert code in (3, 4)


@pytest.mark.parametrize("bug", [KeyError("x"), TypeError("t"), AttributeError("a"), ValueError("v")])
def test_bugs_are_not_host_errors(bug: BaseException) -> None:
    assert host_error_line(bug) is None
