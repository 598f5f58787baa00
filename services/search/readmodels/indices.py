"""What the read models export to the query side: index names, the field names queries match,
and how a query's languages are told. The query side (services/search/*.py) imports nothing else
of the read models (an import contract in pyproject.toml keeps it so): the projections and
counters may change how they fill an index without a query module noticing.

Each name is an alias (``settings.index_alias(NAME)``); the concrete index behind it is
``<alias>-v<schema>-<stamp>`` and is replaced by ``watercooler reindex <name>``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from watercooler.config import Settings

# --- document projections (one alias each) -------------------------------------------------------
PEOPLE = "people"
# The people documents' stamp of when the projection last wrote them (its clock), which the
# search service polls to keep authors' departments current (services/search/departments.py).
PROJECTED_AT = "projected_at"
COMMUNITIES = "communities"
GRAPH = "graph"
STATUSES = "statuses"
POSTS = "posts"  # blog posts and microposts, told apart by `kind`
# The posts schema from which each document carries who may see it (`audience`,
# watercooler.visibility.content_audience): the query side filters such an index by it, and an
# index built before (during a rolling upgrade, until `watercooler reindex posts`) by the fields.
POSTS_AUDIENCE_SCHEMA = 4
BLOGS = "blogs"
COMMENTS = "comments"
BOOKMARKS = "bookmarks"
REACTIONS = "reactions"
WIKI = "wiki"  # spaces and pages, told apart by `kind`
# A space's audience (its fields), as each of its pages carries it (these fields).
PAGE_AUDIENCE = {"visibility": "visibility", "owner": "space_owner", "members": "space_members", "classification": "classification"}
MEDIA = "media"
JAM_IDEAS = "jam-ideas"
JAM_THREADS = "jam-threads"
NOTIFICATIONS = "notifications"
NOTIFICATION_SETTINGS = "notification_settings"
AUDIT = "audit"

# --- counters ------------------------------------------------------------------------------------
# Exact view and download counts: one document per (kind, target, day, department, partition),
# `count` summed by aggregations; `kind` is one of VIEW_KINDS.
VIEW_COUNTS = "view-counts"
VIEW_KINDS = ("views", "downloads")
# One document per jam (id = jam id): totals, leaderboard, hours, forums, visibility.
JAM_STATS = "jam-stats"


# --- what a hit shows of a long text ------------------------------------------------------------
# Each content document carries the start of its text (a post's content, a comment's or wiki
# page's body, a bookmark's notes, a media item's, community's or jam idea's description, a
# person's bio), whitespace collapsed, as `excerpt`: a hit's fallback snippet and an untitled
# item's title come from it, so a search fetches no text field whole. A body may hold 100,000
# characters (a wiki page 200,000); twenty such hits made a response of megabytes that
# Elasticsearch filtered and the service parsed. Only kept in _source, never indexed.
EXCERPT = "excerpt"
# More than the longest cut a hit makes of it (unified.SNIPPET_CHARS, 160), so that the cut of
# the excerpt is the cut of the whole text.
EXCERPT_CHARS = 200
EXCERPT_MAPPING: dict[str, Any] = {"type": "keyword", "index": False, "doc_values": False}


def excerpt(text: str | None) -> str:
    """The first EXCERPT_CHARS characters of ``text`` with its whitespace collapsed (as a hit
    shows text): the same as collapsing all of it and cutting, without collapsing a long body
    whole. Collapsing a prefix gives a prefix of the collapsed whole (a word cut at the end
    stays a prefix of that word), so a long enough collapsed prefix is the answer."""
    if not text:
        return ""
    head = text[: 4 * EXCERPT_CHARS]
    collapsed = " ".join(head.split())
    if len(collapsed) < EXCERPT_CHARS and len(head) < len(text):
        collapsed = " ".join(text.split())  # mostly whitespace at its start
    return collapsed[:EXCERPT_CHARS]


def alias(settings: Settings, name: str) -> str:
    """The alias queries read ``name`` through."""
    return settings.index_alias(name)


def concrete_prefix(settings: Settings, name: str) -> str:
    """What every concrete index behind ``name``'s alias starts with (a hit's ``_index``)."""
    return f"{settings.index_alias(name)}-v"


# --- languages -----------------------------------------------------------------------------------
# Field code -> Elasticsearch's language analyzer. The CJK languages share one (bigrams).
LANGUAGE_ANALYZERS: dict[str, str] = {
    "en": "english", "es": "spanish", "de": "german", "fr": "french", "pt": "portuguese", "it": "italian",
    "nl": "dutch", "ru": "russian", "ar": "arabic", "hi": "hindi", "cjk": "cjk",
}
# Detected (ISO 639-1) language -> its field code.
FIELD_CODE: dict[str, str] = {**{code: code for code in LANGUAGE_ANALYZERS if code != "cjk"}, "zh": "cjk", "ja": "cjk", "ko": "cjk"}
DEFAULT_LANGUAGE = "en"
# Below this probability (of the detector's normalised scores) the text is not trusted to say
# its language: one or two words ("café", "roadmap") often score 0.3-0.6.
MIN_CONFIDENCE = 0.7


@functools.lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    # Only the languages indexed in their own analyzer are told apart: a text in another
    # language is closest to one of them at a low probability, and is indexed as the default.
    identifier.set_languages(sorted(FIELD_CODE))
    return identifier


def warm_up() -> None:
    """Load the detector's model now (about 0.4 s) rather than in the first request."""
    _identifier()


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of the language ``text`` is written in, or None when it is not
    clear (too short, mixed, or not one of the languages indexed)."""
    return classify_language(text)[0]


def classify_language(text: str) -> tuple[str | None, float]:
    """``detect_language``'s answer and the detector's probability for the language it found
    (0.0 for an empty text)."""
    if not text or not text.strip():
        return None, 0.0
    code, probability = _identifier().classify(text[:2000])
    return (code if probability >= MIN_CONFIDENCE else None), float(probability)


def field_code(language: str) -> str | None:
    """The ``lang`` sub-object of a language or BCP 47 tag ("es-MX" -> "es", "ja" -> "cjk")."""
    return FIELD_CODE.get(language.split("-")[0].split("_")[0].lower()) if language else None


def language_field_names(languages: Iterable[str], parts: Iterable[str] = ("title", "body")) -> list[str]:
    """``lang.<code>.<part>`` for each field code in ``languages`` (a part may carry ^boost)."""
    return [f"lang.{code}.{part}" for code in languages for part in parts]


# Queries repeat (a company asks for the same few thousand things far more than once), and the
# detector's answer for one is the same each time: about 0.2 ms of a Search's service CPU, a
# twentieth, went to asking it again. Bounded: some 10,000 short strings are a few MiB.
@functools.lru_cache(maxsize=10_000)
def _query_language(query: str) -> str | None:
    return detect_language(query)


def search_languages(query: str, preferred: Iterable[str] = ()) -> list[str]:
    """The field codes a query is matched in: the default language, the caller's own
    (``preferred``: BCP 47 tags, e.g. from their profile), and the query's, when it is clear
    ("canciones" is Spanish). In this order, without repeats and unknown languages."""
    codes = [DEFAULT_LANGUAGE, *(field_code(tag) for tag in preferred)]
    detected = _query_language(query)
    if detected:
        codes.append(field_code(detected))
    return [code for code in dict.fromkeys(codes) if code]
