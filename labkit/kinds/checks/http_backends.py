"""``http_backends``: answers of one URL spread over N distinct backends (the course's NodePort check).

The chapter runs ``for i in $(seq 1 10); do curl http://127.0.0.1:30080 | grep Host; done | sort | uniq`` and
expects as many lines as there are pods: a NodePort that only ever reaches the pods of its own node means the
pod network between nodes is missing. The check runs the whole loop on the node in one remote shell (one SSH
round trip, not one per request) and counts the backends the pattern names.
"""

from __future__ import annotations

import re
from collections import Counter

from pydantic import Field, field_validator

from labkit.kinds.checks.base import CheckArgs, CheckKind, Conn, last_line, q, run, templated

MARK = "@@labkit-attempt-exit"
MAX_ATTEMPTS = 200


class HttpBackendsArgs(CheckArgs):
    url: str
    expect_distinct: int = Field(ge=1)
    attempts: int = Field(default=30, ge=1, le=MAX_ATTEMPTS)
    pattern: str = r"Host: ([^<\s]+)"
    timeout: float = Field(default=2.0, gt=0, le=30)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not templated(value) and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    @field_validator("pattern")
    @classmethod
    def _one_group(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"pattern {value!r} is not a regular expression: {exc}") from None
        if compiled.groups < 1:
            raise ValueError(f"pattern {value!r} needs a group naming the backend, e.g. 'Host: ([^<\\s]+)'")
        return value


def parse_attempts(stdout: str) -> list[tuple[int, str]]:
    """``(curl exit code, body)`` per attempt, from the loop's output."""
    attempts: list[tuple[int, str]] = []
    body: list[str] = []
    for line in stdout.splitlines():
        if line.startswith(MARK):
            code = line[len(MARK) :].strip()
            attempts.append((int(code) if code.lstrip("-").isdigit() else -1, "\n".join(body)))
            body = []
        else:
            body.append(line)
    return attempts


class HttpBackends(CheckKind):
    """At least ``expect_distinct`` distinct backends answer ``url`` over ``attempts`` requests."""

    kind = "http_backends"
    args_model = HttpBackendsArgs
    args: HttpBackendsArgs

    def _script(self) -> str:
        a = self.args
        # curl's own errors go into the body (2>&1) so a refused connection is reported as curl says it
        return (
            f"for i in $(seq {a.attempts}); do "
            f"curl -sS -m {a.timeout:g} {q(a.url)} 2>&1; "
            f'printf "\\n{MARK} %s\\n" "$?"; done'
        )

    def probe(self, conn: Conn) -> tuple[bool, str]:
        a = self.args
        result = run(conn, self._script())
        attempts = parse_attempts(result.stdout)
        if not attempts:
            return False, f"no request ran (exit {result.exited}): {last_line(result.stderr + result.stdout)}"
        pattern = re.compile(a.pattern)
        backends: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        unmatched = 0
        for code, body in attempts:
            match = pattern.search(body)
            if match and match.group(1):
                backends[match.group(1)] += 1
            elif code != 0:
                errors[last_line(body, 120) or f"curl exit {code}"] += 1
            else:
                unmatched += 1
        parts = [
            f"{len(backends)} distinct of {a.expect_distinct} expected over {len(attempts)} requests"
            + (
                ": " + ", ".join(f"{name} x{count}" for name, count in sorted(backends.items()))
                if backends
                else ""
            )
        ]
        if unmatched:
            parts.append(f"{unmatched} answers without {a.pattern!r}")
        if errors:
            parts.append("; ".join(f"{count}x {error}" for error, count in errors.most_common(3)))
        return len(backends) >= a.expect_distinct, "; ".join(parts)
