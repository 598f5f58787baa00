"""gRPC face of search: a thin servicer. Each method reads the request (names, page tokens,
enums), calls a query module with typed arguments, and converts what it returns into the
response; errors are the watercooler.errors the query modules raise, mapped to statuses by
the server. Queries, visibility and Elasticsearch live in the query modules."""

from __future__ import annotations

import datetime as dt

import grpc
from elasticsearch import AsyncElasticsearch
from google.protobuf.timestamp_pb2 import Timestamp

from watercooler.auth import current_principal
from watercooler.config import Settings
from watercooler.errors import InvalidArgument
from watercooler.eventstore import fingerprint
from watercooler.rpc import decode_page_token, encode_page_token, enum_name, page_size, parse_name
from watercooler.search.v1 import notifications_pb2, notifications_pb2_grpc, search_pb2, search_pb2_grpc

from . import audit as audit_queries
from . import communities as communities_queries
from . import jams as jam_queries
from . import library as library_queries
from . import network as network_queries
from . import people as people_queries
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
        return await network_queries.network_feed(self.es, self.settings, request)

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
        query_key = fingerprint(request.owner, request.tag)[:16]
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
        return await self._posts().search_posts(current_principal(), request)

    async def ListBlogDirectory(self, request, context):
        return await self._posts().list_blog_directory(current_principal(), request)

    async def ListTimeline(self, request, context):
        return await self._posts().list_timeline(current_principal(), request)

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
        return await self._posts().search_bookmarks(current_principal(), request)

    async def ListPopularLinks(self, request, context):
        size = page_size(request.page_size)
        last_7_days = request.window == search_pb2.ListPopularLinksRequest.LAST_7_DAYS
        links = await self._posts().list_popular_links(current_principal(), last_7_days, request.tag, size)
        return search_pb2.ListPopularLinksResponse(links=[search_pb2.PopularLink(url=url, saver_count=savers, title=title) for url, savers, title in links])

    async def GetPostStats(self, request, context):
        return await self._posts().post_stats(current_principal(), request)

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
                resource=d.get("resource", ""), target_owner=d.get("target_owner", ""),
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

    # --- one search over everything, stats for dashboards ------------------------
    async def Search(self, request, context):
        return await Search(self.es, self.settings).search(current_principal(), request)

    async def Suggest(self, request, context):
        return await Search(self.es, self.settings).suggest(current_principal(), request)

    async def Trending(self, request, context):
        return await Search(self.es, self.settings).trending(current_principal(), request)

    async def GetStats(self, request, context):
        return await Stats(self.es, self.settings).get_stats(current_principal(), request)


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
