"""Check kinds against recorded command output (a fake connection replays what a node printed)."""

from __future__ import annotations

import pytest

from labkit.kinds.checks import (
    CommandArgs,
    CommandCheck,
    EtcdKey,
    EtcdKeyArgs,
    PortArgs,
    PortListening,
    ServiceArgs,
    ServiceStable,
    hint_text,
)
from labkit.model.scenario import Guide
from tests.unit.recorded import Out, Replay

SS = """LISTEN 0      4096   192.168.56.11:2379      0.0.0.0:*
LISTEN 0      4096       127.0.0.1:2379      0.0.0.0:*
LISTEN 0      128          0.0.0.0:22        0.0.0.0:*
"""


def test_service_stable() -> None:
    conn = Replay(Out("ActiveState=active\nNRestarts=0\n"), Out("ActiveState=active\nNRestarts=0\n"))
    ok, seen = ServiceStable(ServiceArgs(unit="etcd.service", stable_seconds=0)).probe(conn)
    assert ok and "restarts 0 -> 0" in seen


def test_service_restarting_is_not_stable() -> None:
    conn = Replay(Out("ActiveState=active\nNRestarts=3\n"), Out("ActiveState=active\nNRestarts=4\n"))
    ok, seen = ServiceStable(ServiceArgs(unit="flanneld.service", stable_seconds=0)).probe(conn)
    assert not ok and "3 -> 4" in seen


def test_service_inactive() -> None:
    ok, seen = ServiceStable(ServiceArgs(unit="etcd.service")).probe(Replay(Out("ActiveState=failed\n")))
    assert not ok and seen == "etcd.service is failed"


@pytest.mark.parametrize(("address", "ok"), [("192.168.56.11", True), (None, True), ("10.9.9.9", False)])
def test_port(address: str | None, ok: bool) -> None:
    assert PortListening(PortArgs(port=2379, address=address)).probe(Replay(Out(SS)))[0] is ok
    assert PortListening(PortArgs(port=2380)).probe(Replay(Out(SS))) == (False, "nothing on port 2380")


def test_command_sees_the_v2_off_error() -> None:
    error = (
        "Error:  client: response is invalid json. The endpoint is probably not valid etcd cluster endpoint"
    )
    ok, seen = CommandCheck(CommandArgs(run="etcdctl ls /")).probe(Replay(Out("", error, 4)))
    assert not ok and "invalid json" in seen and seen.startswith("exit 4")


def test_etcd_key_equal_json() -> None:
    args = EtcdKeyArgs(key="/coreos.com/network/config", api=2, equals={"Network": "10.0.0.0/16"})
    assert EtcdKey(args).probe(Replay(Out('{"Network": "10.0.0.0/16"}\n')))[0]
    assert not EtcdKey(args).probe(Replay(Out('{"Network": "10.1.0.0/16"}\n')))[0]
    conn = Replay(Out("", "Error: 100: Key not found", 4))
    assert EtcdKey(args).probe(conn) == (False, "v2 /coreos.com/network/config: Error: 100: Key not found")
    assert "ETCDCTL_API=2" in conn.commands[0]


def test_hint_language() -> None:
    hint = Guide(en="add --enable-v2=true", ja="--enable-v2=true を付ける")
    assert hint_text(hint, "ja") == "--enable-v2=true を付ける"
    assert hint_text(hint, "en") == "add --enable-v2=true"
    assert hint_text(Guide(en="only en"), "ja") == "only en"
