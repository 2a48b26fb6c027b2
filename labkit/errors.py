"""Errors a person can act on: a message, a hint that says the fix, and the exit code the CLI uses."""

from __future__ import annotations

from dataclasses import dataclass


class LabkitError(Exception):
    """Base of every error labkit raises on purpose. The CLI prints it in one line, without traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(LabkitError):
    """Bad input on the command line or to the API (unknown lab, unknown stage, ...)."""

    exit_code = 2


class NotImplementedYet(UsageError):
    """A command that is part of the surface but whose issue has not landed."""

    def __init__(self, command: str) -> None:
        super().__init__(f"labkit {command}: not implemented yet")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a scenario file, located as precisely as YAML allows."""

    file: str
    line: int | None
    field: str
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}; fix: {self.fix}"


class ScenarioError(LabkitError):
    """A scenario file has one or more problems; all of them are reported together."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class HostError(LabkitError):
    """The host lacks something labkit needs (libvirtd down, vagrant missing, not enough RAM, ...)."""

    exit_code = 3


class LabError(LabkitError):
    """Something went wrong with a lab's VMs; the message names the log to read."""

    exit_code = 4
