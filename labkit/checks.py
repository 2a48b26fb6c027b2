"""Check kinds: read-only probes of a node that return what they saw (they never assert, never change).

A stage's ``checks`` are run by :func:`run_checks` on the nodes each selects, in parallel. A failed check
carries what it saw and the stage author's hint, in the trainee's language.
"""

from __future__ import annotations

import json
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from labkit.errors import UsageError
from labkit.provision.steps import render_args
from labkit.scenario import Check, Guide, Scenario, Stage


class CheckArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class CheckResult:
    check: str
    node: str
    ok: bool
    seen: str
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _run(conn: Any, command: str) -> Any:
    return conn.run(f"sudo -n sh -c {shlex.quote(command)}")


class CheckKind:
    kind: ClassVar[str]
    args_model: ClassVar[type[CheckArgs]]

    def __init__(self, args: CheckArgs) -> None:
        self.args = args

    def probe(self, conn: Any) -> tuple[bool, str]:
        raise NotImplementedError


class ServiceArgs(CheckArgs):
    unit: str
    stable_seconds: float = 3.0


class ServiceStable(CheckKind):
    """Active now and still active ``stable_seconds`` later with no restart in between (the course's "run
    systemctl status several times"): a unit in a crash loop is active half of the time."""

    kind = "service"
    args_model = ServiceArgs
    args: ServiceArgs

    def _state(self, conn: Any) -> tuple[str, str]:
        out = _run(conn, f"systemctl show -p ActiveState -p NRestarts {shlex.quote(self.args.unit)}").stdout
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return values.get("ActiveState", "unknown"), values.get("NRestarts", "?")

    def probe(self, conn: Any) -> tuple[bool, str]:
        first, restarts_before = self._state(conn)
        if first != "active":
            return False, f"{self.args.unit} is {first}"
        time.sleep(self.args.stable_seconds)
        second, restarts_after = self._state(conn)
        seen = f"{self.args.unit} {first} -> {second}, restarts {restarts_before} -> {restarts_after}"
        return second == "active" and restarts_before == restarts_after, seen


class CommandArgs(CheckArgs):
    run: str
    exit: int = 0
    output_contains: str | None = None


class CommandCheck(CheckKind):
    """A command's exit code (and optionally a string in its output)."""

    kind = "command"
    args_model = CommandArgs
    args: CommandArgs

    def probe(self, conn: Any) -> tuple[bool, str]:
        result = _run(conn, self.args.run)
        output = (result.stdout + result.stderr).strip()
        tail = output.splitlines()[-1] if output else ""
        ok = result.exited == self.args.exit
        if self.args.output_contains is not None:
            ok = ok and self.args.output_contains in output
        return ok, f"exit {result.exited}" + (f": {tail[:200]}" if tail else "")


class PortArgs(CheckArgs):
    port: int
    address: str | None = None


class PortListening(CheckKind):
    """A TCP port listening, on a given address (or any)."""

    kind = "port"
    args_model = PortArgs
    args: PortArgs

    def probe(self, conn: Any) -> tuple[bool, str]:
        listening = []
        for line in _run(conn, "ss -ltnH").stdout.splitlines():
            fields = line.split()
            if len(fields) >= 4:
                address, _, port = fields[3].rpartition(":")
                if port == str(self.args.port):
                    listening.append(address.strip("[]"))
        wanted = self.args.address
        ok = bool(listening) and (
            wanted is None or wanted in listening or any(a in ("*", "0.0.0.0") for a in listening)
        )
        seen = (
            f"port {self.args.port} on {', '.join(listening)}"
            if listening
            else f"nothing on port {self.args.port}"
        )
        return ok, seen


class EtcdKeyArgs(CheckArgs):
    key: str
    api: Literal[2, 3] = 3
    endpoint: str = "http://127.0.0.1:2379"
    equals: dict[str, Any] | None = None


