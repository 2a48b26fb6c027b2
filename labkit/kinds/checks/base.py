"""What every check kind shares: its argument model, the probe protocol, sudo over a connection, the result.

A kind is a small class: a pydantic ``Args`` model (``extra="forbid"``) and ``probe()``, which reads the node
and returns ``(ok, what it saw)``; it never asserts and never changes the node. A kind that can say *why* a
check fails (the flannel diagnoses) overrides ``examine()`` to return findings as well. Every command runs as
``sudo -n sh -c '<script>'``; every value from a scenario that reaches the script goes through
:func:`shlex.quote`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict


class RunResult(Protocol):
    exited: int
    stdout: str
    stderr: str


class Conn(Protocol):
    """The part of fabric's Connection checks use (a fake replaying recorded output in unit tests)."""

    def run(self, command: str, **kwargs: Any) -> Any: ...


class CheckArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class FindingReport:
    """One diagnosis of a failed check, in the trainee's language: what is wrong, how to fix it, the evidence."""

    id: str
    cause: str
    fix: str
    evidence: str = ""


CheckStatus = Literal["pass", "fail", "unreachable"]


@dataclass(frozen=True)
class CheckResult:
    """One check on one node. ``unreachable``: the node did not answer (refused, timed out, paused VM), so
    nothing was learned about the check: never carries the stage's hint, and is not a failed check."""

    check: str
    node: str
    ok: bool
    seen: str
    hint: str | None = None
    findings: tuple[FindingReport, ...] = ()
    unreachable: bool = False

    @property
    def status(self) -> CheckStatus:
        return "pass" if self.ok else "unreachable" if self.unreachable else "fail"

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "node": self.node,
            "ok": self.ok,
            "status": self.status,
            "seen": self.seen,
            "hint": self.hint,
            "findings": [vars(f).copy() for f in self.findings],
        }


class Diagnosis(Protocol):
    """A finding as a kind produces it: language-neutral until :meth:`report` picks the trainee's language."""

    @property
    def id(self) -> str: ...

    def report(self, lang: str) -> FindingReport: ...


@dataclass(frozen=True)
class Observation:
    """What a probe saw on one node, with the diagnoses that explain a failure (empty for most kinds)."""

    ok: bool
    seen: str
    findings: tuple[Diagnosis, ...] = field(default=())


def run(conn: Conn, script: str) -> Any:
    """``script`` as root through ``sudo -n sh -c`` (non-interactive: a password prompt fails at once)."""
    return conn.run(f"sudo -n sh -c {shlex.quote(script)}")


def q(value: object) -> str:
    """A scenario value made safe for the remote shell."""
    return shlex.quote(str(value))


def last_line(text: str, limit: int = 200) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip()[:limit] if lines else ""


def first_line(text: str, limit: int = 200) -> str:
    """The first non-blank line (``ip route get`` prints the route first, then ``cache``)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0].strip()[:limit] if lines else ""


SECTION = "@@labkit "


def sections(stdout: str) -> dict[str, str]:
    """A remote script's output split at its ``@@labkit NAME`` marker lines (text before the first: ``""``)."""
    found: dict[str, list[str]] = {}
    current: list[str] = found.setdefault("", [])
    for line in stdout.splitlines():
        if line.startswith(SECTION):
            current = found.setdefault(line[len(SECTION) :].strip(), [])
        else:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in found.items()}


def templated(value: object) -> bool:
    """A raw scenario value still holding a Jinja2 expression (validated again once rendered per node)."""
    return isinstance(value, str) and "{{" in value


class CheckKind:
    kind: ClassVar[str]
    args_model: ClassVar[type[CheckArgs]]

    def __init__(self, args: CheckArgs) -> None:
        self.args = args

    def probe(self, conn: Conn) -> tuple[bool, str]:
        raise NotImplementedError

    def examine(self, conn: Conn) -> Observation:
        """The probe's outcome with its findings; kinds that diagnose override this instead of :meth:`probe`."""
        ok, seen = self.probe(conn)
        return Observation(ok, seen)
