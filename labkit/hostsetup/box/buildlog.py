"""What a build reports: one short progress line per phase for the user, and a log file with every
command, its output and timings."""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from labkit.errors import HostError

LOG_TAIL_LINES = 25

Progress = Callable[[str], None]


class BuildLog:
    """Build log: every command, its output, and timings. Failures raise HostError with the tail."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("w", encoding="utf-8")

    def close(self) -> None:
        self._file.close()

    def note(self, text: str) -> None:
        self._file.write(f"# {time.strftime('%H:%M:%S')} {text}\n")
        self._file.flush()

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        self._file.flush()
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def run(
        self,
        cmd: Sequence[str | Path],
        *,
        what: str,
        env: Mapping[str, str] | None = None,
        input_text: str | None = None,
        capture: bool = False,
        timeout: float = 3600,
    ) -> str:
        """Run ``cmd``; output goes to the log (stdout is returned instead when ``capture``)."""
        argv = [str(c) for c in cmd]
        self._file.write(f"$ {shlex.join(argv)}\n")
        self._file.flush()
        started = time.monotonic()
        try:
            proc = subprocess.run(
                argv,
                input=input_text,
                stdin=None if input_text is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture else self._file,
                stderr=self._file,
                env=dict(env) if env is not None else None,
                text=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise HostError(f"{what}: {argv[0]} is not installed", "see `labkit doctor`") from exc
        except subprocess.TimeoutExpired as exc:
            self.note(f"timed out after {timeout:.0f} s")
            raise HostError(
                f"{what} timed out after {timeout:.0f} s: {shlex.join(argv)}\n{self.tail()}",
                f"full log: {self.path}",
            ) from exc
        self.note(f"exit {proc.returncode} after {time.monotonic() - started:.1f} s")
        if proc.returncode != 0:
            raise HostError(
                f"{what} failed: `{shlex.join(argv)}` exited with {proc.returncode}; last output:\n"
                f"{self.tail()}",
                f"full log: {self.path}",
            )
        return proc.stdout if capture else ""


__all__ = ["LOG_TAIL_LINES", "BuildLog", "Progress"]
