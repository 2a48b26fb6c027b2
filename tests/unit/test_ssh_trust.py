"""Timeouts in the scenario model, the lab's known_hosts and the ssh_config that uses it (no network)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from paramiko import Ed25519Key

from labkit.errors import ScenarioError
from labkit.kinds.checks import CheckResult
from labkit.kinds.compile import load_scenario
from labkit.machines.connections import HostKeyChanged, NodeHostKeys, NoHostKey
from labkit.machines.snapshots import SnapshotRecord
from labkit.machines.sshkeys import ssh_config_text
from labkit.model.scenario import CHECK_TIMEOUT, STEP_TIMEOUT
from labkit.paths import LabPaths

from .scenario_factory import scenario_data, write_scenario

# ---- timeout: on steps and checks -----------------------------------------------------------------------


def test_steps_and_checks_have_a_default_timeout(tmp_path: Path) -> None:
    scenario = load_scenario(write_scenario(tmp_path / "s", scenario_data()))
    stage = scenario.stages[0]
    assert stage.steps[0].timeout == STEP_TIMEOUT == 600
    assert stage.checks[0].timeout == CHECK_TIMEOUT == 120


def test_a_timeout_is_read_from_the_scenario(tmp_path: Path) -> None:
    data = scenario_data()
    data["stages"][0]["steps"][0]["timeout"] = 900
    data["stages"][0]["checks"][0]["timeout"] = 2.5
    stage = load_scenario(write_scenario(tmp_path / "s", data)).stages[0]
    assert (stage.steps[0].timeout, stage.checks[0].timeout) == (900, 2.5)


@pytest.mark.parametrize("value", [0, -5, "10m", True, 10**6, None])
@pytest.mark.parametrize("where", ["steps", "checks"])
def test_a_bad_timeout_is_refused_with_its_line(tmp_path: Path, where: str, value: Any) -> None:
    data = scenario_data()
    data["stages"][0][where][0]["timeout"] = value
    path = write_scenario(tmp_path / "s", data)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    problems = [str(p) for p in caught.value.problems]
    assert any(f"stages[0].{where}[0].timeout" in p and f"{path}:" in p for p in problems), problems


def test_an_unreachable_check_is_neither_pass_nor_fail_and_has_no_hint() -> None:
    seen = CheckResult("cni", "node2", False, "unreachable: no answer", unreachable=True)
    failed = CheckResult("cni", "node2", False, "subnet 10.0.3.0/24", hint="hand out this node's subnet")
    assert (seen.status, failed.status, CheckResult("c", "n", True, "").status) == (
        "unreachable",
        "fail",
        "pass",
    )
    assert seen.to_json()["status"] == "unreachable" and seen.to_json()["hint"] is None


# ---- known_hosts -------------------------------------------------------------------------------------------


def _key() -> Ed25519Key:
    return Ed25519Key.from_private_key_file(str(_keyfile()))


def _keyfile() -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def test_up_records_a_key_and_later_connections_need_that_key(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    first, other = _key(), _key()
    with pytest.raises(NoHostKey, match="no host key recorded"):
        NodeHostKeys(known).verify("node1", "10.0.0.5", first)  # never trusted blindly after up
    NodeHostKeys(known, record=True).verify("node1", "10.0.0.5", first)
    assert known.read_text().split() == ["node1", "ssh-ed25519", first.get_base64()]
    NodeHostKeys(known).verify("node1", "10.0.0.99", first)  # by node name: a new management IP is fine
    with pytest.raises(HostKeyChanged) as caught:
        NodeHostKeys(known, record=True).verify("node1", "10.0.0.5", other)  # recording never replaces
    message = str(caught.value)
    assert first.fingerprint in message and other.fingerprint in message
    assert f"remove the line for node1 from {known}" in message
    assert known.read_text().split()[2] == first.get_base64(), "the recorded key is unchanged"


def test_a_recreated_vm_has_its_old_key_forgotten(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    one, two, three = _key(), _key(), _key()
    NodeHostKeys(known, record=True).verify("node1", "a", one)
    NodeHostKeys(known, record=True).verify("node2", "b", two)
    NodeHostKeys(known).forget(["node1"])
    NodeHostKeys(known, record=True).verify("node1", "a", three)
    NodeHostKeys(known).verify("node2", "b", two)
    with pytest.raises(HostKeyChanged):
        NodeHostKeys(known).verify("node1", "a", one)


def test_ssh_config_checks_host_keys_by_node_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))
    lab = LabPaths.for_lab("a")
    text = ssh_config_text(lab, {"node1": "172.29.1.5"})
    assert f"UserKnownHostsFile {lab.known_hosts}" in text
    assert "HostKeyAlias node1" in text and "StrictHostKeyChecking yes" in text
    assert "/dev/null" not in text and "StrictHostKeyChecking no" not in text


def test_openssh_reads_the_recorded_key_under_the_alias(tmp_path: Path) -> None:
    key = _key()
    known = tmp_path / "known_hosts"
    NodeHostKeys(known, record=True).verify("node1", "x", key)
    found = subprocess.run(
        ["ssh-keygen", "-F", "node1", "-f", str(known)], capture_output=True, text=True, check=False
    )
    assert found.returncode == 0 and key.get_base64() in found.stdout


def test_a_snapshot_record_keeps_the_verified_stages() -> None:
    record = SnapshotRecord(name="etcd-ok", taken="t", stage="etcd", verified=True, verified_stages=["etcd"])
    back = SnapshotRecord.from_description("etcd-ok", record.to_description())
    assert back.verified_stages == ["etcd"]
    old = SnapshotRecord.from_description("x", 'labkit-snapshot {"name": "x", "taken": "t"}')
    assert old.verified_stages is None
