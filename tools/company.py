"""Writes the synthetic company (``tools.synthetic.Company``) through the public gRPC APIs.

``watercooler seed --size N --company``: profiles (managers before their reports, in
``BatchCreateProfiles`` calls), communities and their members, blogs, published posts,
comments, ratings, microposts, bookmarks, a wiki space of pages with a day of page views
(``BatchRecordPageViews``), media items with a day of downloads (``BatchRecordDownloads``),
and a jam with ideas and votes.

Idempotent: every command carries a request id derived from (seed, size, tag, item), so a
second run returns the first results and stores nothing new.  Page views and downloads are
facts, remembered by request id only for a while; they are recorded only by the run that
created the wiki space (a run that died after creating the space and before the facts
leaves them unwritten).

``tag`` prefixes every employee id, handle and resource id, so several companies (tests in
one namespace, a benchmark next to the demo) never collide; the CLI uses no tag.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc

from tools.synthetic import Company
from watercooler.auth import issue_token
from watercooler.client import bearer_metadata, channel, service_token
from watercooler.config import Settings
from watercooler.guidelines import AcceptForPeople

# The kinds in the order they are written (later kinds refer to earlier ones).
KINDS = ("profiles", "communities", "community members", "blogs", "posts", "comments", "ratings", "microposts", "bookmarks", "wiki pages", "page views",
         "media items", "downloads", "jam ideas", "jam votes")
VIEW_BATCH = 1000  # BatchRecordPageViews' limit
PROFILES_PER_BATCH = 500  # BatchCreateProfiles takes up to 1,000; 500 keeps a wave spread over the workers


def create_profile_request(person: Any, request_id: str, employee_id: Callable[[str], str] = str) -> Any:
    """The CreateProfileRequest for a generated person (``synthetic.Person`` or the demo's
    ``seed.Person``); ``employee_id`` maps their ids (a tag prefix)."""
    from watercooler.profiles.v1 import profiles_pb2

    return profiles_pb2.CreateProfileRequest(
        profile=profiles_pb2.Profile(
            employee_id=employee_id(person.employee_id),
            display_name=person.display_name,
            sort_name=person.sort_name,
            department=person.department,
            country=person.country,
            manager=f"profiles/{employee_id(person.manager_id)}" if person.manager_id else "",
            expertise=list(person.expertise),
            title=person.title,
        ),
        request_id=request_id,
    )


@dataclass
class Plan:
    """How much of each kind to write for a company of ``employees`` (the generator's defaults
    scaled down where a full day of activity would dwarf the rest)."""

    posts: int
    comments: int
    ratings: int
    microposts: int
    bookmarks: int
    page_views: int
    downloads: int
    memberships: int
    jam_participants: int

    @classmethod
    def for_company(cls, company: Company) -> Plan:
        n = company.employees
        posts = 10 * company.blogs_count
        return cls(posts=posts, comments=3 * posts, ratings=2 * posts, microposts=max(1, n // 2), bookmarks=n, page_views=n,
                   downloads=max(1, n // 2), memberships=max(1, n // 10), jam_participants=max(1, n // 4))


@dataclass
class Written:
    """Per kind: items the company holds after the run (written now or by an earlier run)."""

    present: Counter = field(default_factory=Counter)
    views_recorded: int = 0  # page views recorded by this run (facts: only the first run records them)
    downloads_recorded: int = 0  # the same for downloads
    names: dict[str, Any] = field(default_factory=dict)  # resource names the test and later kinds need


class CompanyWriter:
    def __init__(
        self, settings: Settings, company: Company, tag: str = "", concurrency: int = 16, progress: Callable[[str, int, int | None], None] | None = None
    ):
        self.settings, self.company, self.tag = settings, company, tag
        self.concurrency = max(1, concurrency)
        self.progress = progress or (lambda kind, n, total: None)
        self.plan = Plan.for_company(company)
        self.written = Written()
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[tuple[str, str], ...]] = {}
        self._service = bearer_metadata(service_token(settings, "watercooler-seed"))
        self._guidelines = AcceptForPeople(settings, self._service)

    # --- naming -------------------------------------------------------------------------------
    def eid(self, employee_id: str) -> str:
        return f"{self.tag}{employee_id}" if employee_id else ""

    def rid(self, *parts: object) -> str:
        return "-".join(["company", str(self.company.seed), str(self.company.employees), self.tag or "_", *map(str, parts)])

    def handle(self, handle: str) -> str:
        return f"{self.tag}{handle}".lower()

    @property
    def space_id(self) -> str:
        return f"{self.tag}company-{self.company.seed}".lower()

    @property
    def jam_id(self) -> str:
        return f"{self.tag}jam-{self.company.seed}-{self.company.employees}".lower()

    def as_person(self, employee_id: str) -> tuple[tuple[str, str], ...]:
        subject = self.eid(employee_id)
        if subject not in self._tokens:
            self._tokens[subject] = bearer_metadata(issue_token(self.settings, subject, "employee"))
        return self._tokens[subject]

    def as_author(self, employee_id: str) -> tuple[tuple[str, str], ...]:
        """As a person who writes what others read: they accept the participation guidelines
        first (one call per person and run; raters and voters write nothing others read)."""
        self._guidelines.accept(self.eid(employee_id))
        return self.as_person(employee_id)

    # --- plumbing -----------------------------------------------------------------------------
    def _rpc(self, method, request, metadata) -> Any:
        """One unary call, retried with the same request id (safe: the retry returns the first
        result) on ABORTED (a concurrent write to the same aggregate), RESOURCE_EXHAUSTED (a
        prolific author meeting the per-person rate limit) and UNAVAILABLE."""
        retryable = (grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
        for attempt in range(10):
            try:
                return method(request, metadata=metadata, timeout=60)
            except grpc.RpcError as exc:
                if exc.code() not in retryable or attempt == 9:
                    raise
                time.sleep(min(2.0, 0.05 * 2**attempt))
        raise AssertionError("unreachable")

    def _call(self, kind: str, method, request, metadata, tolerate: tuple = (grpc.StatusCode.ALREADY_EXISTS,)) -> Any:
        """One command, counted; ALREADY_EXISTS (the natural key was taken by an earlier run
        without the same request id) counts as present."""
        result = self._rpc_tolerating(method, request, metadata, tolerate)
        self._count(kind)
        return result

    def _count(self, kind: str, n: int = 1) -> None:
        with self._lock:  # worker threads count concurrently
            self.written.present[kind] += n
        self.progress(kind, n, None)

    def _many(self, kind: str, jobs: Iterable[Callable[[], Any]], total: int) -> list[Any]:
        """Runs independent commands concurrently (gRPC stubs are thread-safe), in order of results."""
        self.progress(kind, 0, total)
        results: list[Any] = []
        jobs = iter(jobs)
        with ThreadPoolExecutor(self.concurrency) as pool:
            # In chunks: Executor.map submits everything at once, which at 400,000 people is
            # hundreds of thousands of pending futures.
            while chunk := list(itertools.islice(jobs, 50 * self.concurrency)):
                results += pool.map(lambda job: job(), chunk)
        return results

    # --- the kinds ------------------------------------------------------------------------------
    def write(self) -> Written:
        from watercooler.jams.v1 import jams_pb2_grpc
        from watercooler.posts.v1 import media_pb2_grpc, posts_pb2_grpc, wiki_pb2_grpc
        from watercooler.profiles.v1 import communities_pb2_grpc, profiles_pb2_grpc

        with channel(self.settings, "profiles") as profiles_ch, channel(self.settings, "posts") as posts_ch, channel(self.settings, "jams") as jams_ch:
            self.write_profiles(profiles_pb2_grpc.ProfileServiceStub(profiles_ch))
            self.write_communities(communities_pb2_grpc.CommunityServiceStub(profiles_ch))
            posts = posts_pb2_grpc.PostServiceStub(posts_ch)
            self.write_posts(posts)
            first_run = self.write_wiki(wiki_pb2_grpc.WikiServiceStub(posts_ch))
            self.write_media(media_pb2_grpc.MediaServiceStub(posts_ch), first_run)
            self.write_jam(jams_pb2_grpc.JamServiceStub(jams_ch))
        return self.written

    def write_profiles(self, stub) -> None:
        from watercooler.profiles.v1 import profiles_pb2

        people = list(self.company.people())
        depth: list[int] = []
        for person in people:  # a manager is always hired before their reports
            depth.append(0 if not person.manager_id else depth[int(person.manager_id[1:])] + 1)
        self.progress("profiles", 0, len(people))
        with ThreadPoolExecutor(self.concurrency) as pool:
            for level in range(max(depth, default=-1) + 1):  # managers exist before their reports are created
                wave = [p for p, d in zip(people, depth, strict=True) if d == level]

                def create(people_of_batch) -> None:
                    requests = [create_profile_request(person, self.rid("profile", person.employee_id), self.eid) for person in people_of_batch]
                    try:
                        self._rpc(stub.BatchCreateProfiles, profiles_pb2.BatchCreateProfilesRequest(requests=requests), self._service)
                    except grpc.RpcError as exc:
                        if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                            raise
                        # An earlier run wrote some of them under other request ids; the batch
                        # saved nothing, so one at a time, each taken as present if it exists.
                        for one in requests:
                            self._call("profiles", stub.CreateProfile, one, self._service)
                        return
                    self._count("profiles", len(requests))

                list(pool.map(create, [wave[i:i + PROFILES_PER_BATCH] for i in range(0, len(wave), PROFILES_PER_BATCH)]))
        self.written.names["people"] = [self.eid(p.employee_id) for p in people]

    def write_posts(self, stub) -> None:
        from watercooler.posts.v1 import posts_pb2 as pb

        internal = pb.Audience.INTERNAL
        blogs = list(self.company.blogs())

        def blog_job(blog):
            return lambda: self._call(
                "blogs",
                stub.CreateBlog,
                pb.CreateBlogRequest(
                    blog=pb.Blog(handle=self.handle(blog.handle), title=blog.title, visibility=internal), request_id=self.rid("blog", blog.handle)
                ),
                self.as_author(blog.owner),
            )

        self._many("blogs", (blog_job(b) for b in blogs), len(blogs))
        self.written.names["blogs"] = [f"blogs/{self.handle(b.handle)}" for b in blogs]

        posts = list(self.company.posts(self.plan.posts))

        def post_job(post):
            def run() -> str:
                me = self.as_author(post.author)
                created = self._rpc(
                    stub.CreatePost,
                    pb.CreatePostRequest(
                        parent=f"blogs/{self.handle(post.blog)}",
                        post=pb.Post(title=post.title, body=post.body, tags=list(post.tags), visibility=internal),
                        request_id=self.rid("post", post.key),
                    ),
                    me,
                )
                self._rpc(stub.PublishPost, pb.PublishPostRequest(name=created.name, request_id=self.rid("publish", post.key)), me)
                self._count("posts")
                return created.name

            return run

        names = self._many("posts", (post_job(p) for p in posts), len(posts))
        by_key = {p.key: name for p, name in zip(posts, names, strict=True)}
        self.written.names["posts"] = names

        comments = list(self.company.comments(len(posts), self.plan.comments))
        self._many(
            "comments",
            (
                (
                    lambda i=i, c=c: self._call(
                        "comments",
                        stub.CreateComment,
                        pb.CreateCommentRequest(comment=pb.Comment(target=by_key[c.post], body=c.body), request_id=self.rid("comment", i)),
                        self.as_author(c.author),
                    )
                )
                for i, c in enumerate(comments)
            ),
            len(comments),
        )

        # A second rating by the same person replaces the first: write the last one per (post, rater).
        ratings = {(r.post, r.rater): r for r in self.company.ratings(len(posts), self.plan.ratings)}
        self._many(
            "ratings",
            (
                (
                    lambda r=r: self._call(
                        "ratings",
                        stub.RatePost,
                        pb.RatePostRequest(post=by_key[r.post], value=r.value, request_id=self.rid("rating", r.post, r.rater)),
                        self.as_person(r.rater),
                    )
                )
                for r in ratings.values()
            ),
            len(ratings),
        )

        microposts = list(self.company.microposts(self.plan.microposts))

        def micro_text(m) -> str:
            text = m.text
            for mention in m.mentions:
                text = text.replace(f"@{mention}", f"@{self.eid(mention)}")
            return text

        self._many(
            "microposts",
            (
                (
                    lambda i=i, m=m: self._call(
                        "microposts",
                        stub.CreateMicropost,
                        pb.CreateMicropostRequest(micropost=pb.Micropost(text=micro_text(m), visibility=internal), request_id=self.rid("micro", i)),
                        self.as_author(m.author),
                    )
                )
                for i, m in enumerate(microposts)
            ),
            len(microposts),
        )

        # One person saving the same link twice is one bookmark: dedupe by (owner, url).
        bookmarks = {(b.owner, b.url): b for b in self.company.bookmarks(self.plan.bookmarks)}
        self._many(
            "bookmarks",
            (
                (
                    lambda b=b: self._call(
                        "bookmarks",
                        stub.CreateBookmark,
                        pb.CreateBookmarkRequest(
                            bookmark=pb.Bookmark(url=b.url, title=b.title, tags=list(b.tags), visibility=internal),
                            request_id=self.rid("bookmark", b.owner, b.url),
                        ),
                        self.as_author(b.owner),
                    )
                )
                for b in bookmarks.values()
            ),
            len(bookmarks),
        )

    def write_wiki(self, stub) -> bool:
        """Pages and their views; True when this run created the space (and recorded the facts)."""
        from watercooler.posts.v1 import wiki_pb2

        first_run = True
        try:
            stub.CreateSpace(
                wiki_pb2.CreateSpaceRequest(
                    space=wiki_pb2.Space(
                        space_id=self.space_id,
                        display_name=f"Company wiki {self.company.seed}",
                        visibility=wiki_pb2.INTERNAL,
                        owner=f"profiles/{self.eid('e0000000')}",
                    )
                ),
                metadata=self._service,
                timeout=60,
            )
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
            first_run = False  # views are facts without ids: only the run that made the space records them
        count = self.company.wiki_pages
        employees = self.company.employees

        def page_job(rank: int):
            def run() -> str:
                author = f"e{(rank * 7919) % employees:07d}"
                title = f"Page {rank:06d}"
                links = " ".join(f"[[Page {(rank + k) % count:06d}]]" for k in (1, 2))
                page = self._rpc(
                    stub.CreatePage,
                    wiki_pb2.CreatePageRequest(
                        page=wiki_pb2.Page(space=f"spaces/{self.space_id}", title=title, body=f"{title}\n\nSee also {links}.\n"),
                        request_id=self.rid("page", rank),
                    ),
                    self.as_author(author),
                )
                self._count("wiki pages")
                return page.name

            return run

        pages = self._many("wiki pages", (page_job(r) for r in range(count)), count)
        self.written.names["pages"] = pages
        self.progress("page views", 0, self.plan.page_views)
        if not first_run:
            self.written.present["page views"] = self.plan.page_views  # recorded by the first run
            self.progress("page views", self.plan.page_views, None)
            return False
        batch: list[wiki_pb2.PageView] = []

        def flush() -> None:
            recorded = stub.BatchRecordPageViews(wiki_pb2.BatchRecordPageViewsRequest(views=batch), metadata=self._service, timeout=120).recorded
            self.written.present["page views"] += recorded
            self.written.views_recorded += recorded
            self.progress("page views", recorded, None)
            batch.clear()

        # The generator's day is in the past; the API refuses views before a page existed, so
        # the views keep its order and skew but are stamped now (view_time unset).
        for view in self.company.page_views(self.plan.page_views):
            batch.append(wiki_pb2.PageView(page=pages[int(view.page.split("-")[1])], viewer=self.eid(view.viewer), client="company-seed"))
            if len(batch) == VIEW_BATCH:
                flush()
        if batch:
            flush()
        return True

    def write_communities(self, stub) -> None:
        from watercooler.profiles.v1 import communities_pb2 as cp

        communities = list(self.company.communities())

        def community_job(c):
            def run() -> None:
                community = cp.Community(community_id=self.handle(c.key), display_name=c.display_name, access=getattr(cp.Community, c.access),
                                         owners=[f"profiles/{self.eid(c.owner)}"])
                self._call("communities", stub.CreateCommunity, cp.CreateCommunityRequest(community=community, request_id=self.rid("community", c.key)), self._service)

            return run

        self._many("communities", (community_job(c) for c in communities), len(communities))
        self.written.names["communities"] = [f"communities/{self.handle(c.key)}" for c in communities]
        access = {c.key: c.access for c in communities}
        members: dict[str, list[str]] = {}
        for membership in self.company.memberships(self.plan.memberships):
            members.setdefault(membership.community, []).append(membership.member)

        def members_job(key: str, people: list[str]):
            def run() -> None:
                name = f"communities/{self.handle(key)}"
                # One community's joins in turn: each is a command on its one aggregate, and
                # concurrent ones would only collide (ABORTED) and retry.
                for person in people:
                    member = f"profiles/{self.eid(person)}"
                    if access[key] == "INVITE_ONLY":  # a service invites, then the person joins
                        self._rpc_tolerating(stub.InviteMember, cp.InviteMemberRequest(name=name, member=member, request_id=self.rid("invite", key, person)), self._service)
                    self._call("community members", stub.JoinCommunity, cp.JoinCommunityRequest(name=name, member=member, request_id=self.rid("join", key, person)), self._service)

            return run

        self._many("community members", (members_job(key, people) for key, people in members.items()), self.plan.memberships)

    def write_media(self, stub, record_downloads: bool) -> None:
        from watercooler.posts.v1 import media_pb2 as mp
        from watercooler.posts.v1 import wiki_pb2

        items = list(self.company.media_items())

        def item_job(item):
            def run() -> str:
                media_item = mp.MediaItem(title=item.title, kind=getattr(mp.MediaItem, item.kind), size_bytes=item.size_bytes, content_type=item.content_type,
                                          tags=list(item.tags), visibility=wiki_pb2.INTERNAL, storage_uri=f"s3://company-media/{item.key}")
                created = self._rpc(stub.RegisterMediaItem, mp.RegisterMediaItemRequest(media_item=media_item, request_id=self.rid("media", item.key)), self.as_author(item.owner))
                self._count("media items")
                return created.name

            return run

        names = self._many("media items", (item_job(item) for item in items), len(items))
        self.written.names["media"] = names
        self.progress("downloads", 0, self.plan.downloads)
        if not record_downloads:
            self.written.present["downloads"] = self.plan.downloads  # recorded by the first run
            self.progress("downloads", self.plan.downloads, None)
            return
        batch: list[mp.Download] = []

        def flush(number: int) -> None:
            request = mp.BatchRecordDownloadsRequest(downloads=batch, request_id=self.rid("downloads", number))
            recorded = self._rpc(stub.BatchRecordDownloads, request, self._service).recorded
            self.written.present["downloads"] += recorded
            self.written.downloads_recorded += recorded
            self.progress("downloads", recorded, None)
            batch.clear()

        # Stamped now (download_time unset), as the page views are: an item did not exist on the generator's day.
        for number, download in enumerate(self.company.downloads(self.plan.downloads)):
            batch.append(mp.Download(media_item=names[int(download.media.split("-")[1])], viewer=self.eid(download.downloader), client="company-seed"))
            if len(batch) == VIEW_BATCH:
                flush(number)
        if batch:
            flush(self.plan.downloads)

    def _rpc_tolerating(self, method, request, metadata, tolerate: tuple = (grpc.StatusCode.ALREADY_EXISTS,)) -> Any:
        try:
            return self._rpc(method, request, metadata)
        except grpc.RpcError as exc:
            if exc.code() not in tolerate:
                raise
            return None

    def write_jam(self, stub) -> None:
        from google.protobuf.timestamp_pb2 import Timestamp

        from watercooler.jams.v1 import jams_pb2

        name = f"jams/{self.jam_id}"

        def at(minutes: int) -> Timestamp:
            stamp = Timestamp()
            stamp.FromDatetime((dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).replace(tzinfo=None))
            return stamp

        try:  # the schedule is relative to now, so a rerun's CreateJam would be a different request
            jam = stub.GetJam(jams_pb2.GetJamRequest(name=name), metadata=self._service, timeout=60)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            jam = None
        jam = jam or stub.CreateJam(
            jams_pb2.CreateJamRequest(
                jam_id=self.jam_id,
                jam=jams_pb2.Jam(
                    title=f"Company jam {self.company.seed}", description="Vote the ideas.", open_time=at(60), voting_time=at(120), close_time=at(24 * 60)
                ),
                request_id=self.rid("jam"),
            ),
            metadata=self._service,
            timeout=60,
        )
        count = self.company.jam_ideas
        ideas = self._many(
            "jam ideas",
            (
                (
                    lambda n=n: (
                        self._call(
                            "jam ideas",
                            stub.CreateIdea,
                            jams_pb2.CreateIdeaRequest(parent=name, idea=jams_pb2.Idea(title=f"Idea {n}: {self.company.seed}"), request_id=self.rid("idea", n)),
                            self._service,
                        ).name
                    )
                )
                for n in range(count)
            ),
            count,
        )
        self.written.names["jam"] = jam.name
        self.written.names["ideas"] = ideas
        # Straight to voting: the host advances the phases now rather than waiting for the schedule.
        for phase in (jams_pb2.SCHEDULED, jams_pb2.OPEN):
            current = stub.GetJam(jams_pb2.GetJamRequest(name=name), metadata=self._service, timeout=60).phase
            if current == phase:
                stub.AdvanceJamPhase(
                    jams_pb2.AdvanceJamPhaseRequest(name=name, phase=phase, request_id=self.rid("advance", phase)), metadata=self._service, timeout=60
                )
        votes = list(self.company.jam_votes(self.plan.jam_participants))
        self.written.names["voters"] = sorted({self.eid(v.participant) for v in votes})
        by_participant: dict[str, list] = {}
        for vote in votes:
            by_participant.setdefault(vote.participant, []).append(vote)

        def ballot(participant: str, mine: list) -> None:
            # One ballot per participant: its votes in sequence, participants concurrently.
            for v in mine:
                self._call(
                    "jam votes",
                    stub.CastVote,
                    jams_pb2.CastVoteRequest(jam=name, idea=ideas[v.idea], request_id=self.rid("vote", v.participant, v.idea)),
                    self.as_person(participant),
                )

        self.progress("jam votes", 0, len(votes))
        self._many("jam votes", ((lambda p=p, mine=mine: ballot(p, mine)) for p, mine in by_participant.items()), len(votes))


def write_company(
    settings: Settings, size: int, seed: int = 42, tag: str = "", concurrency: int = 16, progress: Callable[[str, int, int | None], None] | None = None
) -> Written:
    """Writes ``Company(size, seed)``; returns what the company holds per kind."""
    return CompanyWriter(settings, Company(employees=size, seed=seed), tag=tag, concurrency=concurrency, progress=progress).write()
