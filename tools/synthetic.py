"""A deterministic synthetic company at benchmark scale.

``Company(employees=400_000, seed=42)`` describes a company like the one in the brief:
people across departments and 170 countries under one manager tree, blogs with posts,
comments and ratings, microposts with mentions and hashtags, bookmarks of popular links,
a day of wiki page views, media items with a day of downloads, communities with their
members, and a jam's votes.  Activity is Zipf-skewed: a few authors, posts, links, pages,
media items, communities and ideas draw most of it, as on every real social platform.

Everything is a lazy iterator driven by ``random.Random`` seeded from ``(seed, stream)``,
so the same seed gives the same items in the same order, each stream independent of the
others (asking for comments does not change the posts), and nothing is held in memory
but small per-employee arrays.  The benchmark writes profiles through
``ProfileService.CreateProfile`` and ``BatchCreateProfiles``; ``company.py`` writes the whole
company through the APIs; ``seed.py`` keeps the small demo company of `make run`.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

# 170 ISO 3166-1 alpha-2 codes: the countries the brief's company works in.
COUNTRIES = tuple(
    ["US", "IN", "DE", "GB", "FR", "JP", "CN", "BR", "CA", "IT", "ES", "AU", "NL", "MX", "KR", "RU", "CH", "SE", "PL", "BE", "IE", "AT", "DK", "NO", "FI", "PT", "GR", "CZ", "HU", "RO", "IL", "TR", "ZA", "NG", "KE", "EG", "MA", "AR", "CL", "CO", "PE", "VE", "SG", "MY", "TH", "ID", "PH", "VN", "NZ", "SA", "AE", "QA", "KW", "BH", "OM", "PK", "BD", "LK", "NP", "UA", "BY", "LT", "LV", "EE", "SK", "SI", "HR", "RS", "BA", "ME", "MK", "AL", "BG", "MD", "GE", "AM", "AZ", "KZ", "UZ", "KG", "TJ", "TM", "MN", "HK", "TW", "MO", "KH", "LA", "MM", "BN", "TL", "PG", "FJ", "SB", "VU", "WS", "TO", "CR", "PA", "GT", "HN", "SV", "NI", "BZ", "CU", "DO", "HT", "JM", "TT", "BB", "BS", "GY", "SR", "UY", "PY", "BO", "EC", "GH", "CI", "SN", "ML", "BF", "NE", "TD", "CM", "GA", "CG", "CD", "AO", "ZM", "ZW", "MZ", "MW", "TZ", "UG", "RW", "BI", "ET", "ER", "DJ", "SO", "SD", "SS", "LY", "TN", "DZ", "MR", "GM", "GW", "GN", "SL", "LR", "TG", "BJ", "MG", "MU", "NA", "BW", "LS", "SZ", "IS", "LU", "MT", "CY", "JO", "LB", "IQ", "IR", "AF", "YE"]
)
assert len(COUNTRIES) == 170 and len(set(COUNTRIES)) == 170

DEPARTMENTS = (
    "Research", "Software", "Consulting", "Sales", "Marketing", "Finance", "Human Resources", "Legal",
    "Design", "Operations", "Supply Chain", "Manufacturing", "Services", "Security", "Cloud", "Data",
    "Mainframe", "Storage", "Networking", "Procurement", "Communications", "Strategy", "Quality",
    "Customer Support", "Education", "Health", "Public Sector", "Financial Services", "Retail", "Energy",
)
GIVEN = ("Ana", "José", "Zoë", "Émile", "Jürgen", "Søren", "Łukasz", "Ngozi", "Aiko", "Priya", "Mateo", "Fatima", "Olivia", "Chen",
         "Иван", "Мария", "Αλέξης", "Ελένη", "伟", "芳", "Raj", "Amara", "Kwame", "Lucía", "Noah", "Emma", "Yuki", "Omar", "Sofia", "Lars")
FAMILY = ("García", "Müller", "Nakamura", "Okafor", "Smith", "Rossi", "Kowalski", "Dubois", "Andersen", "Patel", "Silva", "Петров",
          "Иванова", "Παπαδόπουλος", "王", "李", "Nguyen", "Haddad", "Mensah", "O'Brien", "Johansson", "Kim", "Cohen", "Sato", "Novak")
TITLES = ("Engineer", "Senior Engineer", "Architect", "Consultant", "Researcher", "Designer", "Analyst", "Specialist", "Manager")
TOPICS = ("python", "kafka", "elasticsearch", "kubernetes", "design", "blockchain", "ai", "security", "cloud", "mainframe",
          "databases", "ux", "finance", "legal", "quantum", "linux", "java", "devops", "privacy", "sustainability")

# Skew exponents: weight of the k-th most popular item is 1 / k**s.
AUTHOR_SKEW = 1.1  # posts per blog
POST_SKEW = 1.0  # comments and ratings per post
LINK_SKEW = 1.1  # bookmarks per URL
PAGE_SKEW = 1.2  # views per wiki page
IDEA_SKEW = 0.9  # jam votes per idea
MEDIA_SKEW = 1.1  # downloads per media item
COMMUNITY_SKEW = 1.0  # members per community
COUNTRY_SKEW = 1.1  # employees per country


@dataclass(frozen=True)
class Person:
    index: int
    employee_id: str
    display_name: str
    sort_name: str
    department: str
    country: str
    manager_id: str  # "" for the CEO
    expertise: tuple[str, ...]
    title: str


@dataclass(frozen=True)
class Blog:
    handle: str
    owner: str  # employee id
    title: str


@dataclass(frozen=True)
class Post:
    key: str  # stable, for request ids
    blog: str  # handle
    author: str
    title: str
    body: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Comment:
    post: str  # Post.key
    author: str
    body: str


@dataclass(frozen=True)
class Rating:
    post: str
    rater: str
    value: int  # 1..5


@dataclass(frozen=True)
class Micropost:
    author: str
    text: str
    mentions: tuple[str, ...]
    hashtags: tuple[str, ...]


@dataclass(frozen=True)
class Bookmark:
    owner: str
    url: str
    title: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class PageView:
    page: str
    viewer: str
    at: dt.datetime


@dataclass(frozen=True)
class MediaItem:
    key: str  # stable, for request ids: media-{rank}
    owner: str
    title: str
    kind: str  # VIDEO, AUDIO, IMAGE, DOCUMENT, PRESENTATION
    content_type: str
    size_bytes: int
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Download:
    media: str  # MediaItem.key
    downloader: str
    at: dt.datetime


@dataclass(frozen=True)
class Community:
    key: str  # community-{rank}
    display_name: str
    access: str  # OPEN or INVITE_ONLY
    owner: str


@dataclass(frozen=True)
class Membership:
    community: str  # Community.key
    member: str


# kind -> (content type, typical size in bytes)
MEDIA_KINDS = {"VIDEO": ("video/mp4", 200_000_000), "AUDIO": ("audio/mpeg", 30_000_000), "IMAGE": ("image/png", 2_000_000),
               "DOCUMENT": ("application/pdf", 1_000_000), "PRESENTATION": ("application/vnd.ms-powerpoint", 8_000_000)}
INVITE_ONLY_SHARE = 0.15  # of communities


@dataclass(frozen=True)
class JamVote:
    participant: str
    idea: int


def employee_id(index: int) -> str:
    return f"e{index:07d}"


def zipf_cum_weights(n: int, s: float) -> list[float]:
    """Cumulative weights of ranks 1..n with weight 1/k**s (for bisect / random.choices)."""
    return list(itertools.accumulate(1.0 / (k**s) for k in range(1, n + 1)))


def pick(rng: random.Random, cum_weights: Sequence[float]) -> int:
    """An index drawn with the given cumulative weights (O(log n))."""
    return bisect.bisect_right(cum_weights, rng.random() * cum_weights[-1])


class Company:
    """The synthetic company; every method is deterministic in ``(employees, seed)``."""

    def __init__(self, employees: int = 400_000, seed: int = 42, fanout: int = 8):
        if employees < 1:
            raise ValueError("employees must be at least 1")
        self.employees = employees
        self.seed = seed
        self.fanout = max(2, fanout)
        # Scaled from the brief: 17,000 blogs for 400,000 people.
        self.blogs_count = max(1, round(17_000 * employees / 400_000))
        self.wiki_pages = max(10, employees // 40)
        self.links = max(20, employees // 10)
        self.jam_ideas = max(10, min(2_000, employees // 200))
        self.media_count = max(10, employees // 40)
        self.communities_count = max(3, employees // 200)

    def _rng(self, stream: str) -> random.Random:
        return random.Random(f"{self.seed}/{self.employees}/{stream}")

    # --- people and the manager tree --------------------------------------------------------
    def manager_index(self, index: int, rng: random.Random) -> int:
        """A manager strictly earlier in hiring order: the tree has no cycles, every manager
        exists before their reports, and the depth grows like log_fanout(N)."""
        if index == 0:
            return -1
        base = (index - 1) // self.fanout
        return max(0, base - rng.randrange(self.fanout))  # spans of control vary around fanout

    @cached_property
    def _country_weights(self) -> list[float]:
        return zipf_cum_weights(len(COUNTRIES), COUNTRY_SKEW)

    def people(self, limit: int | None = None) -> Iterator[Person]:
        """Employees in hiring order (a manager always before their reports)."""
        rng = self._rng("people")
        count = self.employees if limit is None else min(limit, self.employees)
        departments = array("B", bytes(count))
        countries = array("B", bytes(count))
        for i in range(count):
            manager = self.manager_index(i, rng)
            given, family = rng.choice(GIVEN), rng.choice(FAMILY)
            cjk = any("\u4e00" <= ch <= "\u9fff" for ch in given + family)
            display = f"{family}{given}" if cjk else f"{given} {family}"
            if manager < 0 or manager == 0:
                department = rng.randrange(len(DEPARTMENTS)) if manager == 0 else 0
                country = pick(rng, self._country_weights) if manager == 0 else 0
            else:
                # Most people work in their manager's department and country.
                department = departments[manager] if rng.random() < 0.9 else rng.randrange(len(DEPARTMENTS))
                country = countries[manager] if rng.random() < 0.7 else pick(rng, self._country_weights)
            departments[i], countries[i] = department, country
            yield Person(
                index=i,
                employee_id=employee_id(i),
                display_name=display,
                sort_name=display if cjk else f"{family}, {given}",
                department=DEPARTMENTS[department],
                country=COUNTRIES[country],
                manager_id=employee_id(manager) if manager >= 0 else "",
                expertise=tuple(sorted(rng.sample(TOPICS, rng.randint(1, 4)))),
                title=rng.choice(TITLES) if i >= self.employees // self.fanout else "Manager",
            )

    # --- blogs, posts, comments, ratings ----------------------------------------------------
    def blogs(self) -> Iterator[Blog]:
        rng = self._rng("blogs")
        owners = rng.sample(range(self.employees), min(self.blogs_count, self.employees))
        for rank, owner in enumerate(owners):
            yield Blog(handle=f"blog-{rank:05d}", owner=employee_id(owner), title=f"Notes from {rng.choice(TOPICS)} #{rank}")

    def posts(self, count: int | None = None) -> Iterator[Post]:
        """``count`` posts (default 10 per blog) over the blogs, Zipf by blog rank: the first
        blogs (the prolific authors) write most of them."""
        rng = self._rng("posts")
        blogs = list(self.blogs())
        weights = zipf_cum_weights(len(blogs), AUTHOR_SKEW)
        for n in range(count if count is not None else 10 * len(blogs)):
            blog = blogs[pick(rng, weights)]
            tags = tuple(sorted(rng.sample(TOPICS, 2)))
            yield Post(key=f"p{n:08d}", blog=blog.handle, author=blog.owner, title=f"On {tags[0]} and {tags[1]}",
                       body=f"Thoughts about {tags[0]}, {tags[1]} and what we learned. " * rng.randint(1, 5), tags=tags)

    def comments(self, posts: int, count: int | None = None) -> Iterator[Comment]:
        """Comments over posts ``p0..p{posts-1}``, Zipf by post rank; commenters uniform."""
        rng = self._rng("comments")
        weights = zipf_cum_weights(posts, POST_SKEW)
        for _ in range(count if count is not None else 3 * posts):
            yield Comment(post=f"p{pick(rng, weights):08d}", author=employee_id(rng.randrange(self.employees)),
                          body=rng.choice(("Interesting, thanks!", "We tried this in our team.", "Great write-up.", "I disagree, see the wiki.")))

    def ratings(self, posts: int, count: int | None = None) -> Iterator[Rating]:
        rng = self._rng("ratings")
        weights = zipf_cum_weights(posts, POST_SKEW)
        for _ in range(count if count is not None else 2 * posts):
            yield Rating(post=f"p{pick(rng, weights):08d}", rater=employee_id(rng.randrange(self.employees)),
                         value=min(5, max(1, round(rng.gauss(3.8, 1.0)))))

    # --- microblog, bookmarks, wiki views, jam votes -------------------------------------------
    def microposts(self, count: int | None = None) -> Iterator[Micropost]:
        rng = self._rng("microposts")
        authors = zipf_cum_weights(self.employees, AUTHOR_SKEW)
        for _ in range(count if count is not None else self.employees // 2):
            author = employee_id(pick(rng, authors))
            mentions = tuple(employee_id(rng.randrange(self.employees)) for _ in range(rng.choice((0, 0, 1, 2))))
            hashtags = tuple(rng.sample(TOPICS, rng.choice((0, 1, 1, 2))))
            text = " ".join(["Working on", rng.choice(TOPICS), *(f"@{m}" for m in mentions), *(f"#{h}" for h in hashtags)])
            yield Micropost(author=author, text=text, mentions=mentions, hashtags=hashtags)

    def link_url(self, rank: int) -> str:
        return f"https://www.example.com/{TOPICS[rank % len(TOPICS)]}/{rank}"

    def bookmarks(self, count: int | None = None) -> Iterator[Bookmark]:
        """Bookmarks of a pool of links, Zipf by link rank: a few links everyone bookmarks."""
        rng = self._rng("bookmarks")
        weights = zipf_cum_weights(self.links, LINK_SKEW)
        for _ in range(count if count is not None else self.employees):
            rank = pick(rng, weights)
            yield Bookmark(owner=employee_id(rng.randrange(self.employees)), url=self.link_url(rank), title=f"Link {rank}",
                           tags=(TOPICS[rank % len(TOPICS)],))

    def page_views(self, count: int | None = None, day: dt.date = dt.date(2026, 1, 15)) -> Iterator[PageView]:
        """One day of wiki page views, Zipf by page rank, in time order."""
        rng = self._rng("views")
        weights = zipf_cum_weights(self.wiki_pages, PAGE_SKEW)
        total = count if count is not None else self.employees
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        for n in range(total):
            yield PageView(page=f"page-{pick(rng, weights):06d}", viewer=employee_id(rng.randrange(self.employees)),
                           at=start + dt.timedelta(seconds=86_400 * n / total))

    def media_items(self) -> Iterator[MediaItem]:
        """The media library: ``media_count`` items, owners uniform, sizes around their kind's."""
        rng = self._rng("media")
        kinds = tuple(MEDIA_KINDS)
        for rank in range(self.media_count):
            kind = rng.choice(kinds)
            content_type, typical = MEDIA_KINDS[kind]
            topic = rng.choice(TOPICS)
            yield MediaItem(key=f"media-{rank:06d}", owner=employee_id(rng.randrange(self.employees)), title=f"{topic.title()} {kind.lower()} {rank}",
                            kind=kind, content_type=content_type, size_bytes=max(1, int(typical * rng.lognormvariate(0, 0.5))), tags=(topic,))

    def downloads(self, count: int | None = None, day: dt.date = dt.date(2026, 1, 15)) -> Iterator[Download]:
        """One day of media downloads (default one per two employees), Zipf by item rank, in time order."""
        rng = self._rng("downloads")
        weights = zipf_cum_weights(self.media_count, MEDIA_SKEW)
        total = count if count is not None else max(1, self.employees // 2)
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        for n in range(total):
            yield Download(media=f"media-{pick(rng, weights):06d}", downloader=employee_id(rng.randrange(self.employees)),
                           at=start + dt.timedelta(seconds=86_400 * n / total))

    def communities(self) -> Iterator[Community]:
        rng = self._rng("communities")
        for rank in range(self.communities_count):
            topic = rng.choice(TOPICS)
            yield Community(key=f"community-{rank:05d}", display_name=f"{topic.title()} {rng.choice(('Guild', 'Circle', 'Network', 'Club'))} {rank}",
                            access="INVITE_ONLY" if rng.random() < INVITE_ONLY_SHARE else "OPEN", owner=employee_id(rng.randrange(self.employees)))

    def memberships(self, count: int | None = None) -> Iterator[Membership]:
        """Members joining communities (default one per ten employees), Zipf by community rank:
        a few communities hold most members. A person joins a community at most once, and its
        owner is a member from its creation, so neither is repeated here."""
        rng = self._rng("memberships")
        owners = {c.key: c.owner for c in self.communities()}
        weights = zipf_cum_weights(self.communities_count, COMMUNITY_SKEW)
        seen: set[tuple[int, int]] = set()
        wanted = count if count is not None else max(1, self.employees // 10)
        made = 0
        for _ in range(wanted * 4):  # a bound: small companies run out of distinct pairs
            if made == wanted:
                break
            community, member = pick(rng, weights), rng.randrange(self.employees)
            key = f"community-{community:05d}"
            if (community, member) in seen or owners[key] == employee_id(member):
                continue
            seen.add((community, member))
            made += 1
            yield Membership(community=key, member=employee_id(member))

    def jam_votes(self, participants: int | None = None, votes_each: int = 10) -> Iterator[JamVote]:
        """Each participant votes for up to ``votes_each`` distinct ideas, Zipf by idea rank
        (``participants`` default a quarter of the company)."""
        rng = self._rng("jam")
        weights = zipf_cum_weights(self.jam_ideas, IDEA_SKEW)
        people = participants if participants is not None else max(1, self.employees // 4)
        for p in range(people):
            chosen: set[int] = set()
            for _ in range(votes_each * 2):
                if len(chosen) == min(votes_each, self.jam_ideas):
                    break
                chosen.add(pick(rng, weights))
            for idea in sorted(chosen):
                yield JamVote(participant=employee_id(p % self.employees), idea=idea)


def top_share(counts: Sequence[int], fraction: float) -> float:
    """The share of all activity held by the top ``fraction`` of items (by count)."""
    ordered = sorted(counts, reverse=True)
    top = max(1, round(len(ordered) * fraction))
    total = sum(ordered)
    return sum(ordered[:top]) / total if total else 0.0
