"""One text as several nodes read it: the shared words once, the words that differ per node as ``‹1›``.

A hint rendered per node (``{{ node.name }}``, ``{{ node.ip }}``) differs only where the template put a node's
values. Aligning the nodes' texts word by word (:class:`difflib.SequenceMatcher`) finds those places; a
place holding each node's own name reads ``‹node›``, the others are numbered, and a place with the same
values per node gets the same number wherever it recurs. Texts with too little in common are not forced
into one: :attr:`Varying.shared` is then None and each node's text stands alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

# a word, a flag, an address or a path (dots, colons and slashes inside it) is one token; any other character
# (a CJK one, punctuation, the = after a flag) is one token by itself
_WORD = r"[A-Za-z0-9_@%+\-]+"
_TOKEN = re.compile(rf"{_WORD}(?:[.:/]+{_WORD})*/?|\s+|.", re.DOTALL)
NODE = "‹node›"
MIN_SHARED = 1 / 3
"""Below this share of a text's characters in common the nodes' texts are shown whole, one per node."""
MAX_PLACES = 8


@dataclass(frozen=True)
class Varying:
    texts: dict[str, str]
    """node -> its text, in node order."""
    shared: str | None
    """The text with ``‹node›``/``‹1›`` where nodes differ; the text itself when all agree; None: too different."""
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    """node -> placeholder -> what it reads there (numbered placeholders only: ``‹node›`` is the node's name)."""

    @property
    def same(self) -> bool:
        return len(set(self.texts.values())) <= 1

    def to_json(self) -> dict[str, Any]:
        return {"shared": self.shared, "values": self.values, "texts": self.texts}


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _alignment(base: list[str], other: list[str]) -> dict[int, int]:
    """base index -> other index for every token the two texts share, in order."""
    matcher = SequenceMatcher(None, base, other, autojunk=False)
    return {a + k: b + k for a, b, size in matcher.get_matching_blocks() for k in range(size)}


def vary(texts: Mapping[str, str]) -> Varying:
    """``texts`` (node -> text) as one shared text with numbered places and each node's values there."""
    texts = dict(texts)
    if len(set(texts.values())) <= 1:
        return Varying(texts, next(iter(texts.values()), ""))
    nodes = list(texts)
    tokens = {node: _tokens(texts[node]) for node in nodes}
    base = tokens[nodes[0]]
    maps = {node: _alignment(base, tokens[node]) for node in nodes[1:]}
    common = [i for i in range(len(base)) if all(i in m for m in maps.values())]
    shared_chars = sum(len(base[i].strip()) for i in common)
    if shared_chars < MIN_SHARED * max(1, len(texts[nodes[0]].replace(" ", ""))):
        return Varying(texts, None)

    def position(node: str, index: int) -> int:
        """Where base token ``index`` is in ``node``'s text (-1 and len(base) stand for both ends)."""
        if index == -1:
            return -1
        if index == len(base):
            return len(tokens[node])
        return index if node == nodes[0] else maps[node][index]

    pieces: list[str] = []
    places: dict[tuple[str, ...], str] = {}
    values: dict[str, dict[str, str]] = {node: {} for node in nodes}
    for before, after in zip([-1, *common], [*common, len(base)], strict=True):
        gap = tuple(
            "".join(tokens[node][position(node, before) + 1 : position(node, after)]) for node in nodes
        )
        if any(gap):
            if all(value.strip() == node for value, node in zip(gap, nodes, strict=True)):
                pieces.append(NODE)
            else:
                label = places.setdefault(gap, f"‹{len(places) + 1}›")
                pieces.append(label)
                for node, value in zip(nodes, gap, strict=True):
                    values[node][label] = value.strip()
        if after < len(base):
            pieces.append(base[after])
    if len(places) > MAX_PLACES:
        return Varying(texts, None)
    return Varying(texts, "".join(pieces), values)


__all__ = ["NODE", "Varying", "vary"]
