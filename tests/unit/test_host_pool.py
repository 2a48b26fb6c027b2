"""The host pool: its file, the names and URIs it takes (and the fix for those it refuses), `local` always in
it, and a host that keeps its labs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labkit.cli import app
from labkit.errors import UsageError
from labkit.hostsetup import pool
from labkit.hostsetup.pool import PoolHost, add_host, check_host_uri, labs_on, pool_hosts, remove_host
from labkit.paths import host_pool_file, labs_dir
from labkit.state import LabState

H2 = "qemu+ssh://root@10.251.0.2/system?keyfile=/k&no_tty=1"


@pytest.fixture(autouse=True)
def no_host_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never the machine's host mode: a CLI test must not enter its network namespace."""
    monkeypatch.setenv("LABKIT_RUN_DIR", str(tmp_path / "run"))


def lab_state(lab: str, **extra: object) -> None:
    data = {"lab": lab, "scenario": "three-node", **extra}
    path = labs_dir() / lab / "state.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))


def test_local_is_always_there_and_first() -> None:
    assert pool_hosts() == [PoolHost("local", "qemu:///system")]
    add_host("h2", H2, max_labs=3)
    assert [h.name for h in pool_hosts()] == ["local", "h2"]
    assert pool_hosts()[1] == PoolHost("h2", H2, 3)
    assert "local" not in host_pool_file().read_text()


@pytest.mark.parametrize(
    ("uri", "says", "fix"),
    [
        ("qemu:///system", "this machine's libvirt", "`local`"),
        ("qemu+tls://h2/system", "over SSH only (not qemu+tls)", "qemu+ssh://root@HOST/system"),
        ("h2", "over SSH only (not a bare address)", "qemu+ssh://root@HOST/system"),
        ("qemu+ssh:///system", "names no host", "qemu+ssh://root@HOST/system"),
        ("qemu+ssh://root@h2/session", "not a system libvirtd (path /session)", "/system"),
        ("qemu+ssh://root@h2", "not a system libvirtd (path missing)", "/system"),
    ],
)
def test_a_uri_labkit_cannot_use_is_refused_with_the_fix(uri: str, says: str, fix: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_host_uri(uri)
    assert says in caught.value.message
    assert caught.value.hint and fix in caught.value.hint
    assert "\n" not in str(caught.value)


def test_ssh_uris_with_user_port_and_parameters_are_taken() -> None:
    for uri in ("qemu+ssh://h2/system", "qemu+ssh://admin@h2.example:2222/system", H2):
        assert check_host_uri(uri) == uri


@pytest.mark.parametrize(("name", "says"), [("local", "always in the pool"), ("H2", "not a valid host name")])
def test_a_name_that_is_taken_or_malformed_is_refused(name: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        add_host(name, H2)


def test_a_host_is_added_once_by_name_and_by_uri() -> None:
    add_host("h2", H2)
    with pytest.raises(UsageError, match="already in the pool") as caught:
        add_host("h2", "qemu+ssh://other/system")
    assert caught.value.hint and "labkit hosts remove h2" in caught.value.hint
    with pytest.raises(UsageError, match="already in the pool as h2"):
        add_host("h3", H2)


def test_max_labs_is_one_or_more() -> None:
    with pytest.raises(UsageError, match="at least one lab"):
        add_host("h2", H2, max_labs=0)


def test_remove_is_refused_while_labs_live_there() -> None:
    add_host("h2", H2)
    lab_state("trainee1", host="h2")
    lab_state("trainee2", host="local")
    lab_state("old")  # written before the pool: local
    assert labs_on("h2") == ["trainee1"]
    assert labs_on("local") == ["old", "trainee2"]
    with pytest.raises(UsageError, match="host h2 still has 1 lab") as caught:
        remove_host("h2")
    assert caught.value.hint and "labkit destroy" in caught.value.hint
    (labs_dir() / "trainee1" / "state.json").unlink()
    assert remove_host("h2").uri == H2
    assert [h.name for h in pool_hosts()] == ["local"]


def test_local_and_unknown_hosts_cannot_be_removed() -> None:
    with pytest.raises(UsageError, match="cannot leave the pool"):
        remove_host("local")
    with pytest.raises(UsageError, match="no host 'h9'"):
        remove_host("h9")


def test_a_malformed_pool_file_says_where_it_is() -> None:
    host_pool_file().write_text('{"hosts": [{"name": "h2", "uri": "x", "max_labs": "three"}]}')
    with pytest.raises(UsageError, match="malformed") as caught:
        pool_hosts()
    assert caught.value.hint and str(host_pool_file()) in caught.value.hint


def test_a_lab_state_without_a_host_loads_as_local() -> None:
    old = {
        "lab": "x",
        "scenario": "s",
        "scenario_path": "p",
        "accel": "qemu",
        "accel_reason": "r",
        "management_network": "m",
        "management_cidr": "c",
        "lab_network": "l",
        "created_at": "t",
    }
    assert LabState.from_json(old).host == "local"
    assert LabState.from_json({**old, "host": "h2"}).to_json()["host"] == "h2"


def test_the_cli_refuses_a_bad_uri_in_one_line_and_removes_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["hosts", "add", "h2", "qemu+tcp://h2/system"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "qemu+ssh://root@HOST/system" in result.output
    result = runner.invoke(app, ["hosts", "remove", "local"])
    assert result.exit_code == 2 and "cannot leave the pool" in result.output
    monkeypatch.setattr(pool, "_read", lambda: [PoolHost("h2", H2)])
    monkeypatch.setattr(pool, "_write", lambda hosts: None)
    result = runner.invoke(app, ["hosts", "remove", "h2"])
    assert result.exit_code == 0 and "removed host h2" in result.output
