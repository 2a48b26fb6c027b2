"""A finding and its texts: what a diagnosis says about a node, in en and ja, ready to report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from labkit.kinds.checks.base import FindingReport


@dataclass(frozen=True)
class Text:
    en: str
    ja: str

    def pick(self, lang: str) -> str:
        return self.ja if lang == "ja" else self.en


@dataclass(frozen=True)
class FindingSpec:
    """One kind of problem: its id, and its cause and fix with ``{placeholders}`` the finding fills."""

    id: str
    cause: Text
    fix: Text


@dataclass(frozen=True)
class Finding:
    """One problem found on a node: its spec, the values its texts mention, and the evidence (node output)."""

    spec: FindingSpec
    evidence: str = ""
    values: Mapping[str, str | Text] = field(default_factory=dict)
    """What the texts' placeholders say: a plain value (an IP, a path), or a phrase in both languages."""

    @property
    def id(self) -> str:
        return self.spec.id

    def report(self, lang: str) -> FindingReport:
        """The finding in ``lang`` (ja or en), for a trainee to read."""
        values = {k: v.pick(lang) if isinstance(v, Text) else v for k, v in self.values.items()}
        return FindingReport(
            id=self.spec.id,
            cause=self.spec.cause.pick(lang).format(**values),
            fix=self.spec.fix.pick(lang).format(**values),
            evidence=self.evidence,
        )
