"""What every step kind shares: the per-node context, the Change/Result records, sudo over a connection.

A kind is a small class: a pydantic ``Args`` model (``extra="forbid"``), ``plan()`` that only reads the node
and says what would change, and ``apply()`` that converges it. Every command runs as
``sudo -n sh -c '<script>'`` so pipes and redirections run as root too; every value from a scenario that
reaches the script goes through :func:`shlex.quote`.
"""

from __future__ import annotations

import difflib
import io
import shlex
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, field_validator

from labkit.artifacts import Catalog
from labkit.errors import LabkitError

Status = Literal["changed", "ok", "failed"]
TAIL_LINES = 20
MAX_DIFF_BYTES = 256 * 1024


class RunResult(Protocol):
    exited: int
    stdout: str
    stderr: str


class Conn(Protocol):
    """The part of fabric's Connection steps use (a fake in unit tests)."""

    def run(self, command: str, **kwargs: Any) -> Any: ...

    def put(self, local: Any, remote: str | None = None, **kwargs: Any) -> Any: ...


@dataclass
class StepContext:
    """One node's view of a stage run: template variables, what changed so far, where templates live."""

    node: str
    vars: dict[str, Any] = field(default_factory=dict)
    scenario_dir: Path | None = None
    catalog: Catalog | None = None
    changed: set[str] = field(default_factory=set)
    """Names of the steps that changed (or, in a plan, would change) this node during this run."""


@dataclass(frozen=True)
class Change:
    """What a step would do on one node: nothing (``changed`` False) or a summary, with a diff for files."""

    node: str
    step: str
    changed: bool
    summary: str = ""
    diff: str = ""


@dataclass(frozen=True)
class Result:
    """What a step did on one node. A failure carries the command that failed and the tail of its output."""

    node: str
    step: str
    status: Status
    message: str = ""
    command: str = ""
    output: str = ""

    def __str__(self) -> str:
        text = f"{self.node}: step {self.step}: {self.status}"
        if self.message:
            text += f": {self.message}"
        if self.status == "failed" and self.command:
            text += f"\n  command: {self.command}"
        if self.status == "failed" and self.output:
            text += "\n  output:\n" + "\n".join(f"    {line}" for line in self.output.splitlines())
        return text


