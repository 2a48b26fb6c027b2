"""The one way labkit renders a template: scenario data is never host code.

A scenario is downloaded data that a trainer runs as root. Every template labkit renders (step and check
arguments, file templates, guides, the Vagrantfile) goes through :func:`environment`: Jinja2's immutable sandbox
(no attribute starting with ``_``, no calls that mutate, no reaching ``__globals__`` from a helper) with a loader
that reads only files whose real path stays inside the directory it was given, so a symlink in a scenario cannot
bring a host file into a guest or a guide.

Scenarios shipped with labkit may share files: :func:`template_root` lets one of them name another shipped
scenario's template (``../three-node/templates/flannel/flanneld.conf.j2``), so the flannel chapter has one source.
Any other scenario (downloaded, a user's own, a copy) reads templates from its own tree only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from labkit import paths

SecurityError = jinja2.exceptions.SecurityError


def confined(root: Path, relative: str) -> Path | None:
    """``root/relative`` with symlinks resolved, or None when that lands outside ``root``."""
    base = root.resolve()
    target = (base / relative).resolve()
    return target if target == base or base in target.parents else None


def template_root(scenario_dir: Path) -> Path:
    """The directory a scenario's templates must stay inside: the shipped scenarios' directory for a scenario
    labkit ships (its directory is, after resolving symlinks, a direct child of it), else its own directory."""
    shipped = paths.scenarios_dir().resolve()
    own = scenario_dir.resolve()
    return shipped if own.parent == shipped else own


def confined_template(scenario_dir: Path, relative: str) -> Path | None:
    """A template named relative to ``scenario_dir``, resolved, or None when it lands outside its
    :func:`template_root`."""
    root = template_root(scenario_dir)
    target = (scenario_dir.resolve() / relative).resolve()
    return target if target == root or root in target.parents else None


class ConfinedLoader(jinja2.BaseLoader):
    """Templates by path relative to ``root``; one that resolves outside ``root`` does not exist. With
    ``scenario=True``, ``root`` is a scenario's directory and the bound is its :func:`template_root`."""

    def __init__(self, root: Path, scenario: bool = False) -> None:
        self.root = root
        self.scenario = scenario

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        path = confined_template(self.root, template) if self.scenario else confined(self.root, template)
        if path is None:
            raise SecurityError(
                f"{template!r} resolves outside {self.root}: templates stay inside the scenario"
            )
        if not path.is_file():
            raise jinja2.TemplateNotFound(template)
        mtime = path.stat().st_mtime
        source = path.read_text(encoding="utf-8")
        return source, str(path), lambda: os.path.exists(path) and path.stat().st_mtime == mtime


def environment(
    root: Path | None = None, scenario: bool = False, **options: Any
) -> ImmutableSandboxedEnvironment:
    """A sandboxed environment with StrictUndefined, no autoescaping (the output is shell, YAML and Markdown)
    and trailing newlines kept; with ``root``, templates load from that directory only (with ``scenario``,
    from a scenario's :func:`template_root`)."""
    settings: dict[str, Any] = {
        "undefined": jinja2.StrictUndefined,
        "autoescape": False,
        "keep_trailing_newline": True,
    }
    settings.update(options)
    if root is not None:
        settings["loader"] = ConfinedLoader(root, scenario)
    return ImmutableSandboxedEnvironment(**settings)


__all__ = [
    "ConfinedLoader",
    "SecurityError",
    "confined",
    "confined_template",
    "environment",
    "template_root",
]
