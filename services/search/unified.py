"""One search over everything: Search, Suggest and Trending across the content aliases.

Every query runs as the caller: each kind's clause carries its visibility rule
(``visibility.kind_filter``), and hits, snippets, facets, suggestions and trending
counts all come from that one filtered query, so nothing invisible leaks through a count.
User text is only ever the value of match/prefix queries (never query_string syntax).

Analysis is Elasticsearch's (services/search/readmodels/indices.py): the typed text is sent
as it is and analysed per field, without case or accents and in the languages searched (the
caller's and the query's); snippets are the engine's highlights of the same fields.
"""

from __future__ import annotations

import datetime as dt
import html
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch

from watercooler.auth import Principal
from watercooler.config import Settings
from watercooler.errors import InvalidArgument, Unavailable
from watercooler.grpc_server import ENGINE_BUSY_STATUSES
from watercooler.search.v1 import search_pb2 as sp

from .departments import kept_departments, kept_languages
from .queries import TYPO_MAX_EXPANSIONS, TYPO_ONE_EDIT_FROM, TYPO_PREFIX_LENGTH, content_text_query, typo_edits
from .readmodels import indices
from .readmodels.indices import language_field_names, search_languages
from .visibility import Scope, audience_filter, kind_filter, scope_of, scope_with

MAX_QUERY_LENGTH = 256
MAX_TAGS = 10
MAX_FACET_VALUES = 20
# Authors looked up for the department facet (exact up to this many distinct authors).
DEPARTMENT_AUTHORS = 200
# Over a million documents a common word matches a fifth of them: counting every hit and
# faceting all of them made one Search take seconds. Totals are exact up to this many hits
# (Elasticsearch's own default) and facets count the best FACET_SAMPLE matches per shard
# (Elasticsearch's sampler aggregation), which for small result sets is all of them.
TOTAL_HITS_EXACT_UP_TO = 10_000
FACET_SAMPLE = 2_000
SUGGEST_SAMPLE = 1_000
# A query of more words than this that matches nothing goes to the typo query without looking
# for its unknown words first (one small search per word).
MAX_WORDS_CHECKED = 8
# The facets' terms over a sample count the few thousand values of its documents in a hash
# (`execution_hint: map`) rather than through the field's global ordinals, which are sized by
# every value of the index: over a million documents the author facets' share of a Search's
# Elasticsearch time fell by a third (1.7 -> 1.2 ms in its profile).
SAMPLE_TERMS = {"execution_hint": "map"}
# top_rated / most_viewed rank at most this many rated / viewed items, then page over them.
MAX_RANKED = 1000
SNIPPET_CHARS = 160

# kind -> (projection alias, extra filter selecting the kind inside that index)
KINDS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "post": (indices.POSTS, [{"term": {"kind": "blog"}}]),
    "micropost": (indices.POSTS, [{"term": {"kind": "micro"}}]),
    "comment": (indices.COMMENTS, []),
    "bookmark": (indices.BOOKMARKS, []),
    "wiki_page": (indices.WIKI, [{"term": {"kind": "page"}}]),
    "media": (indices.MEDIA, []),
    "person": (indices.PEOPLE, []),
    "community": (indices.COMMUNITIES, []),
    "jam_idea": (indices.JAM_IDEAS, [{"term": {"merged_into": ""}}]),
    "jam_thread": (indices.JAM_THREADS, []),
}
ORDERS = ("relevance", "newest", "top_rated", "most_viewed")
# What a read_mask may name (AIP-157): SearchResponse's fields.
RESPONSE_FIELDS = ("hits", "total_size", "facets", "next_page_token")
# What a Search without a read_mask returns: everything but the facets. AIP-157 lets a default
# leave out fields that are expensive to compute; the facets' aggregations were 30 % of a
# Search's Elasticsearch CPU over a million documents (12.2 -> 8.5 ms replayed), while a search
# box shows them only beside its first page. "*" or "facets" in the mask asks for them.
DEFAULT_RESPONSE_FIELDS = ("hits", "total_size", "next_page_token")
RANKED_KINDS = {"top_rated": ("post",), "most_viewed": ("wiki_page", "media")}

# Fields holding the author of each kind, and whether they store `profiles/{id}` or the bare id.
AUTHOR_FIELDS = {"author_id": False, "owner_id": False, "author": False, "owner": True}
# The kinds whose index maps each field a facet counts: an aggregation over a field none of the
# kinds asked for has is left out of the request (its buckets would be empty anyway).
FACET_FIELD_KINDS = {
    "tags": ("post", "micropost", "bookmark", "media"),
    "department": ("person",),
    "author_id": ("post", "micropost", "comment"),
    "owner_id": ("bookmark",),
    "author": ("wiki_page", "jam_idea", "jam_thread"),
    "owner": ("wiki_page", "media"),
}
# Elasticsearch counts the searches of each of these groups per index (`GET <index>/_stats/search
# ?groups=...`): which index each RPC's queries touch, and how many of them computed facets.
STATS_SEARCH = "wc-search"
STATS_FACETS = "wc-search-facets"
STATS_SUGGEST = "wc-suggest"
# The people-index poll that keeps callers' languages until their profile changes
# (departments.KeptLanguages): background work, not a Search's own, so it is counted apart.
STATS_LANGUAGES_POLL = "wc-languages-poll"
AUTHOR_KINDS = ("post", "micropost", "comment", "bookmark", "wiki_page", "media", "jam_idea", "jam_thread")
# Which kinds each filter applies to: asking for a filter restricts the search to them.
FILTER_KINDS = {
    "author": AUTHOR_KINDS,
    "tags": ("post", "micropost", "bookmark", "media"),
    "blog": ("post",),
    "space": ("wiki_page",),
    "community": ("post", "micropost", "comment", "bookmark"),
    "jam": ("jam_idea", "jam_thread"),
}
# Text fields, all without case or accents: the combined copies (title and body of each index),
# and the fields as written that carry the title boosts; then each item's language copy
# (``lang.<code>.title^3`` / ``.body``, for the languages searched). Bodies, notes and
# descriptions are in every index's combined field already; matching them by themselves as
# well cost 15 % of a Search's Elasticsearch time over a million documents (8.0 -> 6.8 ms mean
# `took`, 150 queries). A person's bio has no combined copy, so it stays.
FOLDED_FIELDS = ["name_folded^3", "folded", "text_folded"]
RAW_FIELDS = ["title^3", "display_name^3", "bio"]
# A typo is looked for in the combined fields only, plus a person's bio (it has no combined
# copy): titles and names are in them already, and each field a fuzzy query covers is one more
# Levenshtein automaton run over one more term dictionary in every index (over a million
# documents the typo query cost 18.0 ms of Elasticsearch CPU on these four fields, 22.4-26.2 ms
# on the six, both with fuzziness AUTO).
TYPO_FIELDS = [*FOLDED_FIELDS, "bio"]
# Which of them each index maps (without boosts): a typo pass asks the term suggester of each
# for the words nearest the typed ones (``_nearest_words``), and it refuses a field its index
# lacks. tests/unit/test_text_analysis.py holds this against the projections' mappings.
TYPO_FIELDS_OF: dict[str, tuple[str, ...]] = {
    indices.PEOPLE: ("name_folded", "bio"), indices.COMMUNITIES: ("name_folded", "folded"),
    indices.POSTS: ("folded",), indices.COMMENTS: ("folded",), indices.BOOKMARKS: ("folded",), indices.WIKI: ("folded",),
    indices.MEDIA: ("folded",), indices.JAM_IDEAS: ("text_folded",), indices.JAM_THREADS: ("text_folded",),
}
# Tie-breakers after the primary sort: unique per document within each index.
TIEBREAK = ["_index", "name", "employee_id", "community_id", "idea_id", "thread_id", "reply_id", "space_id", "title.raw", "created_at", "media_id"]


