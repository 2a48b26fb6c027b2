"""The ``labkit`` command line: parse, call the library, print. Nothing else lives here.

One module per command group, all registered on the one app of :mod:`labkit.cli.application` (which also
turns every error into one line and its exit code): :mod:`~labkit.cli.scenarios`, :mod:`~labkit.cli.lab`,
:mod:`~labkit.cli.stages`, :mod:`~labkit.cli.snapshots`, and the sub-apps :mod:`~labkit.cli.artifacts`,
:mod:`~labkit.cli.box`, :mod:`~labkit.cli.host` and :mod:`~labkit.cli.hosts`. :mod:`~labkit.cli.commands` sets their order.
"""

from __future__ import annotations

from labkit.cli.application import app, main
from labkit.cli.commands import register_commands

__all__ = ["app", "main"]

register_commands(app)

# `python labkit/cli/__init__.py`: importing labkit.cli.application above imported (and registered) this
# package too; registering again replaces each command by itself. main() exits with the command's exit code.
if __name__ == "__main__":
    main()
