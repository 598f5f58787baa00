"""Queries over blogs, posts, microposts, comments, reactions and bookmarks.

Every query runs as the caller and carries ``visibility.content_filter``, in the
hits and in every count, facet and aggregation, so a COMMUNITY item never shows
for a non-member anywhere. Counts (post counts, ratings, comments, likes, savers,
stats) are aggregations over documents kept one per aggregate at its latest
version, so they are exact and unaffected by redelivered events.
User text is only ever the value of a match query."""

from __future__ import annotations

import datetime as dt
from typing import Any

from elasticsearch import AsyncElasticsearch

from watercooler.auth import Principal
from watercooler.config import Settings
from watercooler.errors import InvalidArgument, NotFound
from watercooler.search.v1 import search_pb2 as sp
from watercooler.text import collation_key

from .queries import content_text_query
from .readmodels import indices
from .readmodels.indices import search_languages
from .visibility import caller_communities, comment_filter, content_filter, scope_of

MAX_QUERY_LENGTH = 256
MAX_FACETS = 20
POST_KINDS = ("", "blog", "micro")
# A page of a listing: (its items, the facet counts (tag, count), the total, the last hit's sort
# values when the page is full — the servicer turns them into the next page token).
Page = tuple[list[Any], list[tuple[str, int]], int, list[Any] | None]


def check_query(query: str) -> str:
    """The query text without surrounding spaces; at most MAX_QUERY_LENGTH characters."""
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidArgument(f"must be at most {MAX_QUERY_LENGTH} characters", field="query")
    return query.strip()


def _text_query(text: str) -> dict[str, Any]:
    """Title and text without case or accents and in the query's language (posts, bookmarks), the title boosted."""
    return content_text_query(text, folded_fields=("folded",), raw_fields=("title^3",), languages=search_languages(text))