def _tiebreak() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"_index": "asc"}]
    for field in TIEBREAK[1:]:
        out.append({field: {"order": "asc", "missing": "_last", "unmapped_type": "date" if field == "created_at" else "keyword"}})
    return out


def check_query(text: str, field: str = "query", limit: int = MAX_QUERY_LENGTH) -> str:
    if len(text) > limit:
        raise InvalidArgument(f"must be at most {limit} characters", field=field)
    if any(ord(ch) < 32 and ch not in "\t\n" for ch in text):
        raise InvalidArgument("must not contain control characters", field=field)
    return text.strip()


def text_query(text: str, languages: list[str], typos: bool = True) -> dict[str, Any]:
    """Phrase, then all words, then the words in ``languages``, then typos; titles and names boosted."""
    return content_text_query(text, FOLDED_FIELDS, RAW_FIELDS, languages, typos=typos, typo_fields=TYPO_FIELDS)


def index_of(settings: Settings, kind: str) -> str:
    return settings.index_alias(KINDS[kind][0])


# The projections whose documents carry who may see them from a schema on: their kinds are
# filtered by that one field (``visibility.audience_filter``) in an index of that schema, and by
# the fields (``kind_filter``) in one built before, which a rolling upgrade still serves until
# `watercooler reindex` has rebuilt it. Elasticsearch decides the `_index` prefixes per shard,
# before matching a document: a search pays for one of the two only.
AUDIENCE_SCHEMAS = {indices.POSTS: indices.POSTS_AUDIENCE_SCHEMA}


