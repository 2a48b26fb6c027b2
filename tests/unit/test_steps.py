"""Step kinds without SSH: argument validation, arg templating, and the commands systemd/etcd steps send."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import pytest

from labkit.errors import UsageError
from labkit.kinds.steps import KINDS, StepArgsError, build
from labkit.kinds.steps.base import StepContext, StepFailed
from labkit.kinds.templating import render_args
from labkit.model.scenario import Step


def step(kind: str, args: dict[str, Any], name: str = "s1") -> Step:
    return Step(name=name, kind=kind, args=args)


@dataclass
class Out:
    exited: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass
class FakeConn:
    """Records every command; answers the first matching (regex, Out) pair, else exit 0 with no output."""

    answers: list[tuple[str, Out]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    puts: list[str] = field(default_factory=list)

    def run(self, command: str, **kwargs: Any) -> Out:
        self.commands.append(command)
        for pattern, out in self.answers:
            if re.search(pattern, command):
                return out
        return Out()

    def put(self, local: Any, remote: str | None = None, **kwargs: Any) -> None:
        assert remote is not None
        self.puts.append(remote)


def test_registry_has_the_kinds() -> None:
    assert set(KINDS) == {"file", "command", "systemd", "artifact", "etcd_put", "image"}


@pytest.mark.parametrize(
    ("kind", "args", "words"),
    [
        ("file", {"path": "/etc/x", "content": "a", "colour": "red"}, ["'colour'", "Extra inputs"]),
        ("file", {"path": "etc/x", "content": "a"}, ["'path'", "absolute"]),
        ("file", {"path": "/etc/x"}, ["exactly one of content or template"]),
        ("file", {"path": "/etc/x", "content": "a", "mode": "0999"}, ["'mode'", "octal"]),
        ("file", {"path": "/etc/x", "template": "../x.j2"}, ["'template'", "relative"]),
        ("command", {"creates": "/x"}, ["'run'", "required"]),
        ("systemd", {"unit": "etcd"}, ["'unit'", "etcd.service"]),
        ("systemd", {"unit": "etcd.service", "state": "running"}, ["'state'"]),
        ("etcd_put", {"key": "/k", "value": [1], "api": 2}, ["'value'"]),
        ("etcd_put", {"key": "/k", "value": {}, "api": 4}, ["'api'"]),
        ("etcd_put", {"key": "k", "value": {}}, ["'key'", "start with '/'"]),
        ("artifact", {"nam": "etcd"}, ["'name'", "'nam'"]),
    ],
)
def test_bad_args_name_stage_step_and_arg(kind: str, args: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(StepArgsError) as err:
        build("flannel", step(kind, args, name="net"))
    text = str(err.value)
    assert f"stage flannel, step net ({kind})" in text
    for word in words:
        assert word in text
    assert err.value.exit_code == 2


def test_unknown_kind_lists_kinds() -> None:
    with pytest.raises(StepArgsError, match=r"unknown step kind 'copy'.*kinds: artifact, command"):
        build("x", step("copy", {}))


def test_mode_forms() -> None:
    for mode in ("0640", "640", 0o640):
        assert build("x", step("file", {"path": "/a", "content": "", "mode": mode})).args.mode == 0o640


def test_render_args_walks_and_is_strict() -> None:
    got = render_args(
        {"a": "{{ x }}", "b": ["{{ node.ip }}", 3], "c": {"d": "plain"}}, {"x": 1, "node": {"ip": "1.2.3.4"}}
    )
    assert got == {"a": "1", "b": ["1.2.3.4", 3], "c": {"d": "plain"}}
    with pytest.raises(UsageError, match="'y' is undefined"):
        render_args("{{ y }}", {})


# ---- systemd: command construction --------------------------------------------------------------------------

UNIT = "[Unit]\nDescription=etcd\n[Service]\nExecStart=/usr/bin/etcd\n"


def systemd(args: dict[str, Any]) -> Any:
    return build("etcd", step("systemd", {"unit": "etcd.service", **args}, name="etcd-unit"))


def active(enabled: bool, running: bool, unit_sha: str | None = None) -> list[tuple[str, Out]]:
    answers = [
        (r"is-enabled", Out(0 if enabled else 1, "enabled\n" if enabled else "disabled\n")),
        (r"is-active", Out(0 if running else 3, "active\n" if running else "inactive\n")),
    ]
    if unit_sha is not None:
        answers.append((r"sha256sum", Out(0, f"{unit_sha}\nroot root 644\n")))
    return answers


def test_systemd_new_unit_writes_reloads_enables_starts() -> None:
    conn = FakeConn([*active(False, False), (r"sha256sum", Out(0, "MISSING\n"))])
    result = systemd({"content": UNIT, "enabled": True, "state": "started"}).apply(conn, StepContext("node1"))
    assert result.status == "changed"
    cmds = "\n".join(conn.commands)
    # staged in the login home (kept 0700 by the node set-up), never in world-readable /tmp
    assert conn.puts and conn.puts[0].startswith(".labkit-upload-")
    assert "/etc/systemd/system/etcd.service" in cmds
    order = [c for c in conn.commands if "daemon-reload" in c or re.search(r"systemctl (enable|start)", c)]
    assert [("daemon-reload" in c, "enable" in c, "start" in c) for c in order] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]
    assert all(c.startswith("sudo -n sh -c ") for c in conn.commands)


def test_systemd_converged_is_ok_and_runs_nothing() -> None:
    import hashlib

    sha = hashlib.sha256(UNIT.encode()).hexdigest()
    conn = FakeConn(active(True, True, sha))
    result = systemd({"content": UNIT, "enabled": True, "state": "restarted"}).apply(
        conn, StepContext("node1")
    )
    assert result.status == "ok"
    assert not conn.puts
    assert not [c for c in conn.commands if re.search(r"systemctl (daemon-reload|enable|start|restart)", c)]


def test_systemd_restarts_when_notified_by_a_changed_step() -> None:
    conn = FakeConn(active(True, True))
    ctx = StepContext("node1", changed={"flanneld-conf"})
    result = systemd({"state": "restarted", "restart_on": ["flanneld-conf"]}).apply(conn, ctx)
    assert result.status == "changed" and "restart" in result.message
    assert any("systemctl restart etcd.service" in c for c in conn.commands)
    plan = systemd({"state": "restarted", "restart_on": ["other"]}).plan(FakeConn(active(True, True)), ctx)
    assert not plan.changed


def test_systemd_stop_and_disable_and_failure_tail() -> None:
    conn = FakeConn([*active(True, True), (r"systemctl stop", Out(1, "", "Failed to stop etcd.service\n"))])
    with pytest.raises(StepFailed) as err:
        systemd({"enabled": False, "state": "stopped"}).apply(conn, StepContext("node1"))
    assert any("systemctl disable etcd.service" in c for c in conn.commands)
    assert err.value.command == "systemctl stop etcd.service"
    assert "Failed to stop" in err.value.output


def test_values_reaching_the_shell_are_quoted() -> None:
    conn = FakeConn([(r"get", Out(4, "", "Error:  100: Key not found"))])
    kind = build(
        "x",
        step(
            "etcd_put", {"key": "/a b;rm -rf /", "value": {"k": "it's"}, "api": 2, "endpoint": "http://e:1"}
        ),
    )
    assert kind.apply(conn, StepContext("n")).status == "changed"
    sudo_argv = shlex.split(conn.commands[-1])
    assert sudo_argv[:4] == ["sudo", "-n", "sh", "-c"]
    assert shlex.split(sudo_argv[4])[-3:] == ["set", "/a b;rm -rf /", '{"k": "it\'s"}']
