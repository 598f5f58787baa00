"""gRPC face of search: a thin servicer. Each method reads the request (names, page tokens,
enums), calls a query module with typed arguments, and converts what it returns into the
response; errors are the watercooler.errors the query modules raise, mapped to statuses by
the server. Queries, visibility and Elasticsearch live in the query modules."""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc
from elasticsearch import AsyncElasticsearch
from google.protobuf.timestamp_pb2 import Timestamp

from watercooler.auth import Principal, current_principal
from watercooler.config import Settings
from watercooler.errors import InvalidArgument
from watercooler.eventstore import fingerprint
from watercooler.rpc import decode_page_token, encode_page_token, enum_name, page_size, parse_name
from watercooler.search.v1 import notifications_pb2, notifications_pb2_grpc, search_pb2, search_pb2_grpc
from watercooler.urls import normalize_url

from . import audit as audit_queries
from . import communities as communities_queries
from . import feed as feed_queries
from . import jams as jam_queries
from . import library as library_queries
from . import network as network_queries
from . import people as people_queries
from . import posts as posts_queries
from . import stats_queries, unified
from .notifications import Notifications, notification_id_of, owner_of
from .posts import PostQueries
from .stats_queries import Stats
from .unified import Search
from .visibility import directory_reader

MAX_QUERY_LENGTH = 256
_RELATION_NAMES = {value: search_pb2.ListRelationsRequest.Relation.Name(value) for value in search_pb2.ListRelationsRequest.Relation.values() if value}
# ListPeople's state filter: whether to list alumni only (True), active people only (False) or both.
_ALUMNI_BY_STATE = {
    search_pb2.ListPeopleRequest.STATE_FILTER_UNSPECIFIED: None,
    search_pb2.ListPeopleRequest.ACTIVE_ONLY: False,
    search_pb2.ListPeopleRequest.ALUMNI_ONLY: True,
}


def _post_page(posts: list[search_pb2.PostHit], tags: list[tuple[str, int]], total: int, last: list | None, query_key: str) -> search_pb2.SearchPostsResponse:
    return search_pb2.SearchPostsResponse(
        posts=posts, tags=[search_pb2.TagCount(tag=tag, count=count) for tag, count in tags], total_size=total,
        next_page_token=encode_page_token(last, query_key) if last is not None else "",
    )


