"""Text handling that Elasticsearch cannot do for us.

Search analysis (folding, stemming in each language, highlighting) is Elasticsearch's own
(services/search/readmodels/projections/analysis.py). What stays here:
- ``collation_key``: a name as a string whose byte order is the Unicode Collation
  Algorithm's (pyuca's DUCET), so a plain keyword sort gives directory order in every script;
- ``fold``: accents and case removed, for keys that identify things in Python (a wiki title
  "Café" and "cafe" are one page; a directory letter), never for matching search text;
- ``clean`` and ``has_control_characters``: what the write side checks of user text.
"""

from __future__ import annotations

import unicodedata

from .collation import collation_key  # noqa: F401  (pyuca's keys, computed faster)


def fold(text: str) -> str:
    """``text`` without accents or case (NFKD, combining marks dropped, casefolded): a key."""
    if text.isascii():  # no accents to remove; ASCII's casefold is lower()
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped).casefold()


def clean(text: str) -> str:
    """Unicode-normalised (NFC) text with surrounding white space removed."""
    return unicodedata.normalize("NFC", text).strip()


def has_control_characters(text: str, allow_newlines: bool = False) -> bool:
    if text.isprintable():  # no Cc or Cf among them (checked in C: most text stops here)
        return False
    # Zero-width (non-)joiners are part of correct spelling in Persian and Indic scripts.
    allowed = {"\u200c", "\u200d"} | ({"\n", "\t", "\r"} if allow_newlines else set())
    return any(unicodedata.category(ch) in ("Cc", "Cf") and ch not in allowed for ch in text)
