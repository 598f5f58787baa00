"""What a caller may see in the search indices: the platform's rule (watercooler.visibility)
applied to each search kind, with the caller's scope (communities, spaces, jams) read once.

Content documents store ``visibility``, ``community``, the author's employee id
(``author_id`` or ``owner_id``), ``hidden``, ``deleted`` and, for posts, microposts,
bookmarks, status updates and the comments on posts, the ``classification`` label (a CONFIDENTIAL one reaches employees and services only;
a document without the field is INTERNAL); ``content_filter`` is the
one Elasticsearch filter every content query, aggregation and facet uses, so nothing
leaks through a count either.  COMMUNITY membership is read from the ``communities``
index (one document per community whose ``members`` is the complete member list; see
services/search/readmodels/projections/communities.py).

A comment has no audience of its own: it is its target's, now (``comment_filter``; each
comment document carries its target's current audience, services/search/readmodels/projections/comments.py).
A status update's photo is shown only to whoever may see its media item now (``photos_seen``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from watercooler import visibility as rule
from watercooler.auth import Principal, current_principal
from watercooler.config import Settings
from watercooler.errors import PermissionDenied
from watercooler.projection import found_documents

from .kept import Kept
from .memberships import STATS_MEMBERS_READ, kept_memberships
from .readmodels import indices

# Elasticsearch answers at most 10,000 hits a request (index.max_result_window). Every list a
# caller's visibility is made of (their communities, the wiki spaces they may read, the public
# jams, the hidden jam threads) is sorted on its id and read on with search_after when a page
# comes back full (``_msearch``): a list cut short would hide the pages of the spaces past
# it, or show the replies of the hidden threads past it. A company of 400,000 people has tens
# of thousands of wiki spaces (docs/authorization.md, "Lists longer than a page").
SCOPE_PAGE = 10_000
# And it refuses a terms query of more than 65,536 values (index.max_terms_count): a longer
# list is several terms queries, any of which matches (``any_of``).
MAX_TERMS = 65_536


def any_of(field: str, values: Iterable[str]) -> dict[str, Any]:
    """A query for the documents whose ``field`` is one of ``values``, however many they are."""
    values = list(values)
    if len(values) <= MAX_TERMS:
        return {"terms": {field: values}}
    return {"bool": {"should": [{"terms": {field: values[i:i + MAX_TERMS]}} for i in range(0, len(values), MAX_TERMS)], "minimum_should_match": 1}}


def directory_reader() -> Principal:
    """The caller, if they may browse the employee directory (people, communities, the graph).

    Guests — family, clients, partners invited to a jam — see that jam and public content,
    not who works here; the unified Search hides people and communities from them too."""
    principal = current_principal()
    if not rule.may_browse_directory(principal):
        raise PermissionDenied("guests see the jams that invited them and public content, not the employee directory", field="authorization")
    return principal


def _id_list(query: dict[str, Any], id_field: str) -> dict[str, Any]:
    """A search for the ``id_field`` of every document ``query`` matches, a page of SCOPE_PAGE at
    a time, in the order ``_msearch`` reads on from (the ids; equal ids of two documents are the
    same id, so a page that ends between them loses nothing)."""
    return {"query": query, "_source": [id_field], "size": SCOPE_PAGE, "sort": [{id_field: "asc"}], "track_total_hits": False}


def _communities_search(principal: Principal) -> dict[str, Any]:
    """The search for the communities ``principal`` belongs to (their ids)."""
    return {**_id_list({"bool": {"filter": [{"term": {"members": principal.subject}}, {"term": {"deleted": False}}]}}, "community_id"), "stats": [STATS_MEMBERS_READ]}


async def caller_communities(es: AsyncElasticsearch, settings: Settings, principal: Principal) -> list[str]:
    """The ids of the communities the caller belongs to, where that reaches content (empty
    if the index does not exist yet): kept until one of them changes, as in a scope."""
    scope, _ = await _read_scope(es, settings, principal, frozenset({"communities"}))
    return scope.communities


async def photos_seen(es: AsyncElasticsearch, settings: Settings, principal: Principal, communities: list[str], photos: Iterable[str]) -> set[str]:
    """The photos among ``photos`` (media items' names, ``media/{id}``, shared in status updates)
    that the caller may see now, by the library rule on each item as the media index has it.

    A photo does not decide whether its status is shown, only whether the status shows it, so it
    is read per page of hits (one realtime ``mget`` by id, whatever the page size) rather than
    copied into each status document and kept current there, as comments keep their target's
    audience (services/search/readmodels/projections/comments.py), which they need for filtering and counts.
    Anything else (an old status's URI) names no media item and is never shown."""
    ids = sorted({photo.removeprefix("media/") for photo in photos if photo.startswith("media/")})
    if not ids:
        return set()
    try:
        found = found_documents(await es.mget(index=settings.index_alias(indices.MEDIA), ids=ids, realtime=True, source_includes=["owner", "visibility", "deleted", "classification"]))
    except NotFoundError:
        return set()

    def is_member(community: str, employee_id: str) -> bool:
        return employee_id == principal.subject and community in communities

    seen = set()
    for media_id, item in found.items():
        source = item["_source"]
        item = rule.Library(source.get("visibility", ""), source.get("owner", ""), deleted=bool(source.get("deleted")), classification=source.get("classification") or rule.INTERNAL)
        if rule.may_see_library(principal, item, is_member):
            seen.add(f"media/{media_id}")
    return seen


def content_filter(principal: Principal, communities: list[str], author_field: str = "author_id") -> list[dict[str, Any]]:
    """Filters (for a bool ``filter``) that keep what ``principal`` may see."""
    return rule.content_clauses(principal, communities, author_field)


# --- one search over every kind: wiki pages take their space's audience and media items
# their own (the library rule), jam ideas and threads their jam's, people and communities
# the directory's.


@dataclass(frozen=True)
class Scope:
    """What a caller may see, read once per request (their communities, spaces, jams)."""

    principal: Principal
    communities: list[str]
    # None: every space / jam (services; for jams also employees and alumni).
    spaces: list[str] | None
    jams: list[str] | None
    # Jam threads hidden by community flags: their replies are left out with them (a reply's
    # document does not know its thread's state; hidden threads are few).
    hidden_threads: tuple[str, ...] = ()
    # The parts above that were read (SCOPE_PARTS): kind_filter refuses a kind whose rule needs
    # a part that was not, rather than filter by an empty stand-in.
    parts: frozenset[str] = frozenset({"communities", "spaces", "jams", "hidden_threads"})
    # When its oldest part was read (time.monotonic; None: just now): the scope is kept from then.
    read_at: float | None = field(default=None, compare=False)


# The parts of a caller's scope each kind's rule reads (kind_filter): a search over some kinds
# reads only theirs, each part an Elasticsearch query when not kept (a Search for posts need not
# read the caller's wiki spaces nor the hidden jam threads).
SCOPE_PARTS: dict[str, frozenset[str]] = {
    "post": frozenset({"communities"}),
    "micropost": frozenset({"communities"}),
    "bookmark": frozenset({"communities"}),
    "media": frozenset({"communities"}),
    "comment": frozenset({"communities"}),  # a comment on a page carries the page's space's audience
    "wiki_page": frozenset({"communities"}),  # each page carries its space's audience
    "person": frozenset(),
    "community": frozenset(),
    "jam_idea": frozenset({"jams"}),
    "jam_thread": frozenset({"jams", "hidden_threads"}),
}
# Every part: GetStats' wiki view counts still filter on the caller's spaces (the counted rows
# carry no audience), and a scope read for every kind (kinds None) reads them.
ALL_PARTS = frozenset().union(*SCOPE_PARTS.values(), {"spaces"})


# A caller's scope is kept for SCOPE_SECONDS: reading it is two or three Elasticsearch
# round trips, as much as a whole Suggest over a million documents took, and a type-ahead asks
# for it at every keystroke.  It changes only when a membership or a space changes, which reach
# the communities and wiki indices through their projections and a refresh (WC_ES_REFRESH,
# 0.5-1 s) anyway: one second more of staleness, in both directions, is the price.
SCOPE_SECONDS = 1.0
_scopes: Kept[Scope] = Kept(SCOPE_SECONDS, size=10_000)


async def scope_of(es: AsyncElasticsearch, settings: Settings, principal: Principal, kinds: Iterable[str] | None = None) -> Scope:
    """The caller's scope, with the parts the rules of ``kinds`` read (None: every part)."""
    scope, _ = await scope_with(es, settings, principal, kinds)
    return scope


async def scope_with(es: AsyncElasticsearch, settings: Settings, principal: Principal, kinds: Iterable[str] | None = None,
                     also: tuple[str, dict[str, Any]] | None = None) -> tuple[Scope, list[dict[str, Any]] | None]:
    """``scope_of``, and when the scope has to be read, the hits of ``also`` (index, search)
    read in the same round trip (None when the scope was kept: then ``also`` was not sent).
    A Search asks for its caller's profile languages so: one request fewer for a caller not
    seen in the last second, which at company scale is nearly every caller."""
    needs = ALL_PARTS if kinds is None else frozenset().union(*(SCOPE_PARTS[kind] for kind in kinds))
    key = (id(es), settings.namespace, principal.kind, principal.subject, tuple(principal.jams))
    scope = _scopes.get(key)
    if scope is not None and needs <= scope.parts:
        return scope, None
    # Everything read at once is as fresh: a missing part is read with the kept ones again.
    scope, also_hits = await _read_scope(es, settings, principal, needs | (scope.parts if scope else frozenset()), also)
    _scopes.put(key, scope, stored_at=scope.read_at)
    return scope, also_hits


class ScopeUnreadable(RuntimeError):
    """A part of the caller's scope could not be read (Elasticsearch answered an error)."""


# The parts every caller reads alike (the public jams, the hidden jam threads) are kept once for
# all callers, as long as one caller's scope: read once a second at most instead of once per
# caller, whose scope is rarely kept at company scale (400,000 people, 100 Searches a second).
_SHARED_PARTS = frozenset({"jams", "hidden_threads"})
_shared: Kept[list[dict[str, Any]]] = Kept(SCOPE_SECONDS, size=64)


async def _read_scope(es: AsyncElasticsearch, settings: Settings, principal: Principal, parts: frozenset[str] = ALL_PARTS,
                      also: tuple[str, dict[str, Any]] | None = None) -> tuple[Scope, list[dict[str, Any]] | None]:
    """The caller's scope in two round trips at most: the caller's communities, the public
    jams and the hidden jam threads (each of these two when not kept for every caller) and
    ``also`` in one ``_msearch``, then, when asked for (GetStats' view counts alone: pages and
    comments carry their space's audience), the wiki spaces, whose audience needs the
    communities. Each part was a request of its own (four for a Search of every kind, and with
    many employees nearly every Search reads its caller's scope). An index that does not exist yet reads as
    empty. Returns the scope and the hits of ``also`` (None without it)."""
    first: dict[str, tuple[str, dict[str, Any]]] = {}  # part -> (index, search)
    read_at: float | None = None  # the oldest kept part's time: the scope lapses with it
    kept_communities: tuple[str, ...] | None = None
    memberships, generation = None, 0
    if parts & {"communities", "spaces"} and not principal.is_service and rule.memberships_reach(principal):
        memberships = kept_memberships(es, settings)
        if await memberships.usable():
            kept_communities = memberships.kept(principal.subject)
            generation = memberships.generation
            if kept_communities is not None:  # as current as the last poll: the scope lapses a poll interval after it
                read_at = memberships.polled_at
        else:
            memberships = None
        if kept_communities is None:
            first["communities"] = (settings.index_alias(indices.COMMUNITIES), _communities_search(principal))
    jams = rule.visible_jams(principal, ()) if "jams" in parts else []
    if jams is not None and "jams" in parts:
        first["jams"] = (indices.alias(settings, indices.JAM_STATS), _id_list({"term": {"visibility": rule.PUBLIC}}, "jam_id"))
    if "hidden_threads" in parts:
        first["hidden_threads"] = (settings.index_alias(indices.JAM_THREADS), _hidden_threads_search())
    read: dict[str, list[dict[str, Any]]] = {}
    for part in _SHARED_PARTS & first.keys():
        kept = _shared.stored((id(es), settings.namespace, part))
        if kept is not None:
            read_at = kept[0] if read_at is None else min(read_at, kept[0])
            read[part] = kept[1]
            del first[part]
    if also is not None:
        first["also"] = also
    found = dict(zip(first, await _msearch(es, list(first.values())), strict=True))
    for part in _SHARED_PARTS & found.keys():
        _shared.put((id(es), settings.namespace, part), found[part])
    read.update(found)
    if kept_communities is not None:
        communities = list(kept_communities)
    else:
        communities = [h["_source"]["community_id"] for h in read.get("communities", [])]
        if memberships is not None and "communities" in read:
            memberships.keep(principal.subject, communities, generation)
    if "jams" in read:
        jams = rule.visible_jams(principal, [h["_source"]["jam_id"] for h in read["jams"]])
    threads_hidden = tuple(sorted({h["_source"]["thread_id"] for h in read.get("hidden_threads", [])}))
    spaces: list[str] | None = []
    if "spaces" in parts:
        seen = rule.library_audience(principal, communities)
        spaces = None
        if seen is not None:
            [hits] = await _msearch(es, [(settings.index_alias(indices.WIKI), _id_list(
                {"bool": {"filter": [{"term": {"kind": "space"}}, {"term": {"deleted": False}}, seen]}}, "space_id"))])
            spaces = [h["_source"]["space_id"] for h in hits]
    return Scope(principal, communities, spaces, jams, threads_hidden, parts, read_at), read.get("also")


async def _msearch(es: AsyncElasticsearch, searches: list[tuple[str, dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """The hits of each (index, search), in one round trip; a missing index has none. An error
    in any of them is raised, as the search alone would have raised it. A sorted search whose
    page came back full (``_id_list``) is read on after its last hit, the searches still going
    together in one round trip, until each page comes back short: never cut at a page."""
    hits = await _msearch_page(es, searches)
    reading = [i for i, (_, body) in enumerate(searches) if "sort" in body and len(hits[i]) >= body["size"]]
    while reading:
        pages = await _msearch_page(es, [(searches[i][0], {**searches[i][1], "search_after": hits[i][-1]["sort"]}) for i in reading])
        for i, page in zip(reading, pages, strict=True):
            hits[i] = [*hits[i], *page]
        reading = [i for i, page in zip(reading, pages, strict=True) if len(page) >= searches[i][1]["size"]]
    return hits


async def _msearch_page(es: AsyncElasticsearch, searches: list[tuple[str, dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    if not searches:
        return []
    operations: list[dict[str, Any]] = []
    for index, body in searches:
        operations += [{"index": index, "ignore_unavailable": True}, body]
    responses = (await es.msearch(searches=operations))["responses"]
    for response in responses:
        if "error" in response:
            # Never read as empty: no hidden threads would show them.
            error = response["error"]
            raise ScopeUnreadable(f"{response.get('status')}: {error.get('reason') or error.get('type') if isinstance(error, dict) else error}")
    return [response["hits"]["hits"] for response in responses]


async def ids_matching(es: AsyncElasticsearch, index: str, query: dict[str, Any]) -> list[str]:
    """The ``_id`` of every document of ``index`` that ``query`` matches (none if the index does
    not exist): one request when they fit a page (SCOPE_PAGE), else all of them read through a
    point in time. For the items a count must leave out (GetStats: the media items and wiki
    pages the caller may not see), which at company scale are more than a page: a list cut there
    would count the rest."""
    return [hit["_id"] for hit in await hits_matching(es, index, query)]


async def hits_matching(es: AsyncElasticsearch, index: str, query: dict[str, Any], source: bool | list[str] = False) -> list[dict[str, Any]]:
    """Every hit of ``query`` over ``index`` (none if the index does not exist), with ``source``:
    one request when they fit a page (SCOPE_PAGE), else all of them read through a point in time
    (``ids_matching``; a person's edges in the graph, where the documents have no id to sort on)."""
    found = await es.search(index=index, query=query, source=source, size=SCOPE_PAGE, track_total_hits=False, ignore_unavailable=True)
    hits = found["hits"]["hits"]
    if len(hits) < SCOPE_PAGE:
        return hits
    # Documents have no id field to sort on (``_id`` is not sortable): the point in time's own
    # order (``_shard_doc``) over one view of the index, read from the start again.
    pit = (await es.open_point_in_time(index=index, keep_alive="1m"))["id"]
    hits = []
    after: list[Any] | None = None
    try:
        while True:
            page = await es.search(pit={"id": pit, "keep_alive": "1m"}, query=query, source=source, size=SCOPE_PAGE, sort=[{"_shard_doc": "asc"}],
                                   track_total_hits=False, search_after=after)
            pit = page.get("pit_id", pit)
            hits += page["hits"]["hits"]
            if len(page["hits"]["hits"]) < SCOPE_PAGE:
                return hits
            after = hits[-1]["sort"]
    finally:
        await es.close_point_in_time(id=pit)


def _hidden_threads_search(jam_id: str = "") -> dict[str, Any]:
    filters: list[dict[str, Any]] = [{"term": {"kind": "thread"}}, {"term": {"hidden": True}}]
    if jam_id:
        filters.append({"term": {"jam_id": jam_id}})
    return _id_list({"bool": {"filter": filters}}, "thread_id")


async def hidden_threads(es: AsyncElasticsearch, settings: Settings, jam_id: str = "") -> tuple[str, ...]:
    """The ids of the jam threads (of one jam, or all) hidden by community flags."""
    [hits] = await _msearch(es, [(settings.index_alias(indices.JAM_THREADS), _hidden_threads_search(jam_id))])
    return tuple(sorted({h["_source"]["thread_id"] for h in hits}))


def jam_discussion_clauses(threads_hidden: tuple[str, ...]) -> list[dict[str, Any]]:
    """Threads and replies not hidden by flags, nor replies of a hidden thread."""
    clauses: list[dict[str, Any]] = [rule.NOT_HIDDEN]
    if threads_hidden:
        clauses.append({"bool": {"must_not": [any_of("thread_id", threads_hidden)]}})
    return clauses


def comment_filter(scope: Scope) -> list[dict[str, Any]]:
    """A comment is read by whoever may read its target now (services/search/readmodels/projections/comments.py
    keeps the target's current audience on each comment): the comment itself not deleted or
    hidden, its target not deleted, and
    - a post or micropost: the content rule above on the post's visibility, community and
      author, not hidden by flags, published (a draft's comments reach its author only);
    - a wiki page or a media item: the library's rule on the item's visibility, owner, members
      and label (a page's are its space's, as for the page itself), which the comment carries."""
    from .library import visibility_filter as library_filter

    principal = scope.principal
    # Hidden or deleted, the comment or its target: nobody (services included, as for posts).
    live: list[dict[str, Any]] = [{"term": {"deleted": False}}, {"term": {"hidden": False}}, {"term": {"target_deleted": False}}, {"term": {"target_hidden": False}}]
    if principal.is_service:
        return [*live, {"term": {"target_state": "PUBLISHED"}}]
    published: dict[str, Any] = {"bool": {"should": [{"term": {"target_state": "PUBLISHED"}}, {"term": {"target_author_id": principal.subject}}], "minimum_should_match": 1}}
    on_post = [{"term": {"target_kind": "post"}}, published,
               *content_filter(principal, scope.communities, author_field="target_author_id")]
    on_library: list[dict[str, Any]] = [{"terms": {"target_kind": ["page", "media"]}}]
    seen = library_filter(principal, scope.communities)
    if seen is not None:
        # The comment keeps the item's owner and members as ``target_owner`` and
        # ``target_members`` (``owner`` would make it match an author filter on the item's owner).
        on_library.append(_renamed(seen, {"owner": "target_owner", "members": "target_members"}))
    branches = [{"bool": {"filter": branch}} for branch in (on_post, on_library)]
    return [*live, {"bool": {"should": branches, "minimum_should_match": 1}}]


# A space's fields as its pages carry them, where they are named otherwise.
PAGE_FIELDS = {field: as_on_page for field, as_on_page in indices.PAGE_AUDIENCE.items() if field != as_on_page}


def _renamed(clause: Any, fields: dict[str, str]) -> Any:
    """``clause`` with the fields its term/terms queries name renamed."""
    if isinstance(clause, list):
        return [_renamed(item, fields) for item in clause]
    if not isinstance(clause, dict):
        return clause
    out: dict[str, Any] = {}
    for key, value in clause.items():
        if key in ("term", "terms") and isinstance(value, dict):
            out[key] = {fields.get(name, name): inner for name, inner in value.items()}
        else:
            out[key] = _renamed(value, fields)
    return out


def audience_filter(scope: Scope, kind: str) -> list[dict[str, Any]] | None:
    """The filters of ``kind_filter`` over the audience each document carries, for the kinds
    whose documents carry one (posts and microposts: watercooler.visibility.content_audience);
    None for the others. The same documents, one terms filter instead of three levels of bool."""
    if kind in ("post", "micropost"):
        return [rule.audience_clause(scope.principal, scope.communities, MAX_TERMS)]
    return None


def kind_filter(scope: Scope, kind: str) -> list[dict[str, Any]]:
    """The filters that keep the documents of one search kind that the caller may see."""
    if not SCOPE_PARTS.get(kind, frozenset()) <= scope.parts:
        raise ValueError(f"the scope was read without {sorted(SCOPE_PARTS[kind] - scope.parts)}, which {kind!r} needs")
    principal = scope.principal
    if kind in ("post", "micropost"):
        return rule.content_clauses(principal, scope.communities, drafts=True)
    if kind == "comment":
        return comment_filter(scope)
    if kind == "bookmark":
        return rule.content_clauses(principal, scope.communities, "owner_id")
    if kind == "wiki_page":
        # The library rule on the space's audience, which each page carries (projections/wiki.py)
        # with the owner and members as ``space_owner`` and ``space_members``.
        live: list[dict[str, Any]] = [{"term": {"deleted": False}}, rule.NOT_HIDDEN]
        seen = rule.library_audience(principal, scope.communities)
        return live if seen is None else [*live, _renamed(seen, PAGE_FIELDS)]
    if kind == "media":
        return [*rule.library_clauses(principal, scope.communities), rule.NOT_HIDDEN]
    if kind in ("person", "community"):
        return rule.directory_clauses(principal)
    if kind in ("jam_idea", "jam_thread"):
        hidden = [rule.NOT_HIDDEN] if kind == "jam_idea" else jam_discussion_clauses(scope.hidden_threads)
        return [{"term": {"deleted": False}}, *hidden] + ([] if scope.jams is None else [any_of("jam_id", scope.jams)])
    raise ValueError(f"no visibility rule for {kind!r}")