class StepFailed(LabkitError):
    """Raised inside a kind to end the step as ``failed`` with the command and its output."""

    def __init__(self, message: str, command: str = "", output: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.command = command
        self.output = output


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


@dataclass(frozen=True)
class Ran:
    command: str
    exited: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exited == 0

    @property
    def output(self) -> str:
        return tail("\n".join(x for x in (self.stdout.rstrip(), self.stderr.rstrip()) if x))


def sudo(conn: Conn, script: str) -> Ran:
    """Run ``script`` as root on the node; never raises on a non-zero exit (look at ``.exited``)."""
    result = conn.run(f"sudo -n sh -c {shlex.quote(script)}", hide=True, warn=True, in_stream=False)
    return Ran(script, int(result.exited), str(result.stdout), str(result.stderr))


def must(conn: Conn, script: str, what: str) -> Ran:
    """Run ``script`` as root; a non-zero exit ends the step as failed, saying ``what`` it was doing."""
    ran = sudo(conn, script)
    if not ran.ok:
        raise StepFailed(f"{what} failed (exit {ran.exited})", ran.command, ran.output)
    return ran


# ---- remote files -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    exists: bool
    sha256: str = ""
    owner: str = ""
    group: str = ""
    mode: int = 0


def remote_file(conn: Conn, path: str) -> RemoteFile:
    """sha256, owner, group and mode of a remote file (``exists`` False when it is absent)."""
    return remote_files(conn, [path])[path]


def remote_files(conn: Conn, paths: list[str]) -> dict[str, RemoteFile]:
    """:func:`remote_file` for several files in one command: each SSH round trip costs ~0.5 s on an emulated
    guest, more than hashing a small file."""
    script = "; ".join(
        f"if [ -f {q} ]; then sha256sum {q} | cut -d' ' -f1; stat -c '%U %G %a' {q}; "
        f"elif [ -e {q} ]; then echo NOTAFILE; else echo MISSING; fi; echo '@@'"
        for q in map(shlex.quote, paths)
    )
    ran = must(conn, script, f"reading {', '.join(paths)}")
    blocks = ran.stdout.split("@@")
    found = {}
    for path, block in zip(paths, blocks, strict=False):
        fields = block.split()
        if fields[:1] == ["MISSING"]:
            found[path] = RemoteFile(False)
        elif fields[:1] == ["NOTAFILE"] or len(fields) != 4:
            raise StepFailed(f"{path} exists and is not a regular file", ran.command, ran.output)
        else:
            found[path] = RemoteFile(True, fields[0], fields[1], fields[2], int(fields[3], 8))
    if len(found) != len(paths):
        raise StepFailed(f"reading {', '.join(paths)} gave no answer for some", ran.command, ran.output)
    return found


def remote_text(conn: Conn, path: str) -> str | None:
    """The remote file's text for a diff; None when it is too big or not text."""
    q = shlex.quote(path)
    ran = must(conn, f"head -c {MAX_DIFF_BYTES + 1} {q}", f"reading {path}")
    if len(ran.stdout.encode()) > MAX_DIFF_BYTES or "\x00" in ran.stdout:
        return None
    return ran.stdout


def unified_diff(path: str, old: str | None, new: bytes) -> str:
    try:
        new_text = new.decode()
    except UnicodeDecodeError:
        return f"binary content of {path} differs\n"
    if old is None and len(new) > MAX_DIFF_BYTES:
        return f"content of {path} differs (too big to show)\n"
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile=f"{path} (node)" if old is not None else "/dev/null",
        tofile=f"{path} (wanted)",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def upload(conn: Conn, data: bytes | Path, path: str, owner: str, group: str, mode: int) -> None:
    """Put ``data`` in a temp file in the login user's home, then ``install`` it in place.

    The home directory, not /tmp: SFTP creates files with the server's umask (world-readable), and the node's
    set-up keeps the home 0700 (labkit.machines.guest), so no other user of the node can read a file in transit. The
    relative path is the same for SFTP (which starts in the home) and for the command (sudo keeps the cwd).
    The file is installed beside its target, synced, then renamed over it: a host crash never leaves it empty."""
    tmp = f".labkit-upload-{uuid.uuid4().hex}"
    conn.put(io.BytesIO(data) if isinstance(data, bytes) else str(data), remote=tmp)
    q = shlex.quote
    new = f"{path}.labkit-new"
    must(
        conn,
        f"install -D -o {q(owner)} -g {q(group)} -m {mode:04o} {q(tmp)} {q(new)} && sync {q(new)} "
        f"&& mv -f {q(new)} {q(path)}; rc=$?; rm -f {q(tmp)} {q(new)}; exit $rc",
        f"installing {path}",
    )


def fix_attributes(conn: Conn, path: str, owner: str, group: str, mode: int) -> None:
    q = shlex.quote
    must(conn, f"chown {q(owner)}:{q(group)} {q(path)} && chmod {mode:04o} {q(path)}", f"chmod/chown {path}")


def attribute_changes(current: RemoteFile, owner: str, group: str, mode: int) -> list[str]:
    out = []
    if current.owner != owner or current.group != group:
        out.append(f"owner {current.owner}:{current.group} -> {owner}:{group}")
    if current.mode != mode:
        out.append(f"mode {current.mode:04o} -> {mode:04o}")
    return out


# ---- kinds --------------------------------------------------------------------------------------------------


class ArgsModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_mode(value: object) -> int:
    """``"0644"``, ``"644"`` or 0o644 (an int from YAML is taken as written in octal digits if it looks so)."""
    if isinstance(value, bool):
        raise ValueError("mode must be an octal string like '0644'")
    text = str(value) if not isinstance(value, int) else None
    if text is not None:
        text = text.removeprefix("0o")
        if not text.isdigit() or any(c not in "01234567" for c in text) or len(text) > 4:
            raise ValueError(f"mode {value!r} is not octal like '0644'")
        return int(text, 8)
    assert isinstance(value, int)
    if not 0 <= value <= 0o7777:
        raise ValueError(f"mode {value} is out of range")
    return value


class FileAttrs(ArgsModel):
    owner: str = "root"
    group: str = "root"
    mode: int = 0o644

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: object) -> int:
        return parse_mode(value)


class StepKind:
    """One kind of step. Subclasses set ``kind`` and ``args_model`` and implement plan/apply."""

    kind: ClassVar[str]
    args_model: ClassVar[type[ArgsModel]]

    def __init__(self, name: str, args: Any) -> None:
        self.name = name
        self.args = args

    def preflight(self, ctx: StepContext) -> None:
        """Host-side checks before any node is touched (e.g. the artifact is cached). Raise LabkitError."""

    def plan(self, conn: Conn, ctx: StepContext) -> Change:
        raise NotImplementedError

    def apply(self, conn: Conn, ctx: StepContext) -> Result:
        raise NotImplementedError

    # helpers for subclasses
    def change(self, ctx: StepContext, summaries: list[str], diff: str = "") -> Change:
        return Change(ctx.node, self.name, bool(summaries), "; ".join(summaries), diff)

    def result(self, ctx: StepContext, changed: bool, message: str = "") -> Result:
        return Result(ctx.node, self.name, "changed" if changed else "ok", message)