class PostQueries:
    def __init__(self, es: AsyncElasticsearch, settings: Settings):
        self.es = es
        self.settings = settings

    def _index(self, name: str) -> str:
        return self.settings.index_alias(name)

    async def _visible(self, principal: Principal, author_field: str = "author_id") -> list[dict[str, Any]]:
        return content_filter(principal, await caller_communities(self.es, self.settings, principal), author_field)

    async def _visible_comments(self, principal: Principal) -> list[dict[str, Any]]:
        """Comments follow their target's current audience (visibility.comment_filter)."""
        return comment_filter(await scope_of(self.es, self.settings, principal))

    async def _post_filters(self, principal: Principal) -> list[dict[str, Any]]:
        filters = await self._visible(principal)
        if not principal.is_service:
            # Drafts reach their author only.
            filters.append({"bool": {"should": [{"term": {"state": "PUBLISHED"}}, {"term": {"author_id": principal.subject}}], "minimum_should_match": 1}})
        else:
            filters.append({"term": {"state": "PUBLISHED"}})
        return filters

    # --- posts and microposts ---------------------------------------------------------------------------
    async def search_posts(
        self, principal: Principal, text: str, kind: str, blog: str, author_id: str, mentions: str, tag: str, size: int, after: list[Any] | None
    ) -> Page:
        """SearchPosts: published posts (and the caller's drafts) matching ``text`` (checked, may be
        empty) and the filters given (``kind`` "blog" or "micro", a blog handle, employee ids,
        a tag as written); best match first when there is text, then newest."""
        filters = await self._post_filters(principal)
        if kind:
            filters.append({"term": {"kind": kind}})
        if blog:
            filters.append({"term": {"blog": blog}})
        if author_id:
            filters.append({"term": {"author_id": author_id}})
        if mentions:
            filters.append({"term": {"mentions": mentions}})
        if tag:
            filters.append({"term": {"tags.folded": tag.strip().lstrip("#")}})
        must = _text_query(text) if text else {"match_all": {}}
        sort: list[Any] = ([{"_score": "desc"}] if text else []) + [{"created_at": "desc"}, {"name": "asc"}]
        return await self._post_page(principal, {"bool": {"must": [must], "filter": filters}}, sort, size, after)

    async def list_timeline(self, principal: Principal, person: str, size: int, after: list[Any] | None) -> Page:
        """ListTimeline: the microposts of ``person`` (an employee id) the caller may see, newest first."""
        filters = await self._post_filters(principal)
        filters += [{"term": {"kind": "micro"}}, {"term": {"author_id": person}}]
        return await self._post_page(principal, {"bool": {"filter": filters}}, [{"created_at": "desc"}, {"name": "asc"}], size, after)

    async def _post_page(self, principal: Principal, query: dict[str, Any], sort: list[Any], size: int, after: list[Any] | None) -> Page:
        """Posts as PostHit messages with their reaction counts, and the tags facet."""
        body: dict[str, Any] = {
            "query": query,
            "sort": sort,
            "size": size,
            "track_total_hits": True,
            "aggs": {"tags": {"terms": {"field": "tags", "size": MAX_FACETS}}},
        }
        if after is not None:
            body["search_after"] = after
        result = await self.es.search(index=self._index(indices.POSTS), **body)
        hits = result["hits"]["hits"]
        names = [hit["_source"]["name"] for hit in hits]
        counts = await self._reaction_counts(principal, names)
        posts = []
        for hit in hits:
            doc = hit["_source"]
            c = counts.get(doc["name"], {})
            posts.append(sp.PostHit(
                name=doc["name"],
                kind=doc["kind"],
                blog=f"blogs/{doc['blog']}" if doc["blog"] else "",
                author=f"profiles/{doc['author_id']}",
                title=doc["title"],
                text=doc["content"],
                tags=doc["tags"],
                visibility=doc["visibility"],
                community=f"communities/{doc['community']}" if doc["community"] else "",
                state=doc["state"],
                publish_time=doc.get("published_at") or "",
                reply_to=doc["reply_to"],
                repost_of=doc["repost_of"],
                rating_average=c.get("rating_average", 0.0),
                rating_count=c.get("rating_count", 0),
                comment_count=c.get("comment_count", 0),
                like_count=c.get("like_count", 0),
                score=hit.get("_score") or 0.0,
            ))
        return posts, _tag_counts(result), result["hits"]["total"]["value"], hits[-1]["sort"] if len(hits) == size else None

    async def _reaction_counts(self, principal: Principal, targets: list[str]) -> dict[str, dict[str, Any]]:
        """Exact ratings (sum / count of current ratings), likes and visible comments per target."""
        if not targets:
            return {}
        out: dict[str, dict[str, Any]] = {t: {} for t in targets}
        reactions = await self.es.search(
            index=self._index(indices.REACTIONS),
            size=0,
            query={"bool": {"filter": [{"terms": {"target": targets}}, {"term": {"active": True}}, {"term": {"deleted": False}}]}},
            aggs={
                "by_target": {
                    "terms": {"field": "target", "size": len(targets)},
                    "aggs": {"kinds": {"terms": {"field": "kind"}, "aggs": {"sum": {"sum": {"field": "value"}}}}},
                }
            },
        )
        for bucket in reactions["aggregations"]["by_target"]["buckets"]:
            for kind in bucket["kinds"]["buckets"]:
                if kind["key"] == "rating":
                    count = kind["doc_count"]
                    out[bucket["key"]].update(rating_count=count, rating_average=round(kind["sum"]["value"] / count, 6) if count else 0.0)
                else:
                    out[bucket["key"]]["like_count"] = kind["doc_count"]
        comment_filters = [{"terms": {"target": targets}}, *await self._visible_comments(principal)]
        comments = await self.es.search(
            index=self._index(indices.COMMENTS),
            size=0,
            query={"bool": {"filter": comment_filters}},
            aggs={"by_target": {"terms": {"field": "target", "size": len(targets)}}},
        )
        for bucket in comments["aggregations"]["by_target"]["buckets"]:
            out[bucket["key"]]["comment_count"] = bucket["doc_count"]
        return out

    # --- the blog directory ---------------------------------------------------------------------------------
    async def list_blog_directory(
        self, principal: Principal, letter: str, size: int, after: list[Any] | None
    ) -> tuple[list[sp.BlogDirectoryEntry], int, list[Any] | None]:
        """ListBlogDirectory: the blogs the caller may see in directory (collation) order, from
        ``letter`` (one character, or empty for all) on, with their visible published posts'
        count and last time: (the entries, the total, the last hit's sort values when the page is full)."""
        filters = await self._visible(principal, author_field="owner_id")
        if letter:
            # Directory order is collation order: the letter's own key is where its names begin.
            filters.append({"range": {"sort_key": {"gte": collation_key(letter.lower())}}})
        body: dict[str, Any] = {
            "query": {"bool": {"filter": filters}},
            "sort": [{"sort_key": "asc"}, {"handle": "asc"}],
            "size": size,
            "track_total_hits": True,
        }
        if after is not None:
            body["search_after"] = after
        result = await self.es.search(index=self._index(indices.BLOGS), **body)
        hits = result["hits"]["hits"]
        handles = [hit["_source"]["handle"] for hit in hits]
        counts: dict[str, tuple[int, str]] = {}
        if handles:
            posts = await self.es.search(
                index=self._index(indices.POSTS),
                size=0,
                query={
                    "bool": {
                        "filter": [{"terms": {"blog": handles}}, {"term": {"kind": "blog"}}, {"term": {"state": "PUBLISHED"}}, *await self._visible(principal)]
                    }
                },
                aggs={"by_blog": {"terms": {"field": "blog", "size": len(handles)}, "aggs": {"last": {"max": {"field": "published_at"}}}}},
            )
            for bucket in posts["aggregations"]["by_blog"]["buckets"]:
                counts[bucket["key"]] = (bucket["doc_count"], bucket["last"].get("value_as_string") or "")
        blogs = []
        for hit in hits:
            doc = hit["_source"]
            count, last = counts.get(doc["handle"], (0, ""))
            blogs.append(sp.BlogDirectoryEntry(
                blog=f"blogs/{doc['handle']}",
                handle=doc["handle"],
                title=doc["title"],
                owner=f"profiles/{doc['owner_id']}",
                owner_display_name=doc["owner_display_name"],
                owner_sort_name=doc["owner_sort_name"],
                letter=doc["letter"],
                post_count=count,
                last_post_time=last,
            ))
        return blogs, result["hits"]["total"]["value"], hits[-1]["sort"] if len(hits) == size else None

    # --- comments -------------------------------------------------------------------------------------------
    async def list_comments(
        self, principal: Principal, target: str, size: int, after: list[Any] | None
    ) -> tuple[list[tuple[dict[str, Any], int]], int, list[Any] | None]:
        """ListComments on ``target`` (a resource name) the caller may see, oldest first: (each
        comment's document with its like count, the total, the last hit's sort values when the
        page is full)."""
        body: dict[str, Any] = {
            "query": {"bool": {"filter": [{"term": {"target": target}}, *await self._visible_comments(principal)]}},
            "sort": [{"created_at": "asc"}, {"name": "asc"}],
            "size": size,
            "track_total_hits": True,
        }
        if after is not None:
            body["search_after"] = after
        result = await self.es.search(index=self._index(indices.COMMENTS), **body)
        hits = result["hits"]["hits"]
        likes = await self._reaction_counts(principal, [h["_source"]["name"] for h in hits]) if hits else {}
        last = hits[-1]["sort"] if len(hits) == size else None
        comments = [(hit["_source"], likes.get(hit["_source"]["name"], {}).get("like_count", 0)) for hit in hits]
        return comments, result["hits"]["total"]["value"], last

    # --- bookmarks ---------------------------------------------------------------------------------------------
    async def search_bookmarks(
        self, principal: Principal, text: str, owner_id: str, tag: str, url: str, size: int, after: list[Any] | None
    ) -> Page:
        """SearchBookmarks the caller may see matching ``text`` (checked, may be empty), of
        ``owner_id``, with ``tag`` (as written), of ``url`` (normalised as the writer does);
        best match first when there is text, then newest: BookmarkHit messages and the tags facet."""
        filters = await self._visible(principal, author_field="owner_id")
        if owner_id:
            filters.append({"term": {"owner_id": owner_id}})
        if tag:
            filters.append({"term": {"tags.folded": tag.strip()}})
        if url:
            filters.append({"term": {"url": url}})
        must = _text_query(text) if text else {"match_all": {}}
        body: dict[str, Any] = {
            "query": {"bool": {"must": [must], "filter": filters}},
            "sort": ([{"_score": "desc"}] if text else []) + [{"saved_at": "desc"}, {"name": "asc"}],
            "size": size,
            "track_total_hits": True,
            "aggs": {"tags": {"terms": {"field": "tags", "size": MAX_FACETS}}},
        }
        if after is not None:
            body["search_after"] = after
        result = await self.es.search(index=self._index(indices.BOOKMARKS), **body)
        hits = result["hits"]["hits"]
        bookmarks = []
        for hit in hits:
            doc = hit["_source"]
            bookmarks.append(sp.BookmarkHit(
                name=doc["name"],
                url=doc["url"],
                title=doc["title"],
                tags=doc["tags"],
                notes=doc["notes"],
                owner=f"profiles/{doc['owner_id']}",
                visibility=doc["visibility"],
                save_time=doc["saved_at"],
            ))
        return bookmarks, _tag_counts(result), result["hits"]["total"]["value"], hits[-1]["sort"] if len(hits) == size else None

    async def list_popular_links(self, principal: Principal, last_7_days: bool, tag: str, size: int) -> list[tuple[str, int, str]]:
        """The ``size`` URLs most people bookmarked (all time, or saved in the last 7 days),
        among the bookmarks the caller may see: (url, savers, the first saver's title)."""
        filters = await self._visible(principal, author_field="owner_id")
        if last_7_days:
            filters.append({"range": {"saved_at": {"gte": "now-7d"}}})
        if tag:
            filters.append({"term": {"tags.folded": tag.strip()}})
        # One bookmark document per (person, url): documents per url are distinct savers.
        result = await self.es.search(
            index=self._index(indices.BOOKMARKS),
            size=0,
            # (An erased person's save is deleted with its url, BookmarksProjection: it counts toward no link.)
            query={"bool": {"filter": filters}},
            aggs={
                "links": {
                    "terms": {"field": "url", "size": size, "order": [{"_count": "desc"}, {"_key": "asc"}]},
                    "aggs": {"title": {"top_hits": {"size": 1, "_source": ["title_raw"], "sort": [{"saved_at": "asc"}, {"name": "asc"}]}}},
                }
            },
        )
        links = []
        for bucket in result["aggregations"]["links"]["buckets"]:
            top = bucket["title"]["hits"]["hits"]
            links.append((bucket["key"], bucket["doc_count"], top[0]["_source"].get("title_raw", "") if top else ""))
        return links

    # --- stats --------------------------------------------------------------------------------------------------
    async def post_stats(self, principal: Principal, blog: str, post: str) -> sp.PostStats:
        """GetPostStats over what the caller may see; with ``blog`` (a handle) its posts per day,
        with ``post`` (a resource name "posts/{id}") its comment and rating counts. A blog or post
        the caller may not see is NOT_FOUND."""
        blog_filters = await self._visible(principal, author_field="owner_id")
        post_filters = [*await self._post_filters(principal), {"term": {"kind": "blog"}}, {"term": {"state": "PUBLISHED"}}]
        blogs = await self.es.search(
            index=self._index(indices.BLOGS),
            size=0,
            track_total_hits=True,
            query={"bool": {"filter": blog_filters}},
            aggs={"department": {"terms": {"field": "owner_department", "size": 1000}}, "country": {"terms": {"field": "owner_country", "size": 300}}},
        )
        active = await self.es.search(
            index=self._index(indices.POSTS),
            size=0,
            query={"bool": {"filter": [*post_filters, {"range": {"published_at": {"gte": "now-30d"}}}]}},
            aggs={"blogs": {"terms": {"field": "blog", "size": 65536}}},
        )
        active_handles = [b["key"] for b in active["aggregations"]["blogs"]["buckets"]]
        active_count = 0
        if active_handles:  # only blogs the caller may see count as active
            visible_active = await self.es.count(index=self._index(indices.BLOGS), query={"bool": {"filter": [*blog_filters, {"terms": {"handle": active_handles}}]}})
            active_count = visible_active["count"]
        tags = await self.es.search(
            index=self._index(indices.POSTS),
            size=0,
            query={"bool": {"filter": await self._post_filters(principal)}},
            aggs={"tags": {"terms": {"field": "tags", "size": MAX_FACETS}}},
        )
        stats = sp.PostStats(blogs_total=blogs["hits"]["total"]["value"], blogs_active_30d=active_count)
        # An owner with no department or country (none given, or an erased person's tombstone)
        # is no key: their blogs count in blogs_total alone, as Search's department facet does.
        for bucket in blogs["aggregations"]["department"]["buckets"]:
            if bucket["key"]:
                stats.blogs_per_department.add(key=bucket["key"], count=bucket["doc_count"])
        for bucket in blogs["aggregations"]["country"]["buckets"]:
            if bucket["key"]:
                stats.blogs_per_country.add(key=bucket["key"], count=bucket["doc_count"])
        for bucket in tags["aggregations"]["tags"]["buckets"]:
            stats.popular_tags.add(tag=bucket["key"], count=bucket["doc_count"])
        if blog:
            # A blog the caller may not see answers as if it did not exist, as GetBlog does.
            if not (await self.es.count(index=self._index(indices.BLOGS), query={"bool": {"filter": [*blog_filters, {"term": {"handle": blog}}]}}))["count"]:
                raise NotFound(f"blogs/{blog} not found", field="blog")
            per_day = await self.es.search(
                index=self._index(indices.POSTS),
                size=0,
                query={"bool": {"filter": [*post_filters, {"term": {"blog": blog}}]}},
                aggs={"days": {"date_histogram": {"field": "published_at", "calendar_interval": "day", "format": "yyyy-MM-dd", "min_doc_count": 1}}},
            )
            for bucket in per_day["aggregations"]["days"]["buckets"]:
                stats.posts_per_day.add(key=bucket["key_as_string"], count=bucket["doc_count"])
        if post:
            # A post the caller may not see (now) answers as if it did not exist, as GetPost does:
            # its ratings and comments would tell otherwise.
            visible_post = [*await self._post_filters(principal), {"term": {"name": post}}]
            if not (await self.es.count(index=self._index(indices.POSTS), query={"bool": {"filter": visible_post}}))["count"]:
                raise NotFound(f"{post} not found", field="post")
            counts = (await self._reaction_counts(principal, [post])).get(post, {})
            stats.comment_count = counts.get("comment_count", 0)
            stats.rating_count = counts.get("rating_count", 0)
            stats.rating_average = counts.get("rating_average", 0.0)
        return stats


def _tag_counts(result: dict[str, Any]) -> list[tuple[str, int]]:
    return [(bucket["key"], bucket["doc_count"]) for bucket in result["aggregations"]["tags"]["buckets"]]


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()
