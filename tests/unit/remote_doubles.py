"""A remote host that answers commands from a table, for tests of what labkit runs on a host."""

from __future__ import annotations

from labkit.machines.host_ssh import CommandResult
from labkit.machines.libvirt_host import LibvirtHost

H2 = "qemu+ssh://root@10.251.0.2/system?keyfile=/keys/h2&no_tty=1"


class FakeHost(LibvirtHost):
    """A remote host whose commands are answered from a table, and recorded."""

    def __init__(self, answers: dict[str, CommandResult | Exception]) -> None:
        super().__init__(name="h2", uri=H2)
        self.answers = answers
        self.ran: list[tuple[list[str], str | None]] = []

    def run(self, argv: list[str], stdin: str | None = None, timeout: float = 30.0) -> CommandResult:
        self.ran.append((argv, stdin))
        for prefix, answer in self.answers.items():
            if " ".join(argv).startswith(prefix):
                if isinstance(answer, Exception):
                    raise answer
                return answer
        raise AssertionError(f"unexpected command {argv}")
