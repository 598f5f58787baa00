"""The Homepage stream (GetNetworkFeed): what the people a person follows or is connected to,
and the communities they belong to, produce — status updates, microposts, blog posts,
bookmarks, wiki pages (by their last editor), media items, jam ideas — newest first.

One search over the indices of those kinds. Each kind keeps only what the caller may see, by
the clause unified Search uses for it (``unified.visible_clauses``: the content, space,
library and jam rules, with the index it applies to), and only what the network made
(the kind's author field) or what was written to one of the person's communities. Paging is
stable: items are ordered by creation time, then by index and id, and a page token is the
last item's sort values, so new items at the top never shift later pages. A wiki page is
placed by its creation, like every item: an edit does not move it (moving would skip or
repeat items across pages)."""

from __future__ import annotations

import asyncio
from typing import Any

from elasticsearch import AsyncElasticsearch

from watercooler.auth import Principal
from watercooler.config import Settings
from watercooler.search.v1 import search_pb2

from .network import _photo, _timestamp, network_of, status_hit, visible_content
from .readmodels import indices
from .unified import HIT_SOURCE_FIELDS, describe, kind_of_hit, visible_clauses
from .visibility import caller_communities, photos_seen, scope_of

# kind -> the field naming who made it (media: "profiles/{id}").
AUTHOR_FIELDS = {"post": "author_id", "micropost": "author_id", "bookmark": "owner_id", "wiki_page": "author", "media": "owner", "jam_idea": "author"}
# Kinds that can be written to a community (their ``community`` field).
COMMUNITY_KINDS = ("post", "micropost", "bookmark")
FEED_KINDS = tuple(AUTHOR_FIELDS)
# Newest first, then fields that tell apart items made in the same millisecond (Elasticsearch
# keeps dates to the millisecond and, here, cannot sort on _id): each index's own unique key.
SORT = [{"created_at": {"order": "desc", "unmapped_type": "date"}}, {"_index": "desc"},
        *({field: {"order": "desc", "unmapped_type": "keyword", "mode": "max"}} for field in ("name", "jam_id", "idea_id", "space_id", "title_keys", "storage_uri"))]


def _made_by(kind: str, authors: list[str], communities: list[str]) -> dict[str, Any]:
    field = AUTHOR_FIELDS[kind]
    people = [f"profiles/{a}" for a in authors] if kind == "media" else authors
    should: list[dict[str, Any]] = [{"terms": {field: people}}]
    if kind in COMMUNITY_KINDS and communities:
        should.append({"terms": {"community": communities}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


async def network_feed(
    es: AsyncElasticsearch, settings: Settings, principal: Principal, person: str, size: int, after: list[Any] | None
) -> tuple[list[search_pb2.StatusUpdateHit], list[Any] | None]:
    """GetNetworkFeed of ``person`` (an employee id; the caller is the person or a service, which
    the servicer checks), newest first: (the items the caller may see, the last hit's sort values
    when the page is full)."""
    network, scope, visible = await asyncio.gather(network_of(es, settings, person), scope_of(es, settings, principal, FEED_KINDS), visible_content(es, settings, principal))
    authors = sorted(network)
    # The person's communities (as a member, whoever the caller is: a service reads a person's feed).
    communities = scope.communities if principal.subject == person else await caller_communities(es, settings, Principal(person, "employee"))
    if not authors and not communities:
        return [], None
    clauses = []
    # visible_clauses merges posts and microposts into one clause when both are asked for; ask per kind.
    for kind in FEED_KINDS:
        (clause,) = visible_clauses(settings, scope, [kind])
        extra: list[dict[str, Any]] = [_made_by(kind, authors, communities)]
        if kind == "post":
            extra.append({"term": {"state": "PUBLISHED"}})
        clauses.append({"bool": {"filter": [clause, *extra]}})
    statuses = settings.index_alias(indices.STATUSES)
    status_made_by: list[dict[str, Any]] = [{"terms": {"author_id": authors}}] + ([{"terms": {"community": communities}}] if communities else [])
    clauses.append({"bool": {"filter": [{"prefix": {"_index": f"{statuses}-v"}}, {"exists": {"field": "status_id"}}, *visible,
                                        {"bool": {"should": status_made_by, "minimum_should_match": 1}}]}})
    searched = ",".join(dict.fromkeys([statuses, *(settings.index_alias(i) for i in (indices.POSTS, indices.BOOKMARKS, indices.WIKI, indices.MEDIA, indices.JAM_IDEAS))]))
    # An item is shown as a Search shows it (describe), a micropost or a status by its whole text
    # (at most 280 characters: a micropost's `content`, which a blog post's shares) and photo.
    source = [*HIT_SOURCE_FIELDS, "content", "text", "photo", "visibility", "community", "status_id"]
    body: dict[str, Any] = {"query": {"bool": {"should": clauses, "minimum_should_match": 1}}, "sort": SORT, "size": size, "_source": source}
    if after is not None:
        body["search_after"] = after
    hits = (await es.search(index=searched, ignore_unavailable=True, **body))["hits"]["hits"]
    # A status's photo is shown only to a caller who may see its media item now.
    photos = await photos_seen(es, settings, principal, scope.communities, (_photo(h["_source"]) for h in hits))
    return [_item(settings, hit, photos) for hit in hits], hits[-1]["sort"] if len(hits) == size else None


def _item(settings, hit: dict[str, Any], photos: set[str]) -> search_pb2.StatusUpdateHit:
    doc = hit["_source"]
    if hit["_index"].startswith(settings.index_alias(indices.STATUSES) + "-v"):
        return status_hit(doc, photos)
    kind = kind_of_hit(settings, hit)
    if kind == "micropost":
        return status_hit(doc, photos)
    described = describe(kind, hit)
    community = doc.get("community") or ""
    return search_pb2.StatusUpdateHit(name=described["name"], author=described["author"], text=described["title"], visibility=str(doc.get("visibility", "")),
                                      community=f"communities/{community}" if community else "", create_time=_timestamp(doc["created_at"]), kind=kind)
