"""``file``: a path exists; optionally its content contains a string, equals a JSON value, or its mode is one.

``equals_json`` compares parsed JSON, so key order and whitespace do not matter; a failure names the keys that
differ, and a file that is not JSON gives the parser's message with line and column (what a trainee needs to
find a missing comma in a CNI conf).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import field_validator, model_validator

from labkit.kinds.checks.base import CheckArgs, CheckKind, Conn, last_line, q, run, templated

MAX_BYTES = 1024 * 1024
MAX_DIFFERENCES = 5
_MODE_RE = re.compile(r"^0?[0-7]{3,4}$")


class FileArgs(CheckArgs):
    path: str
    contains: str | None = None
    equals_json: dict[str, Any] | list[Any] | None = None
    mode: str | None = None

    @field_validator("mode")
    @classmethod
    def _octal(cls, value: str | None) -> str | None:
        if value is not None and not templated(value) and not _MODE_RE.match(value):
            raise ValueError(f'{value!r} is not an octal mode; write it quoted, e.g. "0644"')
        return value

    @model_validator(mode="after")
    def _one_expectation(self) -> FileArgs:
        given = [n for n in ("contains", "equals_json", "mode") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of contains, equals_json, mode (got {', '.join(given)})")
        return self


def json_differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where ``actual`` differs from ``expected``: missing and unexpected keys, other values, other lengths."""
    where = path or "(top)"
    if isinstance(expected, dict) and isinstance(actual, dict):
        found: list[str] = []
        for key in expected:
            sub = f"{path}.{key}" if path else str(key)
            if key not in actual:
                found.append(f"{sub} missing")
            else:
                found.extend(json_differences(expected[key], actual[key], sub))
        found.extend(
            f"{f'{path}.{key}' if path else key} unexpected" for key in actual if key not in expected
        )
        return found
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where}: {len(actual)} items, expected {len(expected)}"]
        found = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            found.extend(json_differences(e, a, f"{path}[{i}]"))
        return found
    if expected != actual or type(expected) is not type(actual):
        return [f"{where} is {json.dumps(actual)}, expected {json.dumps(expected)}"]
    return []


class FileCheck(CheckKind):
    """A file as a trainee was told to write it: present, containing a line, equal as JSON, or with a mode."""

    kind = "file"
    args_model = FileArgs
    args: FileArgs

    def _script(self) -> str:
        a = self.args
        read = a.contains is not None or a.equals_json is not None
        lines = [
            f"p={q(a.path)}",
            'if [ ! -e "$p" ]; then echo missing; exit 0; fi',
            'if [ ! -f "$p" ]; then echo "other $(stat -c %a -- "$p") $(stat -c %F -- "$p")"; exit 0; fi',
            'echo "file $(stat -c %a -- "$p")"',
        ]
        if read:
            lines.append(f'head -c {MAX_BYTES} -- "$p"')
        return "\n".join(lines)

    def probe(self, conn: Conn) -> tuple[bool, str]:
        a = self.args
        result = run(conn, self._script())
        head, _, content = result.stdout.partition("\n")
        words = head.split()
        if result.exited != 0 or not words or words[0] not in ("missing", "other", "file"):
            return (
                False,
                f"{a.path}: cannot read (exit {result.exited}): {last_line(result.stderr + result.stdout)}",
            )
        if words[0] == "missing":
            return False, f"{a.path} is missing"
        mode = words[1] if len(words) > 1 else "?"
        if a.mode is not None:
            same = mode.isdigit() and int(mode, 8) == int(a.mode, 8)
            return same, f"{a.path} has mode {mode.zfill(4)}" + ("" if same else f", expected {a.mode}")
        if a.contains is None and a.equals_json is None:
            return True, f"{a.path} exists (mode {mode.zfill(4)})"
        if words[0] == "other":
            return False, f"{a.path} is a {' '.join(words[2:]) or 'non-regular file'}, not a file"
        if a.contains is not None:
            if a.contains in content:
                return True, f"{a.path} contains {a.contains!r}"
            return False, f"{a.path} ({len(content.splitlines())} lines) lacks {a.contains!r}"
        try:
            value = json.loads(content)
        except json.JSONDecodeError as exc:
            return False, f"{a.path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        differences = json_differences(a.equals_json, value)
        if not differences:
            return True, f"{a.path} equals the expected JSON"
        shown = "; ".join(differences[:MAX_DIFFERENCES])
        more = len(differences) - MAX_DIFFERENCES
        return False, f"{a.path} differs: {shown}" + (f" (+{more} more)" if more > 0 else "")
