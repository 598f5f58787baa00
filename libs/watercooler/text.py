"""Text analysis done in Python, identically when indexing and when querying.

The Elasticsearch distribution on Maven Central (integ-test-zip) ships without
the analysis modules (no asciifolding, stemmers or ICU collation), so:
- ``fold`` removes accents and case (NFKD, drop combining marks, casefold);
- ``collation_key`` turns a name into a string whose byte order is the Unicode
  Collation Algorithm's order (pyuca, which ships the DUCET table), so a plain
  keyword sort gives directory order for names of every script.
"""

from __future__ import annotations

import functools
import unicodedata

import pyuca


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped).casefold()


@functools.lru_cache(maxsize=1)
def _collator() -> pyuca.Collator:
    return pyuca.Collator()


def collation_key(text: str) -> str:
    """Fixed-width hex of the UCA sort key: comparing keys as strings compares names as people do."""
    return "".join(f"{weight:05x}" for weight in _collator().sort_key(unicodedata.normalize("NFC", text)))


def clean(text: str) -> str:
    """Unicode-normalised (NFC) text with surrounding white space removed."""
    return unicodedata.normalize("NFC", text).strip()


def has_control_characters(text: str, allow_newlines: bool = False) -> bool:
    # Zero-width (non-)joiners are part of correct spelling in Persian and Indic scripts.
    allowed = {"\u200c", "\u200d"} | ({"\n", "\t", "\r"} if allow_newlines else set())
    return any(unicodedata.category(ch) in ("Cc", "Cf") and ch not in allowed for ch in text)
