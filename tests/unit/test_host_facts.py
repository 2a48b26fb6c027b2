"""What a host offers, read within a deadline: a host that hangs or fails is reported unreachable with the
reason, never raised, and never delays the others. libvirt is faked here; tests/integration uses a real one."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import libvirt
import pytest
from typer.testing import CliRunner

from labkit.cli import app
from labkit.errors import HostError
from labkit.machines.host_facts import accelerator_offered, ram_from_stats, read_facts, visit_hosts
from labkit.machines.libvirt_host import LibvirtHost
from labkit.machines.reach import is_remote, noninteractive, open_within

CAPS = """<capabilities><host><uuid>u</uuid></host>
<guest><os_type>hvm</os_type><arch name='x86_64'><domain type='qemu'/>{kvm}</arch></guest></capabilities>"""
GIB = 2**30


class FakeNet:
    def __init__(self, name: str) -> None:
        self._name = name

    def name(self) -> str:
        return self._name


class FakeDomain:
    def __init__(self, description: str) -> None:
        self.description = description

    def XMLDesc(self, flags: int) -> str:
        return f"<domain><name>d</name><description>{self.description}</description></domain>"


class FakePool:
    def info(self) -> list[int]:
        return [2, 100 * GIB, 30 * GIB, 70 * GIB]


class FakeConn:
    closed = False

    def getMemoryStats(self, cell: int, flags: int) -> dict[str, int]:
        return {"total": 8 * 2**20, "free": 2**20, "buffers": 2**19, "cached": 2**19}

    def getCapabilities(self) -> str:
        return CAPS.format(kvm="<domain type='kvm'/>")

    def storagePoolLookupByName(self, name: str) -> FakePool:
        if name != "default":
            raise libvirt.libvirtError(f"no storage pool {name}")
        return FakePool()

    def listAllNetworks(self, flags: int) -> list[FakeNet]:
        return [FakeNet("labkit-ci-three-mgmt"), FakeNet("default")]

    def listAllDomains(self, flags: int) -> list[FakeDomain]:
        return [FakeDomain("labkit lab=trainee1 scenario=s node=n1"), FakeDomain("someone else's")]

    def close(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def no_host_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never the machine's host mode: a CLI test must not enter its network namespace."""
    monkeypatch.setenv("LABKIT_RUN_DIR", str(tmp_path / "run"))


@pytest.fixture
def hosts(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """libvirt.open faked: 'ok' answers, 'broken' fails at once, 'hang' blocks until released."""
    release = threading.Event()
    opened: list[str] = []

    def fake_open(uri: str) -> FakeConn:
        opened.append(uri)
        if "hang/system" in uri:
            release.wait(30)
            return FakeConn()
        if "broken/system" in uri or uri.startswith("qemu:///"):
            raise libvirt.libvirtError(
                "Cannot recv data: Host key verification failed.\nConnection reset by peer"
            )
        return FakeConn()

    monkeypatch.setattr(libvirt, "open", fake_open)
    yield {"opened": opened}
    release.set()


def test_the_accelerator_is_what_libvirt_offers() -> None:
    assert accelerator_offered(CAPS.format(kvm="<domain type='kvm'/>")) == "kvm"
    assert accelerator_offered(CAPS.format(kvm="")) == "qemu"


def test_free_ram_counts_buffers_and_page_cache() -> None:
    assert ram_from_stats({"total": 4, "free": 1, "buffers": 1, "cached": 1}) == (3 * 1024, 4 * 1024)
    assert ram_from_stats({}) == (None, None)


def test_the_facts_of_a_host_that_answers() -> None:
    facts = read_facts(LibvirtHost("h2", "qemu+ssh://h2/system"), FakeConn())
    assert facts.reachable and facts.accelerator == "kvm"
    assert (facts.ram_free, facts.ram_total) == (2 * GIB, 8 * GIB)
    assert facts.disk_free == 70 * GIB
    assert facts.labs == ("ci-three", "trainee1")  # from networks and domain labels; others' domains ignored
    assert read_facts(LibvirtHost("h2", "u", pool="gone"), FakeConn()).disk_free is None


def test_a_hung_or_failing_host_is_reported_and_never_holds_the_others(hosts: dict[str, Any]) -> None:
    targets = [LibvirtHost(n, f"qemu+ssh://{n}/system") for n in ("hang", "broken", "ok")]
    started = time.monotonic()
    facts = visit_hosts(targets, timeout=1.0)
    assert time.monotonic() - started < 1.8
    assert [f.name for f in facts] == ["hang", "broken", "ok"]
    hang, broken, ok = facts
    assert not hang.reachable and hang.reason == "no answer within 1 s"
    assert not broken.reachable
    assert broken.reason == "Cannot recv data: Host key verification failed. Connection reset by peer"
    assert ok.reachable and ok.labs == ("ci-three", "trainee1")
    assert all(uri.endswith("/system?no_tty=1") for uri in hosts["opened"])  # ssh never prompts


def test_a_remote_host_that_does_not_answer_raises_a_short_error_in_time(hosts: dict[str, Any]) -> None:
    started = time.monotonic()
    with pytest.raises(HostError, match="host hang is unreachable: no answer within 1 s") as caught:
        LibvirtHost("hang", "qemu+ssh://hang/system", connect_timeout=1.0).open()
    assert time.monotonic() - started < 1.8
    assert caught.value.hint and "virsh -c 'qemu+ssh://hang/system' version" in caught.value.hint
    with pytest.raises(HostError, match="host broken is unreachable: Cannot recv data"):
        open_within("qemu+ssh://broken/system", 5.0, "broken")


def test_uris() -> None:
    assert is_remote("qemu+ssh://root@h2/system") and not is_remote("qemu:///system")
    assert noninteractive("qemu+ssh://h2/system") == "qemu+ssh://h2/system?no_tty=1"
    assert noninteractive("qemu+ssh://h2/system?keyfile=/k") == "qemu+ssh://h2/system?keyfile=/k&no_tty=1"
    assert noninteractive("qemu+ssh://h2/system?no_tty=0") == "qemu+ssh://h2/system?no_tty=0"
    assert noninteractive("qemu:///system") == "qemu:///system"


def test_hosts_list_shows_a_down_host_and_still_exits_0(hosts: dict[str, Any]) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["hosts", "add", "h2", "qemu+ssh://root@ok/system", "--max-labs", "2"])
    assert result.exit_code == 0, result.output
    assert "reachable, kvm, 2.0 GiB RAM free, 70.0 GiB free in pool default, 2 lab(s)" in result.output
    result = runner.invoke(app, ["hosts", "add", "h3", "qemu+ssh://root@hang/system", "--timeout", "1"])
    assert result.exit_code == 0 and "unreachable: no answer within 1 s" in result.output
    assert "warning: host h3 does not answer now" in result.output
    result = runner.invoke(app, ["hosts", "list", "--json", "--timeout", "1"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert list(rows) == ["local", "h2", "h3"]
    assert not rows["local"]["reachable"] and "Host key verification failed" in rows["local"]["reason"]
    assert rows["h2"]["reachable"] and rows["h2"]["max_labs"] == 2 and rows["h2"]["disk_free"] == 70 * GIB
    assert rows["h3"]["reason"] == "no answer within 1 s"
    result = runner.invoke(app, ["hosts", "list", "--timeout", "1"])
    assert result.exit_code == 0 and "h3: unreachable: no answer within 1 s" in result.output
