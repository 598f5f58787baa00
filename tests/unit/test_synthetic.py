"""The synthetic company is deterministic and has the shape and skew it claims."""

from __future__ import annotations

from collections import Counter
from itertools import islice

import pytest

from tools.synthetic import COUNTRIES, DEPARTMENTS, Company, top_share


@pytest.fixture(scope="module")
def company() -> Company:
    return Company(employees=20_000, seed=7)


@pytest.fixture(scope="module")
def staff(company: Company):
    return list(company.people())


def test_same_seed_same_items_other_seed_other_items(company: Company, staff) -> None:
    again = Company(employees=20_000, seed=7)
    assert list(again.people()) == staff
    assert list(again.posts(500)) == list(company.posts(500))
    assert list(again.comments(500, 1000)) == list(company.comments(500, 1000))
    assert list(islice(again.jam_votes(50), 300)) == list(islice(company.jam_votes(50), 300))
    assert list(again.media_items()) == list(company.media_items()) and list(again.downloads(500)) == list(company.downloads(500))
    assert list(again.communities()) == list(company.communities()) and list(again.memberships(500)) == list(company.memberships(500))
    other = Company(employees=20_000, seed=8)
    assert [p.display_name for p in islice(other.people(), 200)] != [p.display_name for p in staff[:200]]
    # A prefix is the same people: benchmarks can write the first n of the full company.
    assert list(company.people(limit=300)) == staff[:300]


def test_manager_tree_every_manager_exists_earlier_no_cycles(staff) -> None:
    ids = {p.employee_id: p for p in staff}
    assert len(ids) == len(staff)
    roots = [p for p in staff if not p.manager_id]
    assert [r.index for r in roots] == [0]
    depth_max = 0
    for person in staff:
        if person.manager_id:
            manager = ids[person.manager_id]  # exists
            assert manager.index < person.index  # hired earlier: no cycles possible
        depth, current = 0, person
        while current.manager_id:
            current = ids[current.manager_id]
            depth += 1
            assert depth < 64  # the profiles service's MAX_MANAGER_CHAIN
        depth_max = max(depth_max, depth)
    assert 4 <= depth_max <= 12  # about log_8(20,000) plus variation
    spans = Counter(p.manager_id for p in staff if p.manager_id)
    assert 1 < sum(spans.values()) / len(spans) < 20


def test_departments_countries_and_names(staff) -> None:
    assert len(COUNTRIES) == 170
    countries = Counter(p.country for p in staff)
    assert set(countries) == set(COUNTRIES)  # all 170 at 20,000 people
    assert countries.most_common(1)[0][1] > 10 * min(countries.values())  # skewed, as companies are
    assert set(p.department for p in staff) == set(DEPARTMENTS)
    # Teams mostly share their manager's department.
    by_id = {p.employee_id: p for p in staff}
    same = sum(by_id[p.manager_id].department == p.department for p in staff if p.manager_id)
    assert same / (len(staff) - 1) > 0.8
    assert all(p.display_name and 1 <= len(p.expertise) <= 4 for p in staff)


def test_activity_is_zipf_skewed(company: Company) -> None:
    posts = list(company.posts())
    assert len(posts) == 10 * company.blogs_count
    per_blog = Counter(p.blog for p in posts)
    # The top 1% of blogs (authors) write at least a quarter of all posts; the median blog a few.
    assert top_share(list(per_blog.values()) + [0] * (company.blogs_count - len(per_blog)), 0.01) >= 0.25
    comments = Counter(c.post for c in company.comments(len(posts)))
    assert top_share(list(comments.values()) + [0] * (len(posts) - len(comments)), 0.10) >= 0.5
    bookmarks = Counter(b.url for b in company.bookmarks(20_000))
    assert top_share(list(bookmarks.values()) + [0] * (company.links - len(bookmarks)), 0.01) >= 0.3
    views = Counter(v.page for v in company.page_views(20_000))
    assert top_share(list(views.values()) + [0] * (company.wiki_pages - len(views)), 0.01) >= 0.4
    votes = list(company.jam_votes(2_000))
    per_idea = Counter(v.idea for v in votes)
    assert per_idea[0] > 5 * per_idea[company.jam_ideas // 2]
    # Nobody votes twice for an idea.
    assert len({(v.participant, v.idea) for v in votes}) == len(votes)


def test_timestamps_and_mentions_are_well_formed(company: Company) -> None:
    views = list(company.page_views(1_000))
    assert all(a.at <= b.at for a, b in zip(views, views[1:], strict=False))
    assert (views[-1].at - views[0].at).total_seconds() < 86_400
    for micropost in islice(company.microposts(), 500):
        assert all(f"@{m}" in micropost.text for m in micropost.mentions)
        assert all(f"#{h}" in micropost.text for h in micropost.hashtags)
    ratings = list(company.ratings(100, 500))
    assert {r.value for r in ratings} <= {1, 2, 3, 4, 5} and len({r.value for r in ratings}) >= 4


def test_media_downloads_and_communities_have_their_shape_and_skew(company: Company) -> None:
    items = list(company.media_items())
    assert len(items) == company.media_count == 500 and len({i.key for i in items}) == len(items)
    assert {i.kind for i in items} == {"VIDEO", "AUDIO", "IMAGE", "DOCUMENT", "PRESENTATION"} and all(i.size_bytes > 0 for i in items)
    downloads = list(company.downloads())
    assert len(downloads) == company.employees // 2 and all(a.at <= b.at for a, b in zip(downloads, downloads[1:], strict=False))
    per_item = Counter(d.media for d in downloads)
    assert {d.media for d in downloads} <= {i.key for i in items}
    # The top 1 % of items (5 of 500) take at least a fifth of the downloads.
    assert top_share(list(per_item.values()) + [0] * (len(items) - len(per_item)), 0.01) >= 0.2

    communities = list(company.communities())
    assert len(communities) == company.communities_count == 100
    invite_only = sum(c.access == "INVITE_ONLY" for c in communities)
    assert 5 <= invite_only <= 30  # about 15 %
    memberships = list(company.memberships())
    assert len(memberships) == company.employees // 10
    owners = {c.key: c.owner for c in communities}
    assert len({(m.community, m.member) for m in memberships}) == len(memberships)  # nobody joins twice
    assert all(owners[m.community] != m.member for m in memberships)  # an owner is a member already
    per_community = Counter(m.community for m in memberships)
    assert top_share(list(per_community.values()) + [0] * (len(communities) - len(per_community)), 0.10) >= 0.4