def _in_index(settings: Settings, projection: str, extra: list[dict[str, Any]], rules: list[dict[str, Any]], audience: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The clause keeping what the caller may see in ``projection``'s index: ``extra`` (the
    kind's own terms) and the rule, ``audience`` where the index's documents carry it."""
    # A concrete index behind an alias is named `<alias>-v<schema>-<stamp>`.
    alias = settings.index_alias(projection)
    since = AUDIENCE_SCHEMAS.get(projection)
    if audience is None or since is None:
        return {"bool": {"filter": [{"prefix": {"_index": f"{alias}-v"}}, *extra, *rules]}}
    older = [{"prefix": {"_index": f"{alias}-v{n}-"}} for n in range(1, since)]
    return {"bool": {"should": [
        {"bool": {"filter": [{"prefix": {"_index": f"{alias}-v"}}, *extra, *audience], "must_not": older}},
        {"bool": {"filter": [{"bool": {"should": older, "minimum_should_match": 1}}, *extra, *rules]}},
    ], "minimum_should_match": 1}}


def _rules(scope: Scope, kind: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """``kind``'s rule in both forms: over the fields, and over the audience (None: none carried)."""
    return kind_filter(scope, kind), audience_filter(scope, kind)


def _kind_clause(settings: Settings, scope: Scope, kind: str) -> dict[str, Any]:
    """The clause keeping what the caller may see of ``kind``."""
    projection, extra = KINDS[kind]
    return _in_index(settings, projection, extra, *_rules(scope, kind))


def visible_clauses(settings: Settings, scope: Scope, kinds: list[str]) -> list[dict[str, Any]]:
    """One clause per kind asked for, except that the kinds sharing an index under one rule
    (posts and microposts) become one clause without their kind terms when all are asked for.
    Two clauses checked every matching post twice: over a million documents, merging them cut
    the posts index's share of a Search in Elasticsearch's profile from 10.3 to 6.2 ms."""
    out: list[dict[str, Any]] = []
    done: set[str] = set()
    made: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]] | None]] = {}  # each kind's rules made once

    def rules_of(kind: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
        if kind not in made:
            made[kind] = _rules(scope, kind)
        return made[kind]

    for kind in kinds:
        if kind in done:
            continue
        alias = KINDS[kind][0]
        siblings = [k for k in KINDS if KINDS[k][0] == alias]
        if len(siblings) > 1 and set(siblings) <= set(kinds) and all(rules_of(k) == rules_of(kind) for k in siblings):
            out.append(_in_index(settings, alias, [], *rules_of(kind)))
            done.update(siblings)
        else:
            out.append(_in_index(settings, alias, KINDS[kind][1], *rules_of(kind)))
            done.add(kind)
    return out


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NAIVE_EPOCH = _EPOCH.replace(tzinfo=None)
_index_prefixes: dict[str, tuple[tuple[str, str, str], ...]] = {}  # namespace -> (index prefix, projection, kind)


def kind_of_hit(settings: Settings, hit: dict[str, Any]) -> str:
    index, doc = hit["_index"], hit["_source"]
    prefixes = _index_prefixes.get(settings.namespace)
    if prefixes is None:  # made once per deployment, not per hit (about 45 alias names a Search)
        prefixes = _index_prefixes[settings.namespace] = tuple((settings.index_alias(projection) + "-v", projection, kind) for kind, (projection, _) in KINDS.items())
    for prefix, projection, kind in prefixes:
        if index.startswith(prefix):
            if projection == "posts":
                return "post" if doc.get("kind") == "blog" else "micropost"
            return kind
    return "unknown"


def _profile(value: str) -> str:
    return value if not value or value.startswith(("profiles/", "communities/")) else f"profiles/{value}"


def _employee_id(value: str) -> str:
    """The person an author field names ("e42" or "profiles/e42"); "" for a community or none
    (what ``_profile`` makes a resource name of)."""
    if value.startswith("profiles/"):
        return value[len("profiles/"):]
    return "" if value.startswith("communities/") else value


def _short(text: str, n: int = 80) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


# The field holding each kind's text (what ``excerpt`` starts), as the projections name it.
TEXT_FIELDS = {"post": "content", "micropost": "content", "comment": "body", "bookmark": "notes", "wiki_page": "body", "media": "description",
               "person": "bio", "community": "description", "jam_idea": "description", "jam_thread": "body"}


def describe(kind: str, hit: dict[str, Any]) -> dict[str, Any]:
    """kind, resource name, title, author, tags, parent and fallback text of a hit. The text is
    the document's excerpt (indices.EXCERPT) where it has one, else its whole text field (a
    reader that fetched it): cut to a title or snippet, both are the same."""
    d, doc_id = hit["_source"], hit["_id"]
    field = TEXT_FIELDS.get(kind)
    text = (d[indices.EXCERPT] if indices.EXCERPT in d else d.get(field) or "") if field else ""
    if kind in ("post", "micropost"):
        title = d.get("title") or _short(text)
        return dict(name=d["name"], title=title, author=_profile(d["author_id"]), tags=d.get("tags", []), parent=f"blogs/{d['blog']}" if d.get("blog") else "", text=text)
    if kind == "comment":
        return dict(name=d["name"], title=_short(text), author=_profile(d["author_id"]), tags=[], parent=d.get("target", ""), text=text)
    if kind == "bookmark":
        return dict(name=d["name"], title=d.get("title") or d.get("url", ""), author=_profile(d["owner_id"]), tags=d.get("tags", []), parent=d.get("url", ""), text=text)
    if kind == "wiki_page":
        return dict(name=f"pages/{doc_id}", title=d.get("title", ""), author=_profile(d.get("author", "")), tags=[], parent=f"spaces/{d['space_id']}", text=text)
    if kind == "media":
        owner = d.get("owner", "")
        return dict(name=f"media/{doc_id}", title=d.get("title", ""), author=owner if owner.startswith("profiles/") else "", tags=d.get("tags", []), parent=owner if owner.startswith("communities/") else "", text=text)
    if kind == "person":
        about = " · ".join(x for x in (d.get("title", ""), d.get("department", ""), d.get("country", "")) if x)
        return dict(name=f"profiles/{d['employee_id']}", title=d.get("display_name", ""), author="", tags=d.get("expertise", []), parent="", text=about or text)
    if kind == "community":
        return dict(name=f"communities/{d['community_id']}", title=d.get("display_name", ""), author="", tags=[], parent="", text=text)
    if kind == "jam_idea":
        return dict(name=f"jams/{d['jam_id']}/ideas/{d['idea_id']}", title=d.get("title", ""), author=_profile(d.get("author", "")), tags=[], parent=f"jams/{d['jam_id']}", text=text)
    if kind == "jam_thread":
        name = f"jams/{d['jam_id']}/threads/{d['thread_id']}" + (f"/replies/{d['reply_id']}" if d.get("kind") == "reply" else "")
        return dict(name=name, title=d.get("title") or _short(text), author=_profile(d.get("author", "")), tags=[], parent=f"jams/{d['jam_id']}", text=text)
    return dict(name=doc_id, title="", author="", tags=[], parent="", text="")


# What a Search fetches of a hit: only what describe and _add_hit read. Not a text field, which
# may be 100,000 characters long (the excerpt stands for it; the highlighter still reads the
# text inside Elasticsearch), nor the copies, nor an audience: a wiki page carries its space's
# member list and a community its complete one, tens of thousands of ids for a large one.
HIT_SOURCE_FIELDS = sorted({
    "name", "title", "author_id", "owner_id", "author", "owner", "tags", "blog", "url", "target", "space_id", "kind", "created_at",
    "employee_id", "display_name", "department", "country", "expertise", "community_id", "jam_id", "idea_id", "thread_id", "reply_id",
    indices.EXCERPT,
})
# Where a snippet is looked for, in order: the hit's text (body, notes, description, a person's
# bio) in the languages searched, then as written, then its title or name likewise.
SNIPPET_TEXTS = tuple(dict.fromkeys(TEXT_FIELDS.values()))  # content, body, notes, description, bio
SNIPPET_TITLES = ("title", "display_name")
# Text past this many characters is not looked at for a snippet (Elasticsearch refuses to
# highlight past its index setting, 1,000,000 characters, rather than stopping there).
SNIPPET_MAX_ANALYZED = 100_000


def snippet_fields(languages: list[str]) -> list[str]:
    """The fields a snippet may come from, best first."""
    return [*language_field_names(languages, ("body",)), *SNIPPET_TEXTS, *language_field_names(languages, ("title",)), *SNIPPET_TITLES]


def highlight_request(text: str, languages: list[str], nearest: Sequence[str] = ()) -> dict[str, Any]:
    """Elasticsearch's highlighter over the snippet fields: one fragment each, the words the
    query matches (as each field analyses them: "canciones" marks "canción" in a Spanish item,
    "cafe" marks "Café") in <em>, the rest HTML-escaped. Its own query, the typed text over the
    fields shown: the search's matches the combined copies, which are not kept to be shown.

    ``nearest``: after a typo pass, the index's words nearest the typed ones (``_nearest_words``),
    marked as well. Never a fuzzy highlight query: over postings with offsets the highlighter
    runs its automaton over every term of a field for each hit it marks: a typo Search cost
    52-61 ms of Elasticsearch CPU over a million documents, 25-29 with the words asked for
    first (docs/search.md, "A typo pass")."""
    written = [*SNIPPET_TEXTS, *SNIPPET_TITLES]
    query = {"bool": {"should": [
        {"multi_match": {"query": " ".join([text, *nearest]), "fields": written}},
        {"multi_match": {"query": text, "fields": language_field_names(languages, ("body", "title"))}},
    ], "minimum_should_match": 1}}
    return {"type": "unified", "encoder": "html", "fragment_size": SNIPPET_CHARS, "number_of_fragments": 1,
            "max_analyzed_offset": SNIPPET_MAX_ANALYZED, "highlight_query": query,
            "fields": {field: {} for field in snippet_fields(languages)}}


def snippet_of(hit: dict[str, Any], fields: list[str], fallback: str) -> str:
    """The engine's fragment of the first of ``fields`` it highlighted in the hit; else the
    start of the hit's text (a query with no words, or a list without one)."""
    found = hit.get("highlight") or {}
    for field in fields:
        if found.get(field):
            return " ".join(found[field][0].split())
    return html.escape(_short(fallback, SNIPPET_CHARS))


def tag_pattern(prefix: str) -> str:
    """A Lucene regular expression for the folded tags starting with ``prefix`` (lowercased).
    A Latin letter beyond ASCII stands for the one to three ASCII letters ``asciifolding``
    makes of it ("é" -> "e", "ß" -> "ss"); other scripts are kept by it, so stand for themselves."""
    def one(ch: str) -> str:
        if ch.isascii():
            return ch if ch.isalnum() else "\\" + ch
        return "[a-z0-9]{1,3}" if "LATIN" in unicodedata.name(ch, "") else ch
    return "".join(one(ch) for ch in prefix) + ".*"




class EngineRefused(RuntimeError):
    """Elasticsearch refused a search we built: a defect of ours, answered INTERNAL and logged."""


def answers(found: Any) -> list[dict[str, Any]]:
    """The responses of an ``_msearch``, each a search's answer. A search that failed is never
    read as one without hits (a suggestion list or trending board silently short of a part):
    UNAVAILABLE when the engine was busy or a shard away (retry), else an internal error."""
    responses = found["responses"]
    for response in responses:
        if "error" in response:
            error = response["error"]
            reason = (error.get("reason") or error.get("type")) if isinstance(error, dict) else error
            if response.get("status") in ENGINE_BUSY_STATUSES:
                raise Unavailable(f"the search engine could not answer now ({response.get('status')}); retry after a while")
            raise EngineRefused(f"{response.get('status')}: {reason}")
    return responses


@dataclass(frozen=True)
class SearchQuery:
    """What a Search asks, checked (the servicer builds it from the request)."""

    text: str  # the words, stripped; may be empty
    kinds: list[str]  # the kinds searched: those asked for (or all) that every filter and the order apply to
    order: str  # one of ORDERS
    filters: dict[str, Any]  # filter name (FILTER_KINDS) -> its value: an id, or the tags lowercased without '#'
    start: dt.datetime | None  # created at or after
    end: dt.datetime | None  # created before
    wanted: set[str]  # the response fields to fill (RESPONSE_FIELDS)


class Search:
    def __init__(self, es: AsyncElasticsearch, settings: Settings):
        self.es = es
        self.settings = settings

    # --- Search ------------------------------------------------------------------------------
    @staticmethod
    def _filters(q: SearchQuery) -> list[dict[str, Any]]:
        f, out = q.filters, []
        if "author" in f:
            who = f["author"]
            out.append({"bool": {"should": [{"term": {field: f"profiles/{who}" if prefixed else who}} for field, prefixed in AUTHOR_FIELDS.items()], "minimum_should_match": 1}})
        for tag in f.get("tags", []):
            out.append({"term": {"tags.folded": tag}})  # without case or accents: "cafe" is "café"
        if "blog" in f:
            out.append({"term": {"blog": f["blog"]}})
        if "space" in f:
            out.append({"term": {"space_id": f["space"]}})
        if "community" in f:
            out.append({"term": {"community": f["community"]}})
        if "jam" in f:
            out.append({"term": {"jam_id": f["jam"]}})
        if q.start or q.end:
            bounds = {}
            if q.start:
                bounds["gte"] = q.start.isoformat()
            if q.end:
                bounds["lt"] = q.end.isoformat()
            out.append({"range": {"created_at": bounds}})
        return out

    @staticmethod
    def _aggs(kinds: list[str]) -> dict[str, Any]:
        """The facets' aggregations, only over fields the kinds asked for have."""
        def wanted(field: str) -> bool:
            return any(kind in FACET_FIELD_KINDS[field] for kind in kinds)

        by_index: dict[str, Any] = {"terms": {"field": "_index", "size": 50}}
        if "post" in kinds or "micropost" in kinds:  # posts and microposts share an index
            by_index["aggs"] = {"kind": {"terms": {"field": "kind", "size": 5}}}
        aggs: dict[str, Any] = {"by_index": by_index}
        if wanted("tags"):
            aggs["tags"] = {"terms": {"field": "tags", "size": MAX_FACET_VALUES, **SAMPLE_TERMS}}
        if wanted("department"):
            aggs["people_departments"] = {"terms": {"field": "department", "size": MAX_FACET_VALUES, **SAMPLE_TERMS}}
        for field in AUTHOR_FIELDS:
            if wanted(field):
                aggs[f"author_{field}"] = {"terms": {"field": field, "size": DEPARTMENT_AUTHORS, **SAMPLE_TERMS}}
        return aggs

    async def search(self, principal: Principal, q: SearchQuery, size: int, after: Any) -> tuple[sp.SearchResponse, Any]:
        """Search as the caller: (the response with the parts ``q.wanted`` names, without its
        page token, and the next page's position or None: the last hit's sort values, or an
        offset into the ranking for top_rated and most_viewed). ``after`` is the position a
        page token held."""
        scope, profile_languages = await self._scope_and_languages(principal, q)
        visible = {"bool": {"should": visible_clauses(self.settings, scope, q.kinds), "minimum_should_match": 1}}
        filters = [visible, *self._filters(q)]
        # Typos are matched only when the words themselves match nothing: fuzzy expansion over
        # a million documents was most of a Search's cost (measured over 100,000 documents at 100/s
        # offered: 41-53/s achieved with it on every query, 99/s without).
        languages = search_languages(q.text, profile_languages) if q.text else []
        must: list[dict[str, Any]] = [text_query(q.text, languages, typos=False)] if q.text else []
        indices = ",".join(sorted({index_of(self.settings, k) for k in q.kinds}))
        body: dict[str, Any] = {"track_total_hits": TOTAL_HITS_EXACT_UP_TO, "_source": HIT_SOURCE_FIELDS, "stats": [STATS_SEARCH]}
        wanted = q.wanted
        listed = bool(wanted & {"hits", "next_page_token"})
        highlighted = bool(q.text) and "hits" in wanted
        if highlighted:
            body["highlight"] = highlight_request(q.text, languages)
        if after is None and "facets" in wanted:
            # Facets come with the first page: the later pages of one query share them, and
            # they were a third of a Search's time in Elasticsearch over a million documents.
            body["aggs"] = {"sample": {"sampler": {"shard_size": FACET_SAMPLE}, "aggs": self._aggs(q.kinds)}}
            body["stats"] = [STATS_SEARCH, STATS_FACETS]
        ranked: dict[str, float] = {}
        if q.order in RANKED_KINDS:
            ranked = await self._ranking(q.order)
            filters.append({"ids": {"values": [name.split("/", 1)[1] for name in ranked]}})
            # Up to MAX_RANKED hits come back to be ordered here: only the page shown is highlighted.
            body.pop("highlight", None)
            body.update(size=MAX_RANKED, query={"bool": {"must": must, "filter": filters}})
        else:
            should = []
            if q.text:
                # Recency: fresh content gets up to one point more than a year-old one.
                should.append({"distance_feature": {"field": "created_at", "origin": "now", "pivot": "14d", "boost": 1.0}})
            body["query"] = {"bool": {"must": must, "filter": filters, "should": should}}
            primary = [{"_score": "desc"}] if q.order == "relevance" and q.text else []
            body["sort"] = [*primary, {"created_at": {"order": "desc", "unmapped_type": "date"}}, *_tiebreak()]
            body["size"] = size if listed else 0
            if after is not None:
                body["search_after"] = after
        result = await self.es.search(index=indices, ignore_unavailable=True, **body)
        typos = bool(q.text) and result["hits"]["total"]["value"] == 0 and await self._has_unknown_word(indices, q.text, languages, filters)
        nearest: list[str] = []
        if typos:
            must[0] = text_query(q.text, languages, typos=True)  # the same dict object sits in body["query"]
            if highlighted:
                nearest = await self._nearest_words(q.kinds, q.text)
            if highlighted and not ranked:
                body["highlight"] = highlight_request(q.text, languages, nearest)
            result = await self.es.search(index=indices, ignore_unavailable=True, **body)
        hits = result["hits"]["hits"]
        snippets = snippet_fields(languages)
        response = sp.SearchResponse(total_size=result["hits"]["total"]["value"] if "total_size" in wanted else 0)
        next_position: Any = None
        if ranked:
            described = [(h, kind_of_hit(self.settings, h)) for h in hits]
            described.sort(key=lambda hk: (-ranked.get(describe(hk[1], hk[0])["name"], 0), describe(hk[1], hk[0])["name"]))
            offset = int(after or 0)
            page = described[offset: offset + size]
            if offset + size < len(described):
                next_position = offset + size
            if highlighted and page:
                await self._highlight(indices, [hit for hit, _ in page], q.text, languages, nearest)
            if "hits" in wanted:  # only the page shown, of the MAX_RANKED ordered
                await self._texts_without_excerpt([hit for hit, _ in page])
            for hit, kind in page if "hits" in wanted else ():
                self._add_hit(response, hit, kind, ranked.get(describe(kind, hit)["name"], 0.0), snippets)
        else:
            if "hits" in wanted:
                await self._texts_without_excerpt(hits)
            for hit in hits if "hits" in wanted else ():
                self._add_hit(response, hit, kind_of_hit(self.settings, hit), hit.get("_score") or 0.0, snippets)
            if listed and len(hits) == size:
                next_position = hits[-1]["sort"]
        if "facets" in wanted:
            await self._facets(response, result.get("aggregations", {}).get("sample", {}))
        return response, next_position

    async def _texts_without_excerpt(self, hits: list[dict[str, Any]]) -> None:
        """Give the hits from documents written before they carried an excerpt (an index not
        rebuilt since, or a document not changed since: indices.EXCERPT) one, from their text
        field read for them alone, in one round trip. Such hits cost what every hit did before."""
        wanting = [(hit, TEXT_FIELDS[kind]) for hit in hits if indices.EXCERPT not in hit["_source"]
                   for kind in (kind_of_hit(self.settings, hit),) if kind in TEXT_FIELDS]
        if not wanting:
            return
        found = await self.es.mget(docs=[{"_index": hit["_index"], "_id": hit["_id"], "_source": [field]} for hit, field in wanting])
        texts = {(d["_index"], d["_id"]): d.get("_source") or {} for d in found["docs"] if d.get("found")}
        for hit, field in wanting:
            hit["_source"][indices.EXCERPT] = indices.excerpt(texts.get((hit["_index"], hit["_id"]), {}).get(field))

    async def _has_unknown_word(self, indices: str, text: str, languages: list[str], filters: list[dict[str, Any]]) -> bool:
        """Whether some word of ``text`` (which matched nothing as a whole) is in none of the
        documents the caller may see under the search's filters: only then is it worth looking
        for typos. Words that all exist but never together are no typo, and the typo query (a
        Levenshtein automaton per word over every term dictionary searched) cost about 1.7 times
        a first query's Elasticsearch CPU over a million documents. One word that matched nothing
        is unknown already; each word of several is looked for by a search that stops at its first
        hit, all in one round trip. The check sees what the search sees, so it tells nothing about
        documents the caller may not see."""
        words = list(dict.fromkeys(text.split()))
        if len(words) <= 1 or len(words) > MAX_WORDS_CHECKED:
            return True
        operations: list[dict[str, Any]] = []
        for word in words:
            operations += [{"index": indices, "ignore_unavailable": True},
                           {"size": 0, "track_total_hits": 1, "terminate_after": 1, "stats": [STATS_SEARCH],
                            "query": {"bool": {"must": [text_query(word, languages, typos=False)], "filter": filters}}}]
        found = answers(await self.es.msearch(searches=operations))
        return any(r["hits"]["total"]["value"] == 0 for r in found)

    async def _nearest_words(self, kinds: list[str], text: str) -> list[str]:
        """The words of the indices of ``kinds`` within the typo tier's edits of a typed word, as
        many as it expands each to (Elasticsearch's term suggester, one round trip): what a typo
        pass marks in its snippets. They come from every document, as the fuzzy query's
        expansions do; only what a hit the caller may see holds is ever marked. Only the marks
        depend on them: an index that refuses the ask (one built before a field it names, behind
        its alias until `watercooler reindex`) adds none, and the Search goes on. Of a longer
        query, the first MAX_WORDS_CHECKED words only: the ask grows with each."""
        words = [word for word in dict.fromkeys(text.split()) if typo_edits(word)][:MAX_WORDS_CHECKED]
        operations: list[dict[str, Any]] = []
        for projection in sorted({KINDS[kind][0] for kind in kinds}):
            suggest = {f"{field}-{i}": {"text": word, "term": {
                "field": field, "suggest_mode": "always", "size": TYPO_MAX_EXPANSIONS, "max_edits": typo_edits(word),
                "prefix_length": TYPO_PREFIX_LENGTH, "min_word_length": TYPO_ONE_EDIT_FROM}}
                for field in TYPO_FIELDS_OF.get(projection, ()) for i, word in enumerate(words)}
            if suggest:
                operations += [{"index": self.settings.index_alias(projection), "ignore_unavailable": True},
                               {"size": 0, "track_total_hits": False, "stats": [STATS_SEARCH], "suggest": suggest}]
        if not operations:
            return []
        found = (await self.es.msearch(searches=operations))["responses"]
        return sorted({option["text"] for response in found if "error" not in response
                       for entry in response.get("suggest", {}).values() for token in entry for option in token["options"]})

    async def _highlight(self, indices: str, hits: list[dict[str, Any]], text: str, languages: list[str], nearest: Sequence[str]) -> None:
        """Add Elasticsearch's highlights to ``hits`` (already found, and visible to the caller)."""
        found = await self.es.search(index=indices, ignore_unavailable=True, size=len(hits), source=False, stats=[STATS_SEARCH],
                                     query={"ids": {"values": [h["_id"] for h in hits]}},
                                     highlight=highlight_request(text, languages, nearest))
        marks = {(h["_index"], h["_id"]): h.get("highlight") for h in found["hits"]["hits"]}
        for hit in hits:
            hit["highlight"] = marks.get((hit["_index"], hit["_id"]))

    def _add_hit(self, response: sp.SearchResponse, hit: dict[str, Any], kind: str, score: float, snippets: list[str]) -> None:
        d = describe(kind, hit)
        out = response.hits.add(kind=kind, name=d["name"], title=d["title"], snippet=snippet_of(hit, snippets, d["text"]), author=d["author"], tags=d["tags"], score=score, parent=d["parent"])
        created = hit["_source"].get("created_at")
        if created:
            # Seconds and nanos from the difference to the epoch: protobuf's FromDatetime (in Python)
            # was a fifth of this method's time. A time without a zone is UTC, as the projections write it.
            moment = dt.datetime.fromisoformat(created)
            since = moment - (_EPOCH if moment.tzinfo else _NAIVE_EPOCH)
            out.create_time.seconds, out.create_time.nanos = since.days * 86_400 + since.seconds, since.microseconds * 1000

    async def _facets(self, response: sp.SearchResponse, aggs: dict[str, Any]) -> None:
        kinds: dict[str, int] = {}
        for bucket in aggs.get("by_index", {}).get("buckets", []):
            fake = {"_index": bucket["key"], "_source": {}}
            inner = bucket.get("kind", {}).get("buckets", [])
            if bucket["key"].startswith(self.settings.index_alias(indices.POSTS) + "-v"):
                for b in inner:
                    k = "post" if b["key"] == "blog" else "micropost"
                    kinds[k] = kinds.get(k, 0) + b["doc_count"]
            else:
                k = kind_of_hit(self.settings, fake)
                kinds[k] = kinds.get(k, 0) + bucket["doc_count"]
        tags = [(b["key"], b["doc_count"]) for b in aggs.get("tags", {}).get("buckets", [])]
        # By employee id: up to DEPARTMENT_AUTHORS buckets a field, and only the authors shown are
        # named (naming each bucket and splitting the name again for its department was about
        # a third of this method's CPU with 800 authors).
        by_author: dict[str, int] = {}
        for field in AUTHOR_FIELDS:
            for b in aggs.get(f"author_{field}", {}).get("buckets", []):
                author = _employee_id(b["key"])
                if author:
                    by_author[author] = by_author.get(author, 0) + b["doc_count"]
        # No department (none given, or an erased person's tombstone) is no facet value.
        departments: dict[str, int] = {b["key"]: b["doc_count"] for b in aggs.get("people_departments", {}).get("buckets", []) if b["key"]}
        if by_author:
            known = await kept_departments(self.es, self.settings, STATS_FACETS).of(by_author)
            for author, n in by_author.items():
                dep = known.get(author)
                if dep:
                    departments[dep] = departments.get(dep, 0) + n

        def facet(field: str, counts: Any, prefix: str = "") -> None:
            ordered = sorted(counts, key=lambda kv: (-kv[1], kv[0]))[:MAX_FACET_VALUES]
            response.facets.add(field=field, values=[sp.FacetValue(value=prefix + k, count=n) for k, n in ordered])

        facet("kind", kinds.items())
        facet("tags", tags)
        # "profiles/<id>" orders as <id> does: the prefix is added to the values shown only.
        facet("author", by_author.items(), prefix="profiles/")
        facet("department", departments.items())

    async def _scope_and_languages(self, principal: Principal, q: SearchQuery) -> tuple[Scope, tuple[str, ...]]:
        """The caller's scope for ``q.kinds`` and, for a text query, their profile's languages
        (BCP 47 tags), kept until they change (services/search/departments.py); when neither is
        kept, read in one round trip (they were two requests at once, and every request is about
        half a millisecond of this service's CPU)."""
        if not q.text or not principal.is_employee:
            return await scope_of(self.es, self.settings, principal, q.kinds), ()
        kept = kept_languages(self.es, self.settings, STATS_LANGUAGES_POLL)
        languages = await kept.kept(principal.subject)
        if languages is not None:
            return await scope_of(self.es, self.settings, principal, q.kinds), languages
        profile = (self.settings.index_alias(indices.PEOPLE), {"query": {"term": {"employee_id": principal.subject}}, "_source": ["languages"], "size": 1})
        scope, hits = await scope_with(self.es, self.settings, principal, q.kinds, also=profile)
        if hits is None:  # the scope was kept: the languages alone
            hits = (await self.es.search(index=profile[0], ignore_unavailable=True, **profile[1]))["hits"]["hits"]
        return scope, kept.keep(principal.subject, hits[0]["_source"] if hits else None)

    async def _ranking(self, order: str) -> dict[str, float]:
        """name -> rating average (top_rated) or views/downloads (most_viewed), best first."""
        if order == "top_rated":
            result = await self.es.search(
                index=self.settings.index_alias(indices.REACTIONS), size=0, stats=[STATS_SEARCH],
                query={"bool": {"filter": [{"term": {"kind": "rating"}}, {"term": {"active": True}}, {"term": {"deleted": False}}]}},
                aggs={"t": {"terms": {"field": "target", "size": MAX_RANKED, "order": [{"avg": "desc"}, {"_key": "asc"}]}, "aggs": {"avg": {"avg": {"field": "value"}}}}},
            )
            return {b["key"]: round(b["avg"]["value"], 3) for b in result["aggregations"]["t"]["buckets"]}
        result = await self.es.search(
            index=indices.alias(self.settings, indices.VIEW_COUNTS), size=0, stats=[STATS_SEARCH],
            aggs={"t": {"terms": {"field": "target", "size": MAX_RANKED, "order": [{"n": "desc"}, {"_key": "asc"}]}, "aggs": {"n": {"sum": {"field": "count"}}}}},
        )
        return {b["key"]: b["n"]["value"] for b in result["aggregations"]["t"]["buckets"]}

    # --- Suggest ----------------------------------------------------------------------------------
    SUGGEST_KINDS = ("people", "tags", "titles", "communities")
    # The search kinds each suggestion kind looks in.
    SUGGEST_SEARCHES = {"people": ("person",), "communities": ("community",), "titles": ("post", "wiki_page", "media", "jam_idea"),
                        "tags": ("post", "micropost", "bookmark", "media")}

    async def suggest(self, principal: Principal, prefix: str, kinds: list[str], size: int) -> sp.SuggestResponse:
        """Suggest as the caller: up to ``size`` completions of ``prefix`` (checked, not empty)
        per kind of ``kinds`` (SUGGEST_KINDS), best first."""
        folded = prefix  # analysed by each field: without case or accents
        scope = await scope_of(self.es, self.settings, principal, [k for kind in kinds for k in self.SUGGEST_SEARCHES[kind]])
        searches: list[tuple[str, str, dict[str, Any]]] = []  # (kind, index, body)
        if "people" in kinds:
            body = {"size": size, "_source": ["employee_id", "display_name"], "query": {"bool": {
                "must": [{"match_phrase_prefix": {"name_folded": {"query": folded, "max_expansions": 50}}}],
                "filter": [_kind_clause(self.settings, scope, "person")]}}, "sort": ["_score", {"sort_key": "asc"}, {"employee_id": "asc"}]}
            searches.append(("person", index_of(self.settings, "person"), body))
        if "communities" in kinds:
            body = {"size": size, "_source": ["community_id", "display_name"], "query": {"bool": {
                "must": [{"match_phrase_prefix": {"name_folded": {"query": folded, "max_expansions": 50}}}],
                "filter": [_kind_clause(self.settings, scope, "community")]}}, "sort": ["_score", {"sort_key": "asc"}, {"community_id": "asc"}]}
            searches.append(("community", index_of(self.settings, "community"), body))
        title_kinds = list(self.SUGGEST_SEARCHES["titles"])
        if "titles" in kinds:
            # A micropost has no title (its title_prefix is empty), so asking for microposts too
            # changes no result and lets posts and microposts share one clause without their kind
            # term (visible_clauses): one dense filter fewer for every post the typed prefix
            # matches, 10-11 % of the titles' Elasticsearch CPU over a million documents.
            titled = visible_clauses(self.settings, scope, [*title_kinds, "micropost"])
            body = {"size": size, "_source": ["name", "title", "jam_id", "idea_id", "kind"], "query": {"bool": {
                "must": [{"multi_match": {"query": folded, "fields": ["title_prefix"], "type": "phrase_prefix", "max_expansions": 50}}],
                "filter": [{"bool": {"should": titled, "minimum_should_match": 1}}]}},
                # Equal titles score alike: ordered by what identifies them, not by where an index
                # (rebuilt by `watercooler reindex`) happens to store them.
                "sort": [{"_score": "desc"}, *_tiebreak()]}
            searches.append(("title", ",".join(index_of(self.settings, k) for k in title_kinds), body))
        if "tags" in kinds:
            tag = prefix.lower().lstrip("#")
            tag_kinds = list(self.SUGGEST_SEARCHES["tags"])
            body = {"size": 0, "query": {"bool": {"filter": [
                {"prefix": {"tags.folded": tag}},
                {"bool": {"should": visible_clauses(self.settings, scope, tag_kinds), "minimum_should_match": 1}}]}},
                # The tags counted are the folded ones ("café" and "Cafe" are one topic, shown as
                # "cafe"). `include` is a regular expression: the typed text is escaped into a
                # literal prefix, where a letter beyond ASCII stands for what it folds to (one
                # letter or more: "ß" is "ss"); the prefix query has already kept only the
                # documents whose tags start with the folded prefix.
                # Over the best SUGGEST_SAMPLE documents per shard, not every document carrying a
                # tag with this prefix (a common prefix is a large part of a million documents).
                "aggs": {"s": {"sampler": {"shard_size": SUGGEST_SAMPLE},
                               "aggs": {"t": {"terms": {"field": "tags.folded", "size": size, "include": tag_pattern(tag),
                                                        "order": [{"_count": "desc"}, {"_key": "asc"}]}}}}}}
            searches.append(("tag", ",".join(sorted({index_of(self.settings, k) for k in tag_kinds})), body))
        operations: list[dict[str, Any]] = []
        for _, index, body in searches:
            # A type-ahead needs the best few, never how many match: no counting lets
            # Elasticsearch stop early.
            operations += [{"index": index, "ignore_unavailable": True}, {**body, "track_total_hits": False, "stats": [STATS_SUGGEST]}]
        found = answers(await self.es.msearch(searches=operations))
        response = sp.SuggestResponse()
        for (kind, _, _), result in zip(searches, found, strict=True):
            if kind == "tag":
                for b in result.get("aggregations", {}).get("s", {}).get("t", {}).get("buckets", []):
                    response.suggestions.add(kind="tag", text=b["key"])
                continue
            for hit in result["hits"]["hits"]:
                real = "person" if kind == "person" else "community" if kind == "community" else kind_of_hit(self.settings, hit)
                d = describe(real, hit) if kind != "title" else describe(real, {**hit, "_source": {**_TITLE_DEFAULTS, **hit["_source"]}})
                response.suggestions.add(kind=kind, text=d["title"], name=d["name"])
        return response

    # --- Trending -------------------------------------------------------------------------------------
    # Requested kind -> the kind of its rows. A post's or bookmark's tag `security` and a
    # micropost's `#security` are one topic (both stored lowercase, without '#'): one row of
    # kind "tag" counts them together, whichever of the two names asks for it.
    TRENDING_KINDS = {"tags": "tag", "hashtags": "tag", "links": "link"}

    async def trending(self, principal: Principal, kinds: list[str], size: int, end: dt.datetime) -> sp.TrendingResponse:
        """Trending as the caller: up to ``size`` rows per row kind of ``kinds`` ("tag", "link";
        TRENDING_KINDS' values), the last day before ``end`` against the week before it."""
        day_start, week_start = end - dt.timedelta(days=1), end - dt.timedelta(days=8)
        scope = await scope_of(self.es, self.settings, principal, ["post", "bookmark", "micropost"])
        # row kind -> (kinds searched, time field, value field)
        plans = {
            "tag": (["post", "bookmark", "micropost"], "created_at", "tags"),
            "link": (["bookmark"], "saved_at", "url"),
        }
        operations: list[dict[str, Any]] = []
        for kind in kinds:
            search_kinds, time_field, value_field = plans[kind]
            body = {"size": 0, "query": {"bool": {"filter": [
                {"bool": {"should": [_kind_clause(self.settings, scope, k) for k in search_kinds], "minimum_should_match": 1}},
                {"range": {time_field: {"gte": week_start.isoformat(), "lt": end.isoformat()}}}]}},
                "aggs": {"recent": {"filter": {"range": {time_field: {"gte": day_start.isoformat()}}},
                                    "aggs": {"v": {"terms": {"field": value_field, "size": size * 5}}}},
                         "week": {"filter": {"range": {time_field: {"lt": day_start.isoformat()}}},
                                  "aggs": {"v": {"terms": {"field": value_field, "size": 1000}}}}}}
            operations += [{"index": ",".join(sorted({index_of(self.settings, k) for k in search_kinds})), "ignore_unavailable": True}, body]
        found = answers(await self.es.msearch(searches=operations))
        response = sp.TrendingResponse()
        for kind, result in zip(kinds, found, strict=True):
            week = {b["key"]: b["doc_count"] for b in result["aggregations"]["week"]["v"]["buckets"]}
            items = []
            for b in result["aggregations"]["recent"]["v"]["buckets"]:
                before = week.get(b["key"], 0)
                score = (b["doc_count"] + 1) / (before / 7 + 1)
                if score > 1:
                    items.append((score, b["doc_count"], b["key"], before))
            items.sort(key=lambda t: (-t[0], -t[1], t[2]))
            for score, recent, value, before in items[:size]:
                response.items.add(kind=kind, value=value, last_day=recent, previous_week=before, score=round(score, 3))
        return response


_TITLE_DEFAULTS = {"name": "", "title": "", "jam_id": "", "idea_id": "", "author_id": "", "blog": "", "space_id": "", "content": "", "owner": ""}
