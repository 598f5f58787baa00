"""Search's visibility clauses: posts and microposts share one clause when both are asked for
(each matching post was checked twice before), and keep their own kind terms otherwise."""

from __future__ import annotations

import json

from services.search.unified import KINDS, visible_clauses
from services.search.visibility import Scope, kind_filter
from watercooler.auth import Principal
from watercooler.config import Settings

SETTINGS = Settings()
EMPLOYEE = Scope(Principal("e1", "employee"), ["c1"], ["s1"], None)


def _text(clauses) -> str:
    return json.dumps(clauses, sort_keys=True)


def test_posts_and_microposts_asked_together_are_one_clause_without_kind_terms():
    clauses = visible_clauses(SETTINGS, EMPLOYEE, list(KINDS))
    assert len(clauses) == len(KINDS) - 1
    posts = [c for c in clauses if c["bool"]["filter"][0] == {"prefix": {"_index": SETTINGS.index_alias("posts") + "-v"}}]
    assert len(posts) == 1
    assert {"term": {"kind": "blog"}} not in posts[0]["bool"]["filter"] and {"term": {"kind": "micro"}} not in posts[0]["bool"]["filter"]
    # The rule itself is kept whole: drafts, visibility, hidden and deleted.
    assert posts[0]["bool"]["filter"][1:] == kind_filter(EMPLOYEE, "post")


def test_one_of_the_two_keeps_its_kind_term_and_other_indices_are_untouched():
    only_posts = visible_clauses(SETTINGS, EMPLOYEE, ["post", "wiki_page"])
    assert len(only_posts) == 2
    assert {"term": {"kind": "blog"}} in only_posts[0]["bool"]["filter"]
    assert {"term": {"kind": "page"}} in only_posts[1]["bool"]["filter"]  # the wiki index holds spaces too
    micro = visible_clauses(SETTINGS, EMPLOYEE, ["micropost"])
    assert {"term": {"kind": "micro"}} in micro[0]["bool"]["filter"]
    assert "blog" not in _text(micro)


def test_a_list_longer_than_a_terms_query_takes_is_several_any_of_which_matches():
    from services.search.visibility import MAX_TERMS, any_of

    assert any_of("space_id", ["s1", "s2"]) == {"terms": {"space_id": ["s1", "s2"]}}
    assert any_of("space_id", [f"s{n}" for n in range(MAX_TERMS)]) == {"terms": {"space_id": [f"s{n}" for n in range(MAX_TERMS)]}}
    many = [f"s{n}" for n in range(2 * MAX_TERMS + 1)]
    split = any_of("space_id", many)
    parts = [clause["terms"]["space_id"] for clause in split["bool"]["should"]]
    assert split["bool"]["minimum_should_match"] == 1
    assert [len(part) for part in parts] == [MAX_TERMS, MAX_TERMS, 1] and sum(parts, []) == many
    # A long list of hidden jam threads reaches the threads' rule so.
    wide = Scope(Principal("e1", "employee"), ["c1"], [], None, tuple(many))
    assert {"bool": {"must_not": [any_of("thread_id", many)]}} in kind_filter(wide, "jam_thread")
