"""The libvirt host as a value: what it enters, when it opens a connection again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labkit.errors import HostError
from labkit.machines import libvirt_host
from labkit.machines.libvirt_host import LibvirtHost, Netns


class FakeConnection:
    def __init__(self) -> None:
        self.alive = True
        self.far_side_gone = False
        self.closed = False

    def isAlive(self) -> int:
        return int(self.alive)

    def getLibVersion(self) -> int:
        if self.far_side_gone:
            raise OSError("Cannot write data: Broken pipe")
        return 9000000

    def close(self) -> None:
        self.closed = True


def test_the_local_host_without_host_mode_enters_nothing() -> None:
    host = LibvirtHost()
    assert host.name == "local" and host.uri == "qemu:///system" and host.pool == "default"
    assert not host.host_mode
    assert host.enter() is None


def test_a_gone_namespace_is_refused_with_the_fix(tmp_path: Path) -> None:
    host = LibvirtHost(netns=Netns("labkit", tmp_path / "gone", tmp_path / "host.json"))
    assert host.host_mode
    with pytest.raises(HostError) as caught:
        host.enter()
    assert "network namespace 'labkit' is gone" in caught.value.message
    assert str(tmp_path / "host.json") in caught.value.message
    assert caught.value.hint and "labkit host up" in caught.value.hint


def test_connect_keeps_one_connection_and_replaces_a_dead_one(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[FakeConnection] = []

    def fake_connect(uri: str, timeout: float, name: str) -> Any:
        assert (uri, timeout, name) == ("qemu+ssh://root@h2/system", 20.0, "h2")  # a remote host: a deadline
        opened.append(FakeConnection())
        return opened[-1]

    monkeypatch.setattr(libvirt_host, "open_within", fake_connect)
    host = LibvirtHost(name="h2", uri="qemu+ssh://root@h2/system")
    first = host.connect()
    assert host.connect() is first and len(opened) == 1
    first.alive = False  # libvirtd restarted: the old connection is gone
    second = host.connect()
    assert second is not first and len(opened) == 2
    second.far_side_gone = True  # still "alive" to libvirt, but the first call would fail
    third = host.connect()
    assert third is not second and len(opened) == 3
    assert host.open() is not third  # a connection of its own, for a thread
    host.close()
    assert third.closed
