"""A node that replays recorded command output, for unit tests of check kinds."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any


@dataclass
class Out:
    stdout: str
    stderr: str = ""
    exited: int = 0


class Replay:
    """A node that answers every command with the next recorded output."""

    def __init__(self, *outputs: Out) -> None:
        self.outputs = list(outputs)
        self.commands: list[str] = []

    def run(self, command: str, **kwargs: Any) -> Out:
        self.commands.append(command)
        return self.outputs.pop(0)

    def script(self, index: int = 0) -> str:
        """The shell script inside ``sudo -n sh -c '...'``."""
        argv = shlex.split(self.commands[index])
        assert argv[:4] == ["sudo", "-n", "sh", "-c"], argv
        return argv[4]
