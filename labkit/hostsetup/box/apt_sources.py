"""The host's apt sources, as mmdebstrap mirror lines for a box (the mirror is the host's: nothing else is
downloaded). Parsing is pure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labkit.errors import HostError
from labkit.hostsetup.box.definition import BoxDefinition

APT_DIR = Path("/etc/apt")


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None = None


def parse_deb822_sources(text: str) -> list[AptSource]:
    """``*.sources`` files: paragraphs of ``Key: value``; keeps enabled ``Types: deb`` entries."""
    found: list[AptSource] = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in paragraph.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
                continue
            key, sep, value = line.partition(":")
            if not sep:
                key = ""
                continue
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        signed_by = fields.get("signed-by") or None
        if signed_by and not signed_by.startswith("/"):
            signed_by = None  # an embedded key block: let apt use the default keyrings
        for uri in fields.get("uris", "").split():
            found.append(
                AptSource(
                    uri.rstrip("/"),
                    tuple(fields.get("suites", "").split()),
                    tuple(fields.get("components", "").split()),
                    signed_by,
                )
            )
    return found


def parse_one_line_sources(text: str) -> list[AptSource]:
    """``sources.list`` / ``*.list`` lines: ``deb [options] URI SUITE COMPONENT...``."""
    found: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        rest = line[4:].strip()
        signed_by = None
        if rest.startswith("["):
            options, _, rest = rest[1:].partition("]")
            for option in options.split():
                key, _, value = option.partition("=")
                if key == "signed-by" and value.startswith("/"):
                    signed_by = value
        words = rest.split()
        if len(words) >= 2:
            found.append(AptSource(words[0].rstrip("/"), (words[1],), tuple(words[2:]), signed_by))
    return found


def mirror_lines(sources: Sequence[AptSource], suite: str, components: Sequence[str]) -> list[str]:
    """One-line apt sources for mmdebstrap: ``suite`` first, then its ``-updates`` and ``-security``."""
    wanted = [suite, f"{suite}-updates", f"{suite}-security"]
    lines: list[str] = []
    for want in wanted:
        for source in sources:
            if want not in source.suites:
                continue
            comps = [c for c in components if c in source.components]
            if not comps:
                continue
            options = f"[signed-by={source.signed_by}] " if source.signed_by else ""
            line = f"deb {options}{source.uri} {want} {' '.join(comps)}"
            if line not in lines:
                lines.append(line)
    return lines


def line_uri(line: str) -> str:
    """The mirror URI of a one-line apt source."""
    words = line.split()
    if len(words) > 1 and words[1].startswith("["):
        words = [words[0], *line.split("]", 1)[1].split()]
    return words[1] if len(words) > 1 else line


def host_apt_sources(apt_dir: Path = APT_DIR) -> list[AptSource]:
    found: list[AptSource] = []
    one_line = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if path.is_file():
            found += parse_one_line_sources(path.read_text(encoding="utf-8", errors="replace"))
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        found += parse_deb822_sources(path.read_text(encoding="utf-8", errors="replace"))
    return found


def host_mirror_lines(definition: BoxDefinition) -> list[str]:
    """The mirror lines for the definition's suite, or HostError when the host has no source for it."""
    sources = host_apt_sources()
    if not any(
        definition.suite in s.suites and set(definition.components) <= set(s.components) for s in sources
    ):
        raise HostError(
            f"no apt source for {definition.suite} ({' '.join(definition.components)}) in "
            f"{APT_DIR}/sources.list or {APT_DIR}/sources.list.d/",
            f"add the Debian mirror for {definition.suite} to the host's apt sources",
        )
    return mirror_lines(sources, definition.suite, definition.components)


__all__ = [
    "APT_DIR",
    "AptSource",
    "host_apt_sources",
    "host_mirror_lines",
    "line_uri",
    "mirror_lines",
    "parse_deb822_sources",
    "parse_one_line_sources",
]
