"""A deterministic synthetic company, written through the platform's own gRPC APIs.

Same seed, same company: every write carries a request id derived from the
seed and the item, so seeding twice changes nothing (the retry returns the
first result)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc

from tools.company import create_profile_request
from watercooler.client import bearer_metadata, channel, service_token
from watercooler.config import Settings
from watercooler.guidelines import AcceptForPeople
from watercooler.profiles.v1 import profiles_pb2, profiles_pb2_grpc

GIVEN = ["Ana", "José", "Zoë", "Émile", "Jürgen", "Søren", "Łukasz", "Ngozi", "Aiko", "Priya", "Mateo", "Fatima", "Olivia", "Chen", "Иван", "Мария", "Αλέξης", "Ελένη", "伟", "芳", "Raj", "Amara", "Kwame", "Lucía"]
FAMILY = ["García", "Müller", "Nakamura", "Okafor", "Smith", "Rossi", "Kowalski", "Dubois", "Andersen", "Patel", "Silva", "Петров", "Иванова", "Παπαδόπουλος", "王", "李", "Nguyen", "Haddad", "Mensah", "O'Brien"]
DEPARTMENTS = ["Research", "Software", "Consulting", "Sales", "Marketing", "Finance", "HR", "Legal", "Design", "Operations"]
COUNTRIES = ["US", "IN", "DE", "FR", "GB", "BR", "JP", "CN", "IE", "ES", "IT", "PL", "NG", "KE", "AU", "CA", "MX", "RU", "GR", "DK"]
EXPERTISE = ["python", "kafka", "elasticsearch", "kubernetes", "design", "blockchain", "ai", "security", "cloud", "mainframe", "databases", "ux", "finance", "legal", "quantum"]


@dataclass(frozen=True)
class Person:
    employee_id: str
    display_name: str
    sort_name: str
    department: str
    country: str
    manager_id: str
    expertise: tuple[str, ...]
    title: str


PROFILES_PER_BATCH = 500


def people(size: int, seed: int = 42) -> Iterator[Person]:
    rng = random.Random(seed)
    for i in range(size):
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        cjk = any("\u4e00" <= ch <= "\u9fff" for ch in given + family)
        display = f"{family}{given}" if cjk else f"{given} {family}"
        sort_name = display if cjk else f"{family}, {given}"
        manager = "" if i == 0 else f"e{rng.randrange(max(1, i // 5 + 1)):06d}"
        if manager == f"e{i:06d}":
            manager = "e000000"
        yield Person(
            employee_id=f"e{i:06d}",
            display_name=display,
            sort_name=sort_name,
            department=DEPARTMENTS[min(len(DEPARTMENTS) - 1, int(rng.paretovariate(1.2)) - 1)],
            country=COUNTRIES[min(len(COUNTRIES) - 1, int(rng.expovariate(0.25)))],
            manager_id=manager,
            expertise=tuple(sorted(set(rng.sample(EXPERTISE, rng.randint(1, 4))))),
            title=rng.choice(["Engineer", "Senior Engineer", "Architect", "Manager", "Consultant", "Researcher", "Designer"]),
        )


def seed_profiles(settings: Settings, size: int, seed: int = 42, progress: Callable[[int], None] | None = None) -> int:
    token = service_token(settings, "watercooler-seed")
    metadata = bearer_metadata(token)
    created = 0
    requests = [create_profile_request(person, f"seed-{seed}-profile-{person.employee_id}") for person in people(size, seed)]
    with channel(settings, "profiles") as ch:
        stub = profiles_pb2_grpc.ProfileServiceStub(ch)
        # In hiring order, managers first: each batch's managers exist or come earlier in it.
        for start in range(0, len(requests), PROFILES_PER_BATCH):
            batch = requests[start:start + PROFILES_PER_BATCH]
            try:
                stub.BatchCreateProfiles(profiles_pb2.BatchCreateProfilesRequest(requests=batch), metadata=metadata, timeout=60)
                created += len(batch)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
                # Seeded before with another seed: the batch saved nothing; one at a time.
                for request in batch:
                    try:
                        stub.CreateProfile(request, metadata=metadata, timeout=30)
                        created += 1
                    except grpc.RpcError as single:
                        if single.code() != grpc.StatusCode.ALREADY_EXISTS:
                            raise
            if progress:
                progress(len(batch))
    return created


COMMUNITIES = [("python-guild", "Python Guild", "OPEN"), ("kafka-users", "Kafka Users", "OPEN"), ("architecture-board", "Architecture Board", "INVITE_ONLY")]
STATUSES = ["Shipping the new search today", "Anyone up for the Kafka meetup?", "Photos from the jam", "Looking for a mentor in UX", "Back from vacation"]


def seed_social(settings: Settings, size: int, seed: int = 42, progress: Callable[[int], None] | None = None) -> int:
    """Communities, follows, connections (everyone with their manager) and a few status
    updates among the seeded people; small and deterministic, idempotent by request id."""
    from watercooler.profiles.v1 import communities_pb2, communities_pb2_grpc, graph_pb2, graph_pb2_grpc

    rng = random.Random(seed + 3)
    metadata = bearer_metadata(service_token(settings, "watercooler-seed"))
    everyone = list(people(size, seed))
    written = 0
    tolerated = (grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION)

    def call(method, request) -> None:
        nonlocal written
        try:
            method(request, metadata=metadata, timeout=30)
            written += 1
        except grpc.RpcError as exc:
            if exc.code() not in tolerated:  # seeded before with another seed
                raise
        if progress:
            progress(1)

    def rid(*parts: object) -> str:
        return "-".join(["seed", str(seed), *map(str, parts)])

    with channel(settings, "profiles") as ch:
        communities = communities_pb2_grpc.CommunityServiceStub(ch)
        graph = graph_pb2_grpc.GraphServiceStub(ch)
        owner = everyone[0].employee_id
        for community_id, title, access in COMMUNITIES:
            community = communities_pb2.Community(community_id=community_id, display_name=title, access=communities_pb2.Community.Access.Value(access), owners=[f"profiles/{owner}"])
            call(communities.CreateCommunity, communities_pb2.CreateCommunityRequest(community=community, request_id=rid("community", community_id)))
        for person in everyone[1:]:
            me = f"profiles/{person.employee_id}"
            for community_id, _, access in COMMUNITIES:
                if rng.random() < 0.3:
                    name = f"communities/{community_id}"
                    if access == "INVITE_ONLY":
                        call(communities.InviteMember, communities_pb2.InviteMemberRequest(name=name, member=me, request_id=rid("invite", community_id, person.employee_id)))
                    call(communities.JoinCommunity, communities_pb2.JoinCommunityRequest(name=name, member=me, request_id=rid("join", community_id, person.employee_id)))
            if person.manager_id:
                manager = f"profiles/{person.manager_id}"
                call(graph.RequestConnection, graph_pb2.RequestConnectionRequest(parent=me, target=manager, request_id=rid("connect", person.employee_id)))
                call(graph.AcceptConnection, graph_pb2.AcceptConnectionRequest(parent=manager, target=me, request_id=rid("accept", person.employee_id)))
            index = int(person.employee_id[1:])
            for target in sorted({f"e{rng.randrange(index):06d}" for _ in range(3)}):
                call(graph.Follow, graph_pb2.FollowRequest(parent=me, target=f"profiles/{target}", request_id=rid("follow", person.employee_id, target)))
            if index % 5 == 0:
                status = graph_pb2.StatusUpdate(text=rng.choice(STATUSES), visibility=graph_pb2.StatusUpdate.INTERNAL)
                call(graph.CreateStatusUpdate, graph_pb2.CreateStatusUpdateRequest(parent=me, status_update=status, request_id=rid("status", person.employee_id)))
    return written


WIKI_PAGES = ["Home", "Onboarding", "Kafka Guide", "Search Engines", "Jam Etiquette", "Blogging Guidelines", "Expense Policy", "Travel", "Security Basics", "Design System"]
MEDIA = [("Innovation Jam keynote", "VIDEO", "video/mp4"), ("Town hall recording", "AUDIO", "audio/mpeg"), ("Team photo", "IMAGE", "image/jpeg"), ("Architecture overview", "PRESENTATION", "application/pdf"), ("Style guide", "DOCUMENT", "application/pdf")]


def seed_library(settings: Settings, size: int, seed: int = 42, progress: Callable[[int], None] | None = None) -> int:
    """A wiki space of linked pages (with a few edits), media items by a few people, and some
    views and downloads.  Idempotent: writes carry request ids; views and downloads are
    facts without ids, so they are recorded only by the run that created the space."""
    from watercooler.auth import issue_token
    from watercooler.posts.v1 import media_pb2, media_pb2_grpc, wiki_pb2, wiki_pb2_grpc

    rng = random.Random(seed + 5)
    everyone = [p.employee_id for p in people(min(size, 50), seed)]
    service = bearer_metadata(service_token(settings, "watercooler-seed"))

    guidelines = AcceptForPeople(settings, service)

    def as_person(employee_id: str) -> tuple[tuple[str, str], ...]:
        guidelines.accept(employee_id)  # seeded people have accepted the guidelines
        return bearer_metadata(issue_token(settings, employee_id, "employee"))

    written = 0
    with channel(settings, "posts") as ch:
        wiki, media = wiki_pb2_grpc.WikiServiceStub(ch), media_pb2_grpc.MediaServiceStub(ch)
        owner = everyone[0]
        first_run = True
        try:
            wiki.CreateSpace(wiki_pb2.CreateSpaceRequest(space=wiki_pb2.Space(space_id="handbook", display_name="Employee Handbook", owner=f"profiles/{owner}", visibility=wiki_pb2.INTERNAL)), metadata=service, timeout=30)
            written += 1
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
            first_run = False
        pages = []
        for i, title in enumerate(WIKI_PAGES):
            author = everyone[i % len(everyone)]
            links = " ".join(f"[[{t}]]" for t in rng.sample(WIKI_PAGES, 2) if t != title)
            page = wiki.CreatePage(
                wiki_pb2.CreatePageRequest(page=wiki_pb2.Page(space="spaces/handbook", title=title, body=f"{title}\n\nSee also {links}.\n"), request_id=f"seed-{seed}-page-{i}"),
                metadata=as_person(author), timeout=30,
            )
            if page.revision == 1 and i % 3 == 0:
                page = wiki.EditPage(wiki_pb2.EditPageRequest(name=page.name, base_revision=1, body=page.body + "\nUpdated by a colleague.\n", summary="more detail", request_id=f"seed-{seed}-edit-{i}"), metadata=as_person(everyone[(i + 1) % len(everyone)]), timeout=30)
            pages.append(page.name)
            written += 1
            if progress:
                progress(1)
        items = []
        for i, (title, kind, content_type) in enumerate(MEDIA):
            item = media.RegisterMediaItem(
                media_pb2.RegisterMediaItemRequest(
                    media_item=media_pb2.MediaItem(title=title, kind=media_pb2.MediaItem.Kind.Value(kind), size_bytes=rng.randint(10_000, 900_000_000), content_type=content_type, tags=rng.sample(EXPERTISE, 2), visibility=wiki_pb2.INTERNAL, storage_uri=f"s3://watercooler-media/seed/{i}"),
                    request_id=f"seed-{seed}-media-{i}",
                ),
                metadata=as_person(everyone[i % len(everyone)]), timeout=30,
            )
            items.append(item.name)
            written += 1
        if first_run:
            views = [wiki_pb2.PageView(page=pages[min(len(pages) - 1, int(rng.paretovariate(1.2)) - 1)], viewer=rng.choice(everyone), client="seed") for _ in range(500)]
            written += wiki.BatchRecordPageViews(wiki_pb2.BatchRecordPageViewsRequest(views=views), metadata=service, timeout=60).recorded
            downloads = [media_pb2.Download(media_item=rng.choice(items), viewer=rng.choice(everyone), client="seed") for _ in range(100)]
            written += media.BatchRecordDownloads(media_pb2.BatchRecordDownloadsRequest(downloads=downloads), metadata=service, timeout=60).recorded
    return written


# Every domain adds its seeder here: (name, function(settings, size, seed, progress) -> int).
# `watercooler seed` and `make run` run them in this order; each must be idempotent
# (request ids derived from the seed) and write only through the public gRPC APIs.
def seed_posts(settings: Settings, size: int, seed: int = 42, progress: Callable[[int], None] | None = None) -> int:
    """Blogs, posts, microposts, comments, ratings and bookmarks by the first few people (small: make run)."""
    from watercooler.auth import issue_token
    from watercooler.posts.v1 import posts_pb2 as pb
    from watercooler.posts.v1 import posts_pb2_grpc

    rng = random.Random(seed + 4)
    authors = [p.employee_id for p in people(min(size, 12), seed)]
    if not authors:
        return 0
    written = 0
    topics = ["kafka", "cloud", "design", "ai", "security", "mainframe"]
    guidelines = AcceptForPeople(settings, bearer_metadata(service_token(settings, "watercooler-seed")))
    with channel(settings, "posts") as ch:
        stub = posts_pb2_grpc.PostServiceStub(ch)

        def call(method: Callable[..., object], request: object, subject: str) -> object | None:
            nonlocal written
            try:
                guidelines.accept(subject)  # seeded people have accepted the guidelines
                result = method(request, metadata=bearer_metadata(issue_token(settings, subject, "employee")), timeout=30)
                written += 1
                return result
            except grpc.RpcError as exc:
                if exc.code() not in (grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION):
                    raise
                return None

        published: list[str] = []
        for author in authors:
            rid = f"seed-{seed}-{author}"
            call(stub.CreateBlog, pb.CreateBlogRequest(blog=pb.Blog(handle=f"blog-{author}", title=f"Notes of {author}", visibility=pb.Audience.INTERNAL), request_id=f"{rid}-blog"), author)
            for n in range(2):
                tags = rng.sample(topics, 2)
                post = call(
                    stub.CreatePost,
                    pb.CreatePostRequest(parent=f"blogs/blog-{author}", post=pb.Post(title=f"On {tags[0]} #{n}", body=f"Thoughts about {tags[0]} and {tags[1]}.", tags=tags, visibility=pb.Audience.INTERNAL), request_id=f"{rid}-post-{n}"),
                    author,
                )
                if post is not None:
                    done = call(stub.PublishPost, pb.PublishPostRequest(name=post.name, request_id=f"{rid}-publish-{n}"), author)
                    published.append((done or post).name)
            call(stub.CreateMicropost, pb.CreateMicropostRequest(micropost=pb.Micropost(text=f"Hello from {author} #{rng.choice(topics)}", visibility=pb.Audience.INTERNAL), request_id=f"{rid}-micro"), author)
            call(stub.CreateBookmark, pb.CreateBookmarkRequest(bookmark=pb.Bookmark(url=f"https://www.example.com/{rng.choice(topics)}", title="A good read", tags=[rng.choice(topics)], visibility=pb.Audience.INTERNAL), request_id=f"{rid}-bookmark"), author)
            if progress:
                progress(1)
        for i, post_name in enumerate(published):
            for reader in rng.sample(authors, min(3, len(authors))):
                call(stub.RatePost, pb.RatePostRequest(post=post_name, value=rng.randint(1, 5), request_id=f"seed-{seed}-rate-{i}-{reader}"), reader)
                call(stub.CreateComment, pb.CreateCommentRequest(comment=pb.Comment(target=post_name, body="Interesting, thanks!"), request_id=f"seed-{seed}-comment-{i}-{reader}"), reader)
    return written



JAM_IDEAS = ["Smarter planet: instrumented water grids", "3-D internet for meetings", "Branchless banking", "Digital health records",
             "Intelligent utility networks", "Real-time translation for support", "Green data centres", "Simplified business engines",
             "Remote health monitoring", "Rail and traffic prediction", "Integrated mass transit information", "Big green innovations"]
JAM_POSTS = [("workplace", "Too many approvals", "Honestly the approval process is terrible and slow, nobody listens to us."),
             ("workplace", "Mentoring works", "My mentor was great, this community is wonderful and helpful."),
             ("research", "Which projects matter?", "I love the water grid idea, it could help millions of people.")]


def seed_jam(settings: Settings, size: int, seed: int = 42, progress: Callable[[int], None] | None = None) -> int:
    """A small demo jam: two forums, a dozen seeded research projects, opened by its host,
    a few threads by seeded employees; voting opens two hours later on schedule.  Skipped if
    the demo jam already exists."""
    import datetime as dt

    from google.protobuf.timestamp_pb2 import Timestamp

    from watercooler.auth import issue_token
    from watercooler.jams.v1 import jams_pb2, jams_pb2_grpc

    jam = jams_pb2.Jam
    metadata = bearer_metadata(service_token(settings, "watercooler-seed"))
    guidelines = AcceptForPeople(settings, metadata)
    name = f"jams/innovation-jam-{seed}"
    written = 0

    def at(minutes: int) -> Timestamp:
        stamp = Timestamp()
        stamp.FromDatetime((dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).replace(tzinfo=None))
        return stamp

    with channel(settings, "jams") as ch:
        stub = jams_pb2_grpc.JamServiceStub(ch)
        try:
            stub.GetJam(jams_pb2.GetJamRequest(name=name), metadata=metadata, timeout=30)
            return 0
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        stub.CreateJam(jams_pb2.CreateJamRequest(jam_id=name.split("/")[1], jam=jam(
            title="Innovation Jam", description="Discuss the research projects and vote the top 10.",
            open_time=at(60), voting_time=at(120), close_time=at(180)), request_id=f"seed-{seed}-jam"), metadata=metadata, timeout=30)
        for forum_id, title in (("research", "Research projects"), ("workplace", "Our workplace")):
            stub.CreateForum(jams_pb2.CreateForumRequest(parent=name, forum_id=forum_id, forum=jams_pb2.Forum(title=title)), metadata=metadata, timeout=30)
        for n, title in enumerate(JAM_IDEAS):
            stub.CreateIdea(jams_pb2.CreateIdeaRequest(parent=name, idea=jams_pb2.Idea(title=title, forum=f"{name}/forums/research"), request_id=f"seed-{seed}-idea-{n}"), metadata=metadata, timeout=30)
            written += 1
            if progress:
                progress(1)
        stub.AdvanceJamPhase(jams_pb2.AdvanceJamPhaseRequest(name=name, phase=jams_pb2.SCHEDULED), metadata=metadata, timeout=30)
        for n, (forum, title, body) in enumerate(JAM_POSTS):
            guidelines.accept(f"e{n % max(1, size):06d}")  # seeded people have accepted the guidelines
            author = bearer_metadata(issue_token(settings, f"e{n % max(1, size):06d}", "employee"))
            stub.CreateThread(jams_pb2.CreateThreadRequest(parent=name, thread=jams_pb2.Thread(forum=f"{name}/forums/{forum}", title=title, body=body)), metadata=author, timeout=30)
            written += 1
    return written

SEEDERS: list[tuple[str, Callable[..., int]]] = [("profiles", seed_profiles), ("social graph", seed_social), ("posts", seed_posts), ("jam", seed_jam), ("wiki and media", seed_library)]
