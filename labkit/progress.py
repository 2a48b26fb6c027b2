"""How the library reports long work. The CLI renders it with rich; scripts and tests may ignore it."""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("labkit")


class Reporter(Protocol):
    def start(self, nodes: list[str], total: int) -> None:
        """A multi-node phase begins; each node has ``total`` steps."""

    def step(self, node: str, text: str, done: int | None = None) -> None:
        """``node`` is at step ``done`` (if known), doing ``text``."""

    def note(self, text: str) -> None:
        """A line for the user (what was chosen, skipped or changed)."""

    def finish(self) -> None:
        """The phase ended (successfully or not)."""


class LogReporter:
    """Default reporter: the ``labkit`` logger, so library users see progress only if they ask for it."""

    def start(self, nodes: list[str], total: int) -> None:
        log.info("working on %s", ", ".join(nodes))

    def step(self, node: str, text: str, done: int | None = None) -> None:
        log.info("%s: %s", node, text)

    def note(self, text: str) -> None:
        log.info("%s", text)

    def finish(self) -> None:
        pass
