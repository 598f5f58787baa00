"""The forms of the visibility rule (watercooler.visibility) agree: for generated
principals and memberships, the check for a loaded item keeps exactly the documents that
the Elasticsearch filter keeps, run by the platform's Elasticsearch (in an index of its
own, deleted after) over every combination of the fields that decide."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watercooler import visibility as rule
from watercooler.auth import Principal
from watercooler.config import Settings

pytestmark = pytest.mark.integration

SUBJECTS = ("p0", "p1", "p2")
COMMUNITIES = ("c0", "c1")
JAMS = ("j0", "j1", "j2")
JAM_VISIBILITY = {"j0": rule.PUBLIC, "j1": rule.INTERNAL, "j2": rule.INTERNAL}

MAPPING = {
    "properties": {
        name: {"type": "keyword"}
        for name in ("group", "visibility", "community", "author_id", "state", "owner", "members", "jam_id", "classification", rule.AUDIENCE_FIELD)
    }
    | {"hidden": {"type": "boolean"}, "deleted": {"type": "boolean"}}
}


def content_items() -> list[rule.Content]:
    return [
        rule.Content(visibility, community, author, published, hidden, deleted, classification)
        for visibility, community, author, published, hidden, deleted, classification in itertools.product(
            rule.CONTENT_VISIBILITIES, ("", *COMMUNITIES), SUBJECTS, (True, False), (True, False), (True, False), rule.CLASSIFICATIONS
        )
        if (visibility == rule.COMMUNITY) == bool(community) and not rule.classification_conflict(visibility, classification)
    ]


def library_items() -> list[rule.Library]:
    owners = [f"profiles/{s}" for s in SUBJECTS] + [f"communities/{c}" for c in COMMUNITIES]
    member_lists = [(), ("p0",), ("p1", "p2")]
    return [rule.Library(*values) for values in itertools.product(rule.LIBRARY_VISIBILITIES, owners, member_lists, (True, False))]


def jam_items() -> list[tuple[str, str, bool]]:
    return [(jam, JAM_VISIBILITY[jam], deleted) for jam, deleted in itertools.product(JAMS, (True, False))]


@pytest.fixture(scope="module")
def index(infra: Settings) -> Iterator[tuple[Elasticsearch, str]]:
    es = Elasticsearch(infra.es_url)
    name = f"{infra.namespace or 'test'}-visibility-rule-{uuid.uuid4().hex[:12]}"
    es.indices.create(index=name, mappings=MAPPING)
    try:
        operations: list[dict] = []
        for i, c in enumerate(content_items()):
            operations += [{"index": {"_id": f"content-{i}"}}, {
                "group": "content-", "visibility": c.visibility, "community": c.community, "author_id": c.author_id,
                "state": rule.PUBLISHED if c.published else "DRAFT", "hidden": c.hidden, "deleted": c.deleted,
                # Who may see it, as the posts projection stores it (the rule's third form).
                rule.AUDIENCE_FIELD: rule.content_audience(c),
                # INTERNAL as a document written before labels existed has it: no field at all.
                **({"classification": c.classification} if c.classification != rule.INTERNAL else {}),
            }]
        for i, item in enumerate(library_items()):
            operations += [{"index": {"_id": f"library-{i}"}}, {"group": "library-", "visibility": item.visibility, "owner": item.owner, "members": list(item.members), "deleted": item.deleted}]
        for i, (jam, visibility, deleted) in enumerate(jam_items()):
            operations += [{"index": {"_id": f"jam-{i}"}}, {"group": "jam-", "jam_id": jam, "visibility": visibility, "deleted": deleted}]
        result = es.bulk(index=name, operations=operations, refresh=True)
        assert not result["errors"]
        yield es, name
    finally:
        es.indices.delete(index=name, ignore_unavailable=True)
        es.close()


def matching(es: Elasticsearch, index: str, prefix: str, clauses: list[dict]) -> set[str]:
    query = {"bool": {"filter": [{"term": {"group": prefix}}, *clauses]}}
    return {hit["_id"] for hit in es.search(index=index, query=query, size=10_000, source=False)["hits"]["hits"]}


principals = st.builds(
    Principal,
    subject=st.sampled_from(SUBJECTS),
    kind=st.sampled_from(("employee", "alumni", "guest", "service")),
    jams=st.lists(st.sampled_from(JAMS), unique=True, max_size=2).map(tuple),
)
memberships = st.lists(st.sampled_from(COMMUNITIES), unique=True).map(tuple)
checks = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@checks
@given(principal=principals, communities=memberships)
def test_content_check_and_filter_agree(index, principal, communities):
    es, name = index
    is_member = lambda community, subject: community in communities and subject == principal.subject  # noqa: E731
    for drafts in (True, False):  # posts and microposts have drafts; comments and bookmarks do not
        checked = {
            f"content-{i}" for i, c in enumerate(content_items())
            if rule.may_see_content(principal, c if drafts else dataclasses.replace(c, published=True), is_member, listed=True)
        }
        assert matching(es, name, "content-", rule.content_clauses(principal, communities, drafts=drafts)) == checked
        if drafts:  # the audience tokens a post or micropost carries keep the same documents
            assert matching(es, name, "content-", [rule.audience_clause(principal, communities)]) == checked
            # however many terms queries the caller's communities take
            assert matching(es, name, "content-", [rule.audience_clause(principal, communities, max_terms=1)]) == checked
    # What a list shows, a read by name shows too.
    for c in content_items():
        if rule.may_see_content(principal, c, is_member, listed=True):
            assert rule.may_see_content(principal, c, is_member)


@checks
@given(principal=principals, communities=memberships)
def test_library_check_and_filter_agree(index, principal, communities):
    es, name = index
    is_member = lambda community, subject: community in communities and subject == principal.subject  # noqa: E731
    checked = {f"library-{i}" for i, item in enumerate(library_items()) if rule.may_see_library(principal, item, is_member)}
    assert matching(es, name, "library-", rule.library_clauses(principal, communities)) == checked


@checks
@given(principal=principals)
def test_jam_check_and_filter_agree(index, principal):
    es, name = index
    public = sorted({jam for jam, visibility, _ in jam_items() if visibility == rule.PUBLIC})
    checked = {f"jam-{i}" for i, (jam, visibility, deleted) in enumerate(jam_items()) if not deleted and rule.may_see_jam(principal, jam, visibility)}
    assert matching(es, name, "jam-", rule.jam_clauses(principal, public)) == checked
