"""Text analysis done in Python, identically when indexing and when querying.

The Elasticsearch distribution on Maven Central (integ-test-zip) ships without
the analysis modules (no asciifolding, stemmers or ICU collation), so:
- ``fold`` removes accents and case (NFKD, drop combining marks, casefold);
- ``collation_key`` turns a name into a string whose byte order is the Unicode
  Collation Algorithm's order (pyuca, which ships the DUCET table), so a plain
  keyword sort gives directory order for names of every script;
- ``stemmed`` folds, splits into words and reduces each word to its English Snowball
  stem ("running", "runs", "run" -> "run"), joined by spaces: the projections write it
  into ``stemmed`` fields analysed by ES's ``whitespace`` analyzer, and the search side
  sends the query through the same function, so both sides see the very same terms.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata

from .collation import collation_key  # noqa: F401  (pyuca's keys, computed faster)

try:  # PyStemmer: the C libstemmer (pinned); snowballstemmer: the same algorithms in pure Python.
    from Stemmer import Stemmer as _Stemmer
except ImportError:  # pragma: no cover - only where the wheel is missing
    _Stemmer = None


def fold(text: str) -> str:
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


# A word: letters and digits, with inner apostrophes kept ("o'neil", "team's": the English
# stemmer removes the possessive). Underscores and every other character separate words.
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'", "\uff07": "'"})
# Words longer than this are not language (hashes, base64): kept whole, not stemmed.
_MAX_STEMMED_WORD = 40


@functools.lru_cache(maxsize=1)
def _stemmer():
    if _Stemmer is not None:
        stemmer = _Stemmer("english")
        return stemmer.stemWords
    # Not snowballstemmer.stemmer(): that would hand back PyStemmer whenever it imports.
    from snowballstemmer.english_stemmer import EnglishStemmer

    return EnglishStemmer().stemWords


def words(text: str) -> list[str]:
    """The folded words of ``text``, in order."""
    return _WORD.findall(fold(text.translate(_APOSTROPHES)))


def stem_words(text: str) -> list[str]:
    """The English Snowball stems of the folded words of ``text``, in order."""
    found = words(text)
    if not found:
        return []
    stems = _stemmer()(found)
    return [stem if len(word) <= _MAX_STEMMED_WORD else word for word, stem in zip(found, stems, strict=True)]


def stemmed(text: str) -> str:
    """What a ``stemmed`` field holds and what is matched against it: stems joined by spaces."""
    return " ".join(stem_words(text))


def highlight(text: str, query: str, limit: int = 160) -> str | None:
    """An HTML-safe snippet of at most about ``limit`` characters of ``text`` with ``<em>``
    around each word that matches ``query`` the way search does (folded or by stem), or None
    when no word matches.

    Done here rather than by Elasticsearch's highlighter: that one analyses the raw text
    with its standard analyzer, so a folded or stemmed match ("cafe" finding "Café", "runs"
    finding "running") came back without a highlight, or as a fragment of the folded copy
    with its accents gone. It also re-ran the query over ten fields of every hit, in
    Elasticsearch, whose CPU is what limits Search on this machine (docs/search.md)."""
    wanted = set(words(query))
    stems = set(stem_words(query))
    if not wanted or not text:
        return None
    source = text.translate(_APOSTROPHES)  # one character for one, so offsets still hold
    spans = []
    found = list(_WORD.finditer(source))
    if not found:
        return None
    # A stem keeps its word's first letter, so only words starting like a stem are stemmed.
    initials = {w[0] for w in wanted | stems}
    candidates = [(m, word) for m in found if (word := fold(m.group()))[0] in initials]
    stemmed_words = _stemmer()([word for _, word in candidates]) if candidates else []
    for (m, word), stem in zip(candidates, stemmed_words, strict=True):
        if word in wanted or (len(word) <= _MAX_STEMMED_WORD and stem in stems):
            spans.append((m.start(), m.end()))
    if not spans:
        return None
    # The window: starts a little before the first match, at a word boundary.
    start = spans[0][0]
    if start > limit // 4:
        lead = text.rfind(" ", 0, start - limit // 4)
        start = lead + 1 if lead >= 0 else start - limit // 4
    else:
        start = 0
    end = min(len(text), start + limit)
    if end < len(text):
        cut = text.rfind(" ", spans[0][1], end)
        end = cut if cut > spans[0][1] else end
    out = ["…" if start > 0 else ""]
    at = start
    for s, e in spans:
        if s < start or e > end:
            continue
        out += [html.escape(text[at:s]), "<em>", html.escape(text[s:e]), "</em>"]
        at = e
    out.append(html.escape(text[at:end]))
    if end < len(text):
        out.append("…")
    return " ".join("".join(out).split())