def _timestamp(iso: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromJsonString(iso.replace("+00:00", "Z"))
    return stamp


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    def __init__(self, es: AsyncElasticsearch, settings: Settings):
        self.es = es
        self.settings = settings

    async def SearchPeople(self, request, context):
        directory_reader()
        if len(request.query) > MAX_QUERY_LENGTH:
            raise InvalidArgument(f"must be at most {MAX_QUERY_LENGTH} characters", field="query")
        size = page_size(request.page_size)
        query_key = fingerprint(request.query, request.department, request.country, request.expertise)[:16]
        after = decode_page_token(request.page_token, query_key)
        hits, total, last = await people_queries.search_people(self.es, self.settings, request.query, request.department, request.country, request.expertise, size, after)
        response = search_pb2.SearchPeopleResponse(total_size=total)
        for doc, score in hits:
            response.people.add(
                profile=f"profiles/{doc['employee_id']}",
                display_name=doc["display_name"],
                title=doc.get("title", ""),
                department=doc.get("department", ""),
                country=doc.get("country", ""),
                expertise=doc.get("expertise", []),
                alumni=doc.get("alumni", False),
                score=score,
            )
        if last is not None:
            response.next_page_token = encode_page_token(last, query_key)
        return response

    # --- people directory, communities and the social graph: delegates ---
    async def ListPeople(self, request, context):
        directory_reader()
        manager_id = parse_name(request.manager, "profiles", field="manager") if request.manager else ""
        alumni = _ALUMNI_BY_STATE.get(request.state)
        if request.state not in _ALUMNI_BY_STATE:
            raise InvalidArgument("unknown state filter", field="state")
        size = page_size(request.page_size)
        query_key = fingerprint("people", request.department, request.country, request.manager, str(request.state))[:16]
        after = decode_page_token(request.page_token, query_key)
        docs, total, last = await people_queries.list_people(self.es, self.settings, request.department, request.country, manager_id, alumni, size, after)
        return search_pb2.ListPeopleResponse(
            people=[people_queries.person_hit(doc) for doc in docs], total_size=total, next_page_token=encode_page_token(last, query_key) if last is not None else ""
        )

    async def FindExperts(self, request, context):
        principal = directory_reader()
        topic = request.topic.strip()
        if not topic:
            raise InvalidArgument("is required", field="topic")
        if len(topic) > people_queries.MAX_TOPIC_LENGTH:
            raise InvalidArgument(f"must be at most {people_queries.MAX_TOPIC_LENGTH} characters", field="topic")
        size = page_size(request.page_size)
        query_key = fingerprint("experts", topic, request.country, str(request.include_alumni))[:16]
        after = decode_page_token(request.page_token, query_key)
        hits, total, last = await people_queries.find_experts(self.es, self.settings, principal, topic, request.country, request.include_alumni, size, after)
        return search_pb2.SearchPeopleResponse(
            people=[people_queries.person_hit(doc, score) for doc, score in hits], total_size=total, next_page_token=encode_page_token(last, query_key) if last is not None else ""
        )

    async def ListCommunities(self, request, context):
        principal = directory_reader()
        member_id = parse_name(request.member, "profiles", field="member") if request.member else ""
        size = page_size(request.page_size)
        query_key = fingerprint("communities", request.member)[:16]
        after = decode_page_token(request.page_token, query_key)
        docs, total, last = await communities_queries.list_communities(self.es, self.settings, principal, member_id, size, after)
        response = search_pb2.ListCommunitiesResponse(total_size=total)
        for doc in docs:
            response.communities.add(
                community=f"communities/{doc['community_id']}",
                display_name=doc["display_name"],
                description=doc.get("description", ""),
                access=doc["access"],
                member_count=doc.get("member_count", 0),
                owners=[f"profiles/{o}" for o in doc.get("owners", [])],
            )
        if last is not None:
            response.next_page_token = encode_page_token(last, query_key)
        return response

    async def ListRelations(self, request, context):
        principal = directory_reader()
        person = parse_name(request.person, "profiles", field="person")
        relation = _RELATION_NAMES.get(request.relation, "")
        if relation in network_queries.PENDING_RELATIONS:
            network_queries.require_self_or_service(principal, person, "pending requests")
        if not relation:
            raise InvalidArgument("must be FOLLOWERS, FOLLOWING, CONNECTIONS, PENDING_INCOMING or PENDING_OUTGOING", field="relation")
        size = page_size(request.page_size)
        query_key = fingerprint("relations", person, str(request.relation))[:16]
        after = decode_page_token(request.page_token, query_key)
        others, total, last = await network_queries.list_relations(self.es, self.settings, person, relation, size, after)
        response = search_pb2.ListRelationsResponse(total_size=total)
        for other, since in others:
            response.people.add(profile=f"profiles/{other}", since=_timestamp(since))
        if last is not None:
            response.next_page_token = encode_page_token(last, query_key)
        return response

    async def GetNetworkCounts(self, request, context):
        directory_reader()
        person = parse_name(request.person, "profiles", field="person")
        followers, following, connections = await network_queries.network_counts(self.es, self.settings, person)
        return search_pb2.NetworkCounts(person=request.person, followers=followers, following=following, connections=connections)

    async def ListStatusUpdates(self, request, context):
        author = parse_name(request.person, "profiles", field="person")
        size = page_size(request.page_size)
        query_key = fingerprint("statuses", author)[:16]
        after = decode_page_token(request.page_token, query_key)
        docs, photos, last = await network_queries.list_status_updates(self.es, self.settings, current_principal(), author, size, after)
        return search_pb2.ListStatusUpdatesResponse(
            status_updates=[network_queries.status_hit(doc, photos) for doc in docs], next_page_token=encode_page_token(last, query_key) if last is not None else ""
        )

    async def GetNetworkFeed(self, request, context):
        principal = current_principal()
        person = parse_name(request.person, "profiles", field="person")
        network_queries.require_self_or_service(principal, person, "feed")
        size = page_size(request.page_size)
        query_key = fingerprint("feed", "v2", person)[:16]
        after = decode_page_token(request.page_token, query_key)  # a foreign token is refused before any work
        items, last = await feed_queries.network_feed(self.es, self.settings, principal, person, size, after)
        return search_pb2.GetNetworkFeedResponse(items=items, next_page_token=encode_page_token(last, query_key) if last is not None else "")

    async def ListPeopleYouMayKnow(self, request, context):
        principal = directory_reader()
        person = parse_name(request.person, "profiles", field="person")
        network_queries.require_self_or_service(principal, person, "suggestions")
        size = page_size(request.page_size)
        suggestions = await network_queries.people_you_may_know(self.es, self.settings, person, size)
        response = search_pb2.ListPeopleYouMayKnowResponse()
        for doc, mutual, same_department, score in suggestions:
            response.suggestions.add(person=people_queries.person_hit(doc), mutual_connections=mutual, same_department=same_department, score=score)
        return response

    # --- wiki and media library ---------------------------------------------------
    async def ListWikiBacklinks(self, request, context):
        principal = current_principal()
        parse_name(request.page, "pages", field="page")
        size = page_size(request.page_size)
        after = decode_page_token(request.page_token, request.page)
        hits, last = await library_queries.backlinks(self.es, self.settings, principal, request.page, size, after)
        response = search_pb2.ListWikiBacklinksResponse(
            pages=[search_pb2.WikiPageHit(page=h["page"], space=f"spaces/{h['space_id']}", title=h["title"], revision=h["revision"]) for h in hits]
        )
        if last is not None:
            response.next_page_token = encode_page_token(last, request.page)
        return response

    async def ListMediaItems(self, request, context):
        principal = current_principal()
        if request.owner:
            parse_name(request.owner, "profiles", field="owner")
        size = page_size(request.page_size)
        # v2: pages end on media_id as well; a token of the old two-key order is another query's.
        query_key = fingerprint("media", "v2", request.owner, request.tag)[:16]
        after = decode_page_token(request.page_token, query_key)
        items, last, total = await library_queries.list_media(self.es, self.settings, principal, request.owner, request.tag, size, after)
        response = search_pb2.ListMediaItemsResponse(total_size=total)
        for item in items:
            hit = response.media_items.add(
                media_item=item["media_item"], owner=item["owner"], title=item["title"], kind=item["kind"], tags=item.get("tags", []),
                size_bytes=item["size_bytes"], content_type=item["content_type"], visibility=item["visibility"],
            )
            hit.create_time.FromJsonString(item["created_at"].replace("+00:00", "Z"))
        if last is not None:
            response.next_page_token = encode_page_token(last, query_key)
        return response

    async def GetViewCounts(self, request, context):
        principal = current_principal()
        total, days = await library_queries.view_counts(self.es, self.settings, principal, request.name, request.days, request.department)
        return search_pb2.ViewCounts(name=request.name, total=total, days=[search_pb2.DayCount(day=d, count=n) for d, n in days])

    async def ListTopViewed(self, request, context):
        principal = current_principal()
        if request.kind == search_pb2.ListTopViewedRequest.KIND_UNSPECIFIED:
            raise InvalidArgument("must be PAGES or MEDIA", field="kind")
        if request.period == search_pb2.ListTopViewedRequest.PERIOD_UNSPECIFIED:
            raise InvalidArgument("must be DAY, WEEK or ALL_TIME", field="period")
        try:
            day = dt.date.fromisoformat(request.day) if request.day else dt.datetime.now(dt.UTC).date()
        except ValueError:
            raise InvalidArgument("must be a date as YYYY-MM-DD", field="day") from None
        space_id = parse_name(request.space, "spaces", field="space") if request.space else ""
        if space_id and request.kind != search_pb2.ListTopViewedRequest.PAGES:
            raise InvalidArgument("only pages belong to spaces", field="space")
        size = page_size(request.page_size, default=10)
        kind = "views" if request.kind == search_pb2.ListTopViewedRequest.PAGES else "downloads"
        period = enum_name(search_pb2.ListTopViewedRequest.Period, request.period, "period", zero=search_pb2.ListTopViewedRequest.Period.Name(0))
        top = await library_queries.top_viewed(self.es, self.settings, principal, kind, period, day, space_id, request.department, size)
        return search_pb2.ListTopViewedResponse(items=[search_pb2.TopItem(**item) for item in top])


    # --- blogs, microblog, comments, ratings, bookmarks (services/search/posts.py) ---
    def _posts(self) -> PostQueries:
        return PostQueries(self.es, self.settings)

    async def SearchPosts(self, request, context):
        text = posts_queries.check_query(request.query)
        if request.kind not in posts_queries.POST_KINDS:
            raise InvalidArgument("must be 'blog', 'micro' or empty", field="kind")
        blog = parse_name(request.blog, "blogs", field="blog") if request.blog else ""
        author_id = parse_name(request.author, "profiles", field="author") if request.author else ""
        mentions = parse_name(request.mentions, "profiles", field="mentions") if request.mentions else ""
        size = page_size(request.page_size)
        query_key = fingerprint("posts", request.query, request.kind, request.blog, request.author, request.tag, request.mentions)[:16]
        after = decode_page_token(request.page_token, query_key)
        posts, tags, total, last = await self._posts().search_posts(current_principal(), text, request.kind, blog, author_id, mentions, request.tag, size, after)
        return _post_page(posts, tags, total, last, query_key)

    async def ListBlogDirectory(self, request, context):
        size = page_size(request.page_size)
        letter = request.letter.strip()
        if len(letter) > 1:
            raise InvalidArgument("must be one letter", field="letter")
        query_key = fingerprint("directory", letter)[:16]
        after = decode_page_token(request.page_token, query_key)
        blogs, total, last = await self._posts().list_blog_directory(current_principal(), letter, size, after)
        return search_pb2.ListBlogDirectoryResponse(blogs=blogs, total_size=total, next_page_token=encode_page_token(last, query_key) if last is not None else "")

    async def ListTimeline(self, request, context):
        person = parse_name(request.person, "profiles", field="person")
        size = page_size(request.page_size)
        query_key = fingerprint("timeline", person)[:16]
        after = decode_page_token(request.page_token, query_key)
        posts, tags, total, last = await self._posts().list_timeline(current_principal(), person, size, after)
        return _post_page(posts, tags, total, last, query_key)

    async def ListComments(self, request, context):
        if not request.target or "/" not in request.target:
            raise InvalidArgument("required, e.g. 'posts/{id}'", field="target")
        size = page_size(request.page_size, maximum=500)
        query_key = fingerprint("comments", request.target)[:16]
        after = decode_page_token(request.page_token, query_key)
        comments, total, last = await self._posts().list_comments(current_principal(), request.target, size, after)
        response = search_pb2.ListCommentsResponse(total_size=total)
        for doc, like_count in comments:
            response.comments.add(
                name=doc["name"], target=doc["target"], parent=doc["parent"], author=f"profiles/{doc['author_id']}", body=doc["body"],
                create_time=doc["created_at"], edited=bool(doc.get("edited_at")), like_count=like_count,
            )
        if last is not None:
            response.next_page_token = encode_page_token(last, query_key)
        return response

    async def SearchBookmarks(self, request, context):
        text = posts_queries.check_query(request.query)
        size = page_size(request.page_size)
        owner_id = parse_name(request.owner, "profiles", field="owner") if request.owner else ""
        url = normalize_url(request.url) if request.url else ""  # as the writer normalised it
        query_key = fingerprint("bookmarks", request.query, request.owner, request.tag, request.url)[:16]
        after = decode_page_token(request.page_token, query_key)
        bookmarks, tags, total, last = await self._posts().search_bookmarks(current_principal(), text, owner_id, request.tag, url, size, after)
        return search_pb2.SearchBookmarksResponse(
            bookmarks=bookmarks, tags=[search_pb2.TagCount(tag=tag, count=count) for tag, count in tags], total_size=total,
            next_page_token=encode_page_token(last, query_key) if last is not None else "",
        )

    async def ListPopularLinks(self, request, context):
        size = page_size(request.page_size)
        last_7_days = request.window == search_pb2.ListPopularLinksRequest.LAST_7_DAYS
        links = await self._posts().list_popular_links(current_principal(), last_7_days, request.tag, size)
        return search_pb2.ListPopularLinksResponse(links=[search_pb2.PopularLink(url=url, saver_count=savers, title=title) for url, savers, title in links])

    async def GetPostStats(self, request, context):
        blog = parse_name(request.blog, "blogs", field="blog") if request.blog else ""
        post = f"posts/{parse_name(request.post, 'posts', field='post')}" if request.post else ""
        return await self._posts().post_stats(current_principal(), blog, post)

    async def ListAuditEvents(self, request, context):
        principal = current_principal()
        audit_queries.require_reader(principal)  # before the request's fields are read, as ever
        start = request.start_time.ToDatetime(tzinfo=dt.UTC) if request.HasField("start_time") else None
        end = request.end_time.ToDatetime(tzinfo=dt.UTC) if request.HasField("end_time") else None
        size = page_size(request.page_size)
        query_key = fingerprint("audit", request.actor, request.target_owner, request.resource, str(start), str(end))[:16]
        after = decode_page_token(request.page_token, query_key)
        events, last = await audit_queries.list_audit_events(self.es, self.settings, principal, request.actor, request.target_owner, request.resource, start, end, size, after)
        response = search_pb2.ListAuditEventsResponse()
        for d in events:
            event = response.audit_events.add(
                event_id=d["event_id"], event_type=d["event_type"], actor=d["actor"], actor_kind=d["actor_kind"], correlation_id=d["correlation_id"],
                causation_id=d["causation_id"], source=d["source"], aggregate_type=d["aggregate_type"], aggregate_id=d["aggregate_id"],
                resource=d.get("resource", ""), target_owner=d.get("target_owner", ""), reason=d.get("reason", ""),
            )
            event.occur_time.FromDatetime(dt.datetime.fromisoformat(d["occurred_at"]).astimezone(dt.UTC).replace(tzinfo=None))
        if last is not None:
            response.next_page_token = encode_page_token(last, query_key)
        return response


    # --- jams: the query module checks the caller's reach --------------------------
    async def GetJamLeaderboard(self, request, context):
        principal = current_principal()
        size = page_size(request.page_size, default=10)
        doc = await jam_queries.stats_doc(self.es, self.settings, principal, jam_queries.jam_id_from(request.jam))
        return jam_queries.leaderboard(doc, size)

    async def GetJamPulse(self, request, context):
        doc = await jam_queries.stats_doc(self.es, self.settings, current_principal(), jam_queries.jam_id_from(request.jam))
        return jam_queries.pulse(doc)

    async def ExportJamStats(self, request, context):
        fmt = (request.format or "csv").lower()
        if fmt not in ("csv", "json"):
            raise InvalidArgument("must be csv or json", field="format")
        doc = await jam_queries.stats_doc(self.es, self.settings, current_principal(), jam_queries.jam_id_from(request.jam))
        content_type, filename, data = jam_queries.export(doc, fmt)
        return search_pb2.ExportedJamStats(content_type=content_type, filename=filename, data=data)

    async def SearchJamIdeas(self, request, context):
        jam_id = jam_queries.jam_id_from(request.jam)
        if len(request.query) > MAX_QUERY_LENGTH:
            raise InvalidArgument(f"must be at most {MAX_QUERY_LENGTH} characters", field="query")
        # A jam the caller may not see answers NOT_FOUND before any other field is read.
        await jam_queries.require_visible_jam(self.es, self.settings, current_principal(), jam_id)
        size = page_size(request.page_size)
        query_key = fingerprint("jam-ideas", jam_id, request.query, str(request.include_merged))[:16]
        after = decode_page_token(request.page_token, query_key)
        ideas, total, last = await jam_queries.search_ideas(self.es, self.settings, jam_id, request.query, request.include_merged, size, after)
        response = search_pb2.SearchJamIdeasResponse(total_size=total)
        for d in ideas:
            response.ideas.add(
                idea=f"jams/{jam_id}/ideas/{d['idea_id']}", title=d["title"], description=d["description"], author=d["author"], seeded=d["seeded"],
                merged_into=f"jams/{jam_id}/ideas/{d['merged_into']}" if d["merged_into"] else "",
            )
        if last is not None:
            response.next_page_token = encode_page_token(last, query_key)
        return response

    async def ListJamDiscussion(self, request, context):
        jam_id = jam_queries.jam_id_from(request.jam)
        if len(request.query) > MAX_QUERY_LENGTH:
            raise InvalidArgument(f"must be at most {MAX_QUERY_LENGTH} characters", field="query")
        # A jam the caller may not see answers NOT_FOUND before any other field is read.
        await jam_queries.require_visible_jam(self.es, self.settings, current_principal(), jam_id)
        thread_id = jam_queries.child_id(request.thread, jam_id, "threads", "thread") if request.thread else ""
        forum_id = jam_queries.child_id(request.forum, jam_id, "forums", "forum") if request.forum else ""
        idea_id = jam_queries.child_id(request.idea, jam_id, "ideas", "idea") if request.idea else ""
        size = page_size(request.page_size)
        query_key = fingerprint("jam-discussion", jam_id, request.forum, request.idea, request.thread, request.query)[:16]
        after = decode_page_token(request.page_token, query_key)
        posts, total, last = await jam_queries.list_discussion(self.es, self.settings, jam_id, thread_id, forum_id, idea_id, request.query, size, after)
        response = search_pb2.ListJamDiscussionResponse(total_size=total)
        for d in posts:
            name = f"jams/{jam_id}/threads/{d['thread_id']}" + (f"/replies/{d['reply_id']}" if d["kind"] == "reply" else "")
            post = response.posts.add(
                name=name, kind=d["kind"], title=d["title"], body=d["body"], author=d["author"],
                forum=f"jams/{jam_id}/forums/{d['forum_id']}" if d["forum_id"] else "", idea=f"jams/{jam_id}/ideas/{d['idea_id']}" if d["idea_id"] else "",
            )
            post.create_time.FromDatetime(dt.datetime.fromisoformat(d["created_at"]).astimezone(dt.UTC).replace(tzinfo=None))
        if last is not None:
            response.next_page_token = encode_page_token(last, query_key)
        return response

    # --- one search over everything, stats for dashboards (also the HTTP gateway's) ---
    async def Search(self, request, context):
        return await search(self.es, self.settings, current_principal(), request)

    async def Suggest(self, request, context):
        return await suggest(self.es, self.settings, current_principal(), request)

    async def Trending(self, request, context):
        return await trending(self.es, self.settings, current_principal(), request)

    async def GetStats(self, request, context):
        return await get_stats(self.es, self.settings, current_principal(), request)


# Search, Suggest, Trending and GetStats answer both here and over HTTP (services/search/http.py):
# one translation of their requests for both.
async def search(es: AsyncElasticsearch, settings: Settings, principal: Principal, request: search_pb2.SearchRequest) -> search_pb2.SearchResponse:
    query = search_query(request)
    size = page_size(request.page_size)
    copy = search_pb2.SearchRequest()
    copy.CopyFrom(request)
    copy.ClearField("page_token")
    copy.ClearField("read_mask")  # what is returned of a page, not which page: a token works with any mask
    if query.order not in unified.RANKED_KINDS:
        copy.ClearField("page_size")
    # v2: the tie-break ends on media_id; a token of the old order is another query's.
    query_key = fingerprint("search", "v2", copy.SerializeToString(deterministic=True))[:16]
    after = decode_page_token(request.page_token, query_key)
    response, next_position = await Search(es, settings).search(principal, query, size, after)
    if next_position is not None and "next_page_token" in query.wanted:
        response.next_page_token = encode_page_token(next_position, query_key)
    return response


def search_query(request: search_pb2.SearchRequest) -> unified.SearchQuery:
    """The request's fields checked, in this order (the first wrong one is the error)."""
    text = unified.check_query(request.query)
    kinds = list(dict.fromkeys(request.kinds)) or list(unified.KINDS)
    for kind in kinds:
        if kind not in unified.KINDS:
            raise InvalidArgument(f"unknown kind {kind!r}; one of {', '.join(unified.KINDS)}", field="kinds")
    order = request.order_by or "relevance"
    if order not in unified.ORDERS:
        raise InvalidArgument(f"must be one of {', '.join(unified.ORDERS)}", field="order_by")
    filters: dict[str, Any] = {}
    if request.author:
        filters["author"] = parse_name(request.author, "profiles", field="author")
    if len(request.tags) > unified.MAX_TAGS:
        raise InvalidArgument(f"at most {unified.MAX_TAGS} tags", field="tags")
    tags = [t.strip().lower().lstrip("#") for t in request.tags]
    if any(not t or len(t) > 64 for t in tags):
        raise InvalidArgument("each tag must have 1 to 64 characters", field="tags")
    if tags:
        filters["tags"] = tags
    if request.blog:
        filters["blog"] = parse_name(request.blog, "blogs", field="blog")
    if request.space:
        filters["space"] = parse_name(request.space, "spaces", field="space")
    if request.community:
        filters["community"] = parse_name(request.community, "communities", field="community")
    if request.jam:
        filters["jam"] = jam_queries.jam_id_from(request.jam)
    for name in filters:
        kinds = [k for k in kinds if k in unified.FILTER_KINDS[name]]
        if not kinds:
            raise InvalidArgument(f"applies only to {', '.join(unified.FILTER_KINDS[name])}, not to the kinds asked for", field=name)
    if order in unified.RANKED_KINDS:
        kinds = [k for k in kinds if k in unified.RANKED_KINDS[order]]
        if not kinds:
            raise InvalidArgument(f"{order} ranks only {', '.join(unified.RANKED_KINDS[order])}", field="order_by")
    start = request.start_time.ToDatetime(dt.UTC) if request.HasField("start_time") else None
    end = request.end_time.ToDatetime(dt.UTC) if request.HasField("end_time") else None
    if start and end and end <= start:
        raise InvalidArgument("must be after start_time", field="end_time")
    wanted = set(request.read_mask.paths)
    if not wanted:
        wanted = set(unified.DEFAULT_RESPONSE_FIELDS)
    elif "*" in wanted:
        wanted = set(unified.RESPONSE_FIELDS)
    unknown = sorted(wanted - set(unified.RESPONSE_FIELDS))
    if unknown:
        raise InvalidArgument(f"unknown field {unknown[0]!r}; one of {', '.join(unified.RESPONSE_FIELDS)} or *", field="read_mask")
    return unified.SearchQuery(text=text, kinds=kinds, order=order, filters=filters, start=start, end=end, wanted=wanted)


async def suggest(es: AsyncElasticsearch, settings: Settings, principal: Principal, request: search_pb2.SuggestRequest) -> search_pb2.SuggestResponse:
    prefix = unified.check_query(request.prefix, "prefix", 64)
    if not prefix:
        raise InvalidArgument("required: what has been typed so far", field="prefix")
    kinds = list(dict.fromkeys(request.kinds)) or list(Search.SUGGEST_KINDS)
    for kind in kinds:
        if kind not in Search.SUGGEST_KINDS:
            raise InvalidArgument(f"unknown kind {kind!r}; one of {', '.join(Search.SUGGEST_KINDS)}", field="kinds")
    if request.page_size < 0 or request.page_size > 20:
        raise InvalidArgument("must be between 0 and 20", field="page_size")
    return await Search(es, settings).suggest(principal, prefix, kinds, request.page_size or 5)


async def trending(es: AsyncElasticsearch, settings: Settings, principal: Principal, request: search_pb2.TrendingRequest) -> search_pb2.TrendingResponse:
    for kind in request.kinds:
        if kind not in Search.TRENDING_KINDS:
            raise InvalidArgument(f"unknown kind {kind!r}; one of {', '.join(Search.TRENDING_KINDS)}", field="kinds")
    kinds = list(dict.fromkeys(Search.TRENDING_KINDS[kind] for kind in request.kinds or Search.TRENDING_KINDS))
    if request.page_size < 0 or request.page_size > 50:
        raise InvalidArgument("must be between 0 and 50", field="page_size")
    end = request.time.ToDatetime(dt.UTC) if request.HasField("time") else dt.datetime.now(dt.UTC)
    return await Search(es, settings).trending(principal, kinds, request.page_size or 10, end)


async def get_stats(es: AsyncElasticsearch, settings: Settings, principal: Principal, request: search_pb2.GetStatsRequest) -> search_pb2.GetStatsResponse:
    return await Stats(es, settings).get_stats(principal, stats_query(request))


def stats_query(request: search_pb2.GetStatsRequest) -> stats_queries.StatsQuery:
    """The request's fields checked, in this order (the first wrong one is the error)."""
    metric = request.metric
    if metric not in stats_queries.METRICS:
        raise InvalidArgument(f"unknown metric; one of {', '.join(stats_queries.METRICS)}", field="metric")
    for name in stats_queries.FILTERS:
        if getattr(request, name) and name not in stats_queries.METRICS[metric]:
            raise InvalidArgument(f"{metric} does not filter by {name}", field=name)
    interval = request.interval or "day"
    if interval not in stats_queries.INTERVALS:
        raise InvalidArgument(f"must be one of {', '.join(stats_queries.INTERVALS)}", field="interval")
    if interval == "hour" and metric in ("wiki_views", "media_downloads"):
        raise InvalidArgument("views and downloads are counted per day", field="interval")
    start = request.start_time.ToDatetime(dt.UTC) if request.HasField("start_time") else None
    end = request.end_time.ToDatetime(dt.UTC) if request.HasField("end_time") else None
    if start and end and end <= start:
        raise InvalidArgument("must be after start_time", field="end_time")
    if start and end and (end - start) / stats_queries.INTERVALS[interval] > stats_queries.MAX_BUCKETS:
        raise InvalidArgument(f"the range holds more than {stats_queries.MAX_BUCKETS} intervals; use a longer interval", field="interval")
    if request.top_size < 0 or request.top_size > stats_queries.MAX_TOP:
        raise InvalidArgument(f"must be between 0 and {stats_queries.MAX_TOP}", field="top_size")
    if metric.startswith("jam_") and not request.jam:
        raise InvalidArgument("required for jam metrics, as 'jams/{jam}'", field="jam")
    # Only the filters the metric takes can be set (checked above).
    return stats_queries.StatsQuery(
        metric=metric, interval=interval, start=start, end=end, top=request.top_size or 10,
        target=stats_queries.check_target(metric, request.target) if request.target else "",
        space_id=parse_name(request.space, "spaces", field="space") if request.space else "",
        department=request.department, country=request.country,
        jam_id=jam_queries.jam_id_from(request.jam) if request.jam else "",
        blog=parse_name(request.blog, "blogs", field="blog") if request.blog else "",
    )


def register(server: grpc.aio.Server, es: AsyncElasticsearch, settings: Settings) -> list[str]:
    search_pb2_grpc.add_SearchServiceServicer_to_server(SearchServicer(es, settings), server)
    notifications_pb2_grpc.add_NotificationServiceServicer_to_server(NotificationServicer(es, settings), server)
    from . import personal_data

    return [search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name, notifications_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name,
            personal_data.register(server, es, settings)]


class NotificationServicer(notifications_pb2_grpc.NotificationServiceServicer):
    """The caller's notifications (services/search/notifications.py)."""

    def __init__(self, es: AsyncElasticsearch, settings: Settings):
        self.notifications = Notifications(es, settings)

    async def ListNotifications(self, request, context):
        principal = current_principal()
        person = owner_of(principal, request.parent)
        size = page_size(request.page_size)
        query_key = f"{person}:{int(request.unread_only)}"
        search_after = decode_page_token(request.page_token, query_key)
        docs, read_seq, last = await self.notifications.list(principal, person, request.unread_only, size, search_after)
        response = notifications_pb2.ListNotificationsResponse(notifications=[_notification(doc, read_seq) for doc in docs])
        if last is not None:
            response.next_page_token = encode_page_token(last, query_key)
        return response

    async def GetUnreadCount(self, request, context):
        principal = current_principal()
        person = owner_of(principal, request.parent)
        return notifications_pb2.UnreadCount(unread_count=await self.notifications.unread_count(principal, person))

    async def WatchNotifications(self, request, context):
        principal = current_principal()
        person = owner_of(principal, request.parent)
        after_id = notification_id_of(person, request.after) if request.after else ""
        async for doc, read_seq in self.notifications.watch(principal, person, after_id):
            yield _notification(doc, read_seq)


def _notification(doc: dict, read_seq: int) -> notifications_pb2.Notification:
    message = notifications_pb2.Notification(name=doc["name"], kind=doc["kind"], actor=doc["actor"], item=doc["item"], reason=doc["reason"], read=doc["seq"] <= read_seq)
    message.create_time.FromDatetime(dt.datetime.fromisoformat(doc["occurred_at"]).astimezone(dt.UTC).replace(tzinfo=None))
    return message
