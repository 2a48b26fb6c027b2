"""The one way labkit renders a template: scenario data is never host code.

A scenario is downloaded data that a trainer runs as root. Every template labkit renders (step and check
arguments, file templates, guides, the Vagrantfile) goes through :func:`environment`: Jinja2's immutable sandbox
(no attribute starting with ``_``, no calls that mutate, no reaching ``__globals__`` from a helper) with a loader
that reads only files whose real path stays inside the directory it was given, so a symlink in a scenario cannot
bring a host file into a guest or a guide.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

SecurityError = jinja2.exceptions.SecurityError


def confined(root: Path, relative: str) -> Path | None:
    """``root/relative`` with symlinks resolved, or None when that lands outside ``root``."""
    base = root.resolve()
    target = (base / relative).resolve()
    return target if target == base or base in target.parents else None


class ConfinedLoader(jinja2.BaseLoader):
    """Templates by path relative to ``root``; one that resolves outside ``root`` does not exist."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        path = confined(self.root, template)
        if path is None:
            raise SecurityError(
                f"{template!r} resolves outside {self.root}: templates stay inside the scenario"
            )
        if not path.is_file():
            raise jinja2.TemplateNotFound(template)
        mtime = path.stat().st_mtime
        source = path.read_text(encoding="utf-8")
        return source, str(path), lambda: os.path.exists(path) and path.stat().st_mtime == mtime


def environment(root: Path | None = None, **options: Any) -> ImmutableSandboxedEnvironment:
    """A sandboxed environment with StrictUndefined, no autoescaping (the output is shell, YAML and Markdown)
    and trailing newlines kept; with ``root``, templates load from that directory only."""
    settings: dict[str, Any] = {
        "undefined": jinja2.StrictUndefined,
        "autoescape": False,
        "keep_trailing_newline": True,
    }
    settings.update(options)
    if root is not None:
        settings["loader"] = ConfinedLoader(root)
    return ImmutableSandboxedEnvironment(**settings)


__all__ = ["ConfinedLoader", "SecurityError", "confined", "environment"]
