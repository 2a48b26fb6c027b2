"""``command``: a command's exit code, and optionally a string in its output."""

from __future__ import annotations

from labkit.kinds.checks.base import CheckArgs, CheckKind, Conn, run


class CommandArgs(CheckArgs):
    run: str
    exit: int = 0
    output_contains: str | None = None


class CommandCheck(CheckKind):
    """A command's exit code (and optionally a string in its output)."""

    kind = "command"
    args_model = CommandArgs
    args: CommandArgs

    def probe(self, conn: Conn) -> tuple[bool, str]:
        result = run(conn, self.args.run)
        output = (result.stdout + result.stderr).strip()
        tail = output.splitlines()[-1] if output else ""
        ok = result.exited == self.args.exit
        if self.args.output_contains is not None:
            ok = ok and self.args.output_contains in output
        return ok, f"exit {result.exited}" + (f": {tail[:200]}" if tail else "")
