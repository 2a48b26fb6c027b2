"""The one Typer app every ``labkit`` command is registered on, and what all commands share.

Every LabkitError becomes one line on stderr (plus one line per scenario problem) and its exit code;
``--debug`` shows the traceback instead. Host errors (libvirt, SSH, disk full, read-only) become one line with
a fix; any other exception is reported as an internal error (exit 70), with its traceback under ``--debug``.

Also here: the consoles commands print to, the option types several commands take, ``_print_json`` and
``_enter_host_namespace``, the one place the command line enters host mode's network namespace.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup
from typer.exceptions import TyperException

from labkit import __version__
from labkit.cli.failures import INTERNAL_ERROR_EXIT, host_error_line, internal_error_line
from labkit.errors import LabkitError, ScenarioError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_debug = os.environ.get("LABKIT_DEBUG") == "1"


def _print_error(exc: LabkitError) -> None:
    if isinstance(exc, ScenarioError):
        for problem in exc.problems:
            err.print(f"error: {problem}", markup=False)
        return
    err.print(f"error: {exc}", markup=False)


class LabkitGroup(TyperGroup):
    """Turns labkit's own errors into one-line messages and exit codes for every command and sub-command.

    Errors of the host and of the libraries labkit drives (libvirt, paramiko, the file system: disk full,
    read-only, permission denied) become one line with a fix; any other exception is a bug in labkit: one
    ``internal error`` line and exit 70. ``--debug`` shows the traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except LabkitError as exc:
            if _debug:
                raise
            _print_error(exc)
            raise SystemExit(exc.exit_code) from None
        except KeyboardInterrupt:
            if _debug:
                raise
            err.print("interrupted: run the same command again to finish, or `labkit destroy` to clean up")
            raise SystemExit(130) from None
        except (TyperException, typer.Exit, typer.Abort):
            raise  # the command line's own usage errors and exits: typer prints them
        except Exception as exc:  # broad on purpose: nothing reaches the user as a bare traceback
            if _debug:
                traceback.print_exception(exc, file=sys.stderr)
            known = host_error_line(exc)
            if known is None:  # a bug in labkit, never "your check failed"
                err.print(f"error: {internal_error_line(exc)}", markup=False)
                raise SystemExit(INTERNAL_ERROR_EXIT) from None
            line, code = known
            err.print(f"error: {line}", markup=False)
            raise SystemExit(code) from None


app = typer.Typer(
    cls=LabkitGroup,
    help="Build Kubernetes training labs on real VMs: bring a scenario up, solve and check its stages, "
    "snapshot verified stages and reset to them in seconds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ScenarioArg = Annotated[
    str, typer.Argument(help="Scenario name (see `labkit scenarios`) or path to a scenario.yaml")
]
LabOpt = Annotated[str | None, typer.Option("--name", "-n", help="Lab name (default: the scenario's name)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")]


def _version(value: bool) -> None:
    if value:
        out.print(f"labkit {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug details")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    """labkit: Kubernetes training labs on real VMs."""
    global _debug
    _debug = debug or os.environ.get("LABKIT_DEBUG") == "1"


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data))


def _enter_host_namespace() -> None:
    from labkit.hostsetup.hostmode import enter_host_namespace

    enter_host_namespace()


def main() -> None:
    app(prog_name="labkit")
