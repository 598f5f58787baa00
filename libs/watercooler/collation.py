"""Unicode Collation Algorithm sort keys, as pyuca computes them, faster.

pyuca (which ships the DUCET table) walks its trie for every character of every name and
was a third of the CPU of a people rebuild.  Most characters are "simple": they start no
contraction and are not combining marks, so their collation elements never depend on
their neighbours.  Those are looked up once and remembered; any string holding another
character goes through pyuca unchanged.  The keys are identical (tests/unit compare them
over names of many scripts).
"""

from __future__ import annotations

import functools
import unicodedata

import pyuca


@functools.lru_cache(maxsize=1)
def _collator() -> pyuca.Collator:
    return pyuca.Collator()


@functools.lru_cache(maxsize=65_536)
def _char_levels(ch: str) -> tuple[tuple[str, str, str, str], frozenset[int]]:
    """The hex of a character's non-zero weights at each of the four levels, and the code
    points that would extend it into a contraction ("l" + "·") — usually none."""
    collator = _collator()
    node = (collator.table.root.children or {}).get(ord(ch))
    following = frozenset(node.children) if node is not None and node.children else frozenset()
    elements = collator.collation_elements(ch)
    levels = tuple("".join(f"{e[level]:05x}" for e in elements if len(e) > level and e[level]) for level in range(4))
    return levels, following  # type: ignore[return-value]


def collation_key(text: str) -> str:
    """Fixed-width hex of the UCA sort key (pyuca's ``Collator.sort_key``, four levels with
    0 between them): comparing keys as strings compares names as people do."""
    decomposed = unicodedata.normalize("NFD", text)
    levels: tuple[list[str], list[str], list[str], list[str]] = ([], [], [], [])
    last = len(decomposed) - 1
    for i, ch in enumerate(decomposed):
        weights, following = _char_levels(ch)
        if following and i < last and (ord(decomposed[i + 1]) in following or unicodedata.combining(decomposed[i + 1])):
            # A contraction may start here (pyuca also looks past combining marks): its way.
            key = _collator().sort_key(unicodedata.normalize("NFC", text))
            return ("%05x" * len(key)) % key
        for level in range(4):
            levels[level].append(weights[level])
    return "00000".join("".join(parts) for parts in levels)
