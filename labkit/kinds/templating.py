"""Scenario arguments as templates: every string inside a step's or check's ``args`` is a Jinja2 template
rendered per node in labkit's sandbox (StrictUndefined), with the guide context plus ``node``."""

from __future__ import annotations

from typing import Any

import jinja2

from labkit.errors import UsageError
from labkit.model import sandbox
from labkit.model.scenario import Scenario

_ENV = sandbox.environment()


def node_variables(scenario: Scenario, name: str, context: dict[str, Any] | None) -> dict[str, Any]:
    """``node`` in templates: the context's dict for that node (lab_iface...) plus its name, ip and roles."""
    node = scenario.node(name)
    known = ((context or {}).get("nodes") or {}).get(name, {})
    return {**known, "name": node.name, "ip": node.ip, "roles": list(node.roles)}


def render_args(value: Any, variables: dict[str, Any], where: str = "") -> Any:
    """Render every string inside ``value`` (dicts and lists walked) as a template with ``variables``."""
    if isinstance(value, str):
        if "{" not in value:
            return value
        try:
            return _ENV.from_string(value).render(**variables)
        except jinja2.TemplateError as exc:
            raise UsageError(f"{where}: {exc}", "give that variable in the context or fix the step") from None
    if isinstance(value, dict):
        return {k: render_args(v, variables, where) for k, v in value.items()}
    if isinstance(value, list):
        return [render_args(v, variables, where) for v in value]
    return value
