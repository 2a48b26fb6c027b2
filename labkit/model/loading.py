"""Find a scenario by name or path and load it: YAML with line numbers, the pydantic model, then the checks
that need the whole document (addresses, roles, versions). Every problem is collected before raising."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from labkit import paths
from labkit.errors import Problem, ScenarioError, UsageError
from labkit.model.scenario import SCENARIO_FILE, Scenario
from labkit.model.validation import pydantic_problems, semantic_problems
from labkit.model.yamlpos import YamlSyntaxError, load_yaml_with_lines


def find_scenario(name_or_path: str) -> Path:
    """Resolve ``three-node`` (a shipped or user scenario) or a path to a directory or YAML file."""
    candidate = Path(name_or_path)
    if candidate.is_dir() and (candidate / SCENARIO_FILE).is_file():
        return candidate / SCENARIO_FILE
    if candidate.is_file():
        return candidate
    if "/" not in name_or_path and not name_or_path.endswith((".yaml", ".yml")):
        for root in scenario_roots():
            path = root / name_or_path / SCENARIO_FILE
            if path.is_file():
                return path
    known = ", ".join(sorted(available_scenarios())) or "none"
    raise UsageError(
        f"no scenario {name_or_path!r}",
        f"give a scenario name ({known}) or a path to a scenario.yaml",
    )


def scenario_roots() -> list[Path]:
    """Where scenarios are looked up by name: the user's own first, then the shipped ones."""
    return [paths.labkit_home() / "scenarios", paths.scenarios_dir()]


def available_scenarios() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for root in reversed(scenario_roots()):
        if root.is_dir():
            for path in sorted(root.glob(f"*/{SCENARIO_FILE}")):
                found[path.parent.name] = path
    return found


ExtraProblems = Callable[[Scenario, str, dict[tuple[str | int, ...], int]], list[Problem]]


def parse_scenario(name_or_path: str | Path, more_problems: ExtraProblems | None = None) -> Scenario:
    """Load a scenario and validate everything the model knows (fields, addresses, roles, versions);
    raise ScenarioError with every problem found. ``more_problems`` adds the problems a higher layer finds
    (:func:`labkit.kinds.compile.load_scenario` passes the step and check kinds' own), sorted in with them."""
    path = find_scenario(str(name_or_path))
    shown = _display_path(path)
    try:
        data, lines = load_yaml_with_lines(path)
    except YamlSyntaxError as exc:
        raise ScenarioError(
            [Problem(shown, exc.line, "", f"YAML does not parse: {exc.message}", "fix the YAML syntax there")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(
            [Problem(shown, None, "", f"cannot read the file: {exc}", "check the path")]
        ) from None
    if data is None:
        raise ScenarioError(
            [Problem(shown, None, "", "the file is empty", "write a scenario (see scenarios/three-node)")]
        )
    if not isinstance(data, dict):
        raise ScenarioError(
            [Problem(shown, 1, "", "the top level is not a mapping", "start with `name:`, `nodes:` ...")]
        )
    problems: list[Problem] = []
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, shown, lines))
    problems.extend(semantic_problems(data, path.parent, shown, lines))
    if scenario is not None and more_problems is not None:
        problems.extend(more_problems(scenario, shown, lines))
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.field))
        raise ScenarioError(_dedupe(problems))
    assert scenario is not None
    return scenario.model_copy(update={"source": path})


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in problems:
        if (p.field, p.message) not in seen:
            seen.add((p.field, p.message))
            out.append(p)
    return out


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
