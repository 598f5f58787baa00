"""Writes the synthetic company (``watercooler.synthetic.Company``) through the public gRPC APIs.

``watercooler seed --size N --company``: profiles (managers before their reports), blogs,
published posts, comments, ratings, microposts, bookmarks, a wiki space of pages with a day
of page views (``BatchRecordPageViews``), and a jam with ideas and votes.

Idempotent: every command carries a request id derived from (seed, size, tag, item), so a
second run returns the first results and stores nothing new.  Page views are facts without
request ids; they are recorded only by the run that created the wiki space (a run that
died after creating the space and before the views leaves the views unwritten).

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

from .auth import issue_token
from .client import bearer_metadata, channel, service_token
from .config import Settings
from .synthetic import Company

# The kinds in the order they are written (later kinds refer to earlier ones).
KINDS = ("profiles", "blogs", "posts", "comments", "ratings", "microposts", "bookmarks", "wiki pages", "page views", "jam ideas", "jam votes")
VIEW_BATCH = 1000  # BatchRecordPageViews' limit
PROFILES_PER_BATCH = 500  # BatchCreateProfiles takes up to 1,000; 500 keeps a wave spread over the workers


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
    jam_participants: int

    @classmethod
    def for_company(cls, company: Company) -> Plan:
        n = company.employees
        posts = 10 * company.blogs_count
        return cls(posts=posts, comments=3 * posts, ratings=2 * posts, microposts=max(1, n // 2), bookmarks=n, page_views=n, jam_participants=max(1, n // 4))


@dataclass
class Written:
    """Per kind: items the company holds after the run (written now or by an earlier run)."""

    present: Counter = field(default_factory=Counter)
    views_recorded: int = 0  # page views recorded by this run (facts: only the first run records them)
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
        try:
            result = self._rpc(method, request, metadata)
        except grpc.RpcError as exc:
            if exc.code() not in tolerate:
                raise
            result = None
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
        from .jams.v1 import jams_pb2_grpc
        from .posts.v1 import posts_pb2_grpc, wiki_pb2_grpc
        from .profiles.v1 import profiles_pb2_grpc

        with channel(self.settings, "profiles") as profiles_ch, channel(self.settings, "posts") as posts_ch, channel(self.settings, "jams") as jams_ch:
            self.write_profiles(profiles_pb2_grpc.ProfileServiceStub(profiles_ch))
            posts = posts_pb2_grpc.PostServiceStub(posts_ch)
            self.write_posts(posts)
            self.write_wiki(wiki_pb2_grpc.WikiServiceStub(posts_ch))
            self.write_jam(jams_pb2_grpc.JamServiceStub(jams_ch))
        return self.written

    def write_profiles(self, stub) -> None:
        from .profiles.v1 import profiles_pb2

        people = list(self.company.people())
        depth: list[int] = []
        for person in people:  # a manager is always hired before their reports
            depth.append(0 if not person.manager_id else depth[int(person.manager_id[1:])] + 1)
        self.progress("profiles", 0, len(people))
        with ThreadPoolExecutor(self.concurrency) as pool:
            for level in range(max(depth, default=-1) + 1):  # managers exist before their reports are created
                wave = [p for p, d in zip(people, depth, strict=True) if d == level]

                def request(person) -> profiles_pb2.CreateProfileRequest:
                    profile = profiles_pb2.Profile(
                        employee_id=self.eid(person.employee_id),
                        display_name=person.display_name,
                        sort_name=person.sort_name,
                        department=person.department,
                        country=person.country,
                        manager=f"profiles/{self.eid(person.manager_id)}" if person.manager_id else "",
                        expertise=list(person.expertise),
                        title=person.title,
                    )
                    return profiles_pb2.CreateProfileRequest(profile=profile, request_id=self.rid("profile", person.employee_id))

                def create(people_of_batch) -> None:
                    requests = [request(person) for person in people_of_batch]
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
        from .posts.v1 import posts_pb2 as pb

        internal = pb.Audience.INTERNAL
        blogs = list(self.company.blogs())

        def blog_job(blog):
            return lambda: self._call(
                "blogs",
                stub.CreateBlog,
                pb.CreateBlogRequest(
                    blog=pb.Blog(handle=self.handle(blog.handle), title=blog.title, visibility=internal), request_id=self.rid("blog", blog.handle)
                ),
                self.as_person(blog.owner),
            )

        self._many("blogs", (blog_job(b) for b in blogs), len(blogs))
        self.written.names["blogs"] = [f"blogs/{self.handle(b.handle)}" for b in blogs]

        posts = list(self.company.posts(self.plan.posts))

        def post_job(post):
            def run() -> str:
                me = self.as_person(post.author)
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
                        self.as_person(c.author),
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
                        self.as_person(m.author),
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
                        self.as_person(b.owner),
                    )
                )
                for b in bookmarks.values()
            ),
            len(bookmarks),
        )

    def write_wiki(self, stub) -> None:
        from .posts.v1 import wiki_pb2

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
                    self.as_person(author),
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
            return
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

    def write_jam(self, stub) -> None:
        from google.protobuf.timestamp_pb2 import Timestamp

        from .jams.v1 import jams_pb2

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