class EtcdKey(CheckKind):
    """An etcd key present (and equal, as JSON) through the v2 or v3 API, as the flannel version needs."""

    kind = "etcd_key"
    args_model = EtcdKeyArgs
    args: EtcdKeyArgs

    def probe(self, conn: Any) -> tuple[bool, str]:
        a = self.args
        read = "get" if a.api == 2 else "get --print-value-only"
        command = (
            f"ETCDCTL_API={a.api} etcdctl --endpoints {shlex.quote(a.endpoint)} {read} {shlex.quote(a.key)}"
        )
        result = _run(conn, command)
        output = (result.stdout + result.stderr).strip()
        if result.exited != 0 or not result.stdout.strip():
            return False, f"v{a.api} {a.key}: {output.splitlines()[-1] if output else 'absent'}"
        if a.equals is None:
            return True, f"v{a.api} {a.key} present"
        try:
            value = json.loads(result.stdout.strip())
        except ValueError:
            return False, f"v{a.api} {a.key} is not JSON: {result.stdout.strip()[:200]}"
        return value == a.equals, f"v{a.api} {a.key} = {json.dumps(value)}"


KINDS: dict[str, type[CheckKind]] = {k.kind: k for k in (ServiceStable, CommandCheck, PortListening, EtcdKey)}


def build(stage: Stage, check: Check, args: dict[str, Any] | None = None) -> CheckKind:
    where = f"stage {stage.name}, check {check.name} ({check.kind})"
    try:
        cls = KINDS[check.kind]
    except KeyError:
        raise UsageError(
            f"{where}: unknown check kind {check.kind!r}", f"kinds: {', '.join(sorted(KINDS))}"
        ) from None
    try:
        return cls(cls.args_model.model_validate(check.args if args is None else args))
    except ValidationError as exc:
        problems = "; ".join(
            f"arg {'.'.join(str(p) for p in e['loc']) or 'args'!r}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise UsageError(
            f"{where}: {problems}", f"{check.kind} takes: {', '.join(cls.args_model.model_fields)}"
        ) from None


def hint_text(hint: Guide | str | None, lang: str) -> str | None:
    if hint is None or isinstance(hint, str):
        return hint
    return (hint.ja if lang == "ja" else hint.en) or hint.en or hint.ja


def run_checks(
    scenario: Scenario,
    stage: Stage,
    connections: dict[str, Any],
    context: dict[str, Any],
    lang: str = "en",
) -> list[CheckResult]:
    """Every check of ``stage`` on its nodes, nodes in parallel; results in scenario order."""
    for check in stage.checks:
        build(stage, check)  # every kind and argument valid before any probe
    jobs = [(check, node) for check in stage.checks for node in scenario.select(check.on)]

    def probe(job: tuple[Check, Any]) -> CheckResult:
        check, node = job
        variables = {**context, "node": {"name": node.name, "ip": node.ip, "roles": list(node.roles)}}
        kind = build(stage, check, render_args(check.args, variables, f"check {check.name}"))
        try:
            ok, seen = kind.probe(connections[node.name])
        except Exception as exc:  # an unreachable node is a failed check, with what was seen
            ok, seen = False, f"{type(exc).__name__}: {exc}"
        hint = None if ok else hint_text(check.hint, lang)
        if hint is not None:
            hint = render_args(hint, variables, f"hint of check {check.name}")
        return CheckResult(check.name, node.name, ok, seen, hint)

    def probe_node(node_name: str) -> list[CheckResult]:
        # one fabric connection is not safe to share between threads: a node's checks run one after another
        return [probe(job) for job in jobs if job[1].name == node_name]

    nodes = list(dict.fromkeys(node.name for _, node in jobs))
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        by_node = dict(zip(nodes, pool.map(probe_node, nodes), strict=True))
    order = {(check.name, node.name): i for i, (check, node) in enumerate(jobs)}
    return sorted(
        (r for results in by_node.values() for r in results), key=lambda r: order[(r.check, r.node)]
    )
