"""Search's visibility clauses: posts and microposts share one clause when both are asked for
(each matching post was checked twice before), and keep their own kind terms otherwise; their
index is filtered by each document's audience, or by the fields in an index built before it."""

from __future__ import annotations

import json

from services.search.readmodels.indices import POSTS_AUDIENCE_SCHEMA
from services.search.unified import KINDS, visible_clauses
from services.search.visibility import Scope, audience_filter, kind_filter
from watercooler.auth import Principal
from watercooler.config import Settings

SETTINGS = Settings()
EMPLOYEE = Scope(Principal("e1", "employee"), ["c1"], ["s1"], None)


def _text(clauses) -> str:
    return json.dumps(clauses, sort_keys=True)


def _branches(clause) -> tuple[dict, dict]:
    """The two branches of a posts clause: the index of the audience schema, and one built before."""
    audience, older = clause["bool"]["should"]
    return audience["bool"], older["bool"]


def test_posts_and_microposts_asked_together_are_one_clause_without_kind_terms():
    clauses = visible_clauses(SETTINGS, EMPLOYEE, list(KINDS))
    assert len(clauses) == len(KINDS) - 1
    posts = [c for c in clauses if SETTINGS.index_alias("posts") + "-v" in _text(c)]
    assert len(posts) == 1
    assert '"kind"' not in _text(posts[0])
    audience, older = _branches(posts[0])
    # In an index whose documents carry their audience, the rule is that one field...
    assert audience["filter"] == [{"prefix": {"_index": SETTINGS.index_alias("posts") + "-v"}}, *audience_filter(EMPLOYEE, "post")]
    # ...and in one built before, the rule kept whole: drafts, visibility, hidden and deleted.
    assert older["filter"][1:] == kind_filter(EMPLOYEE, "post")


def test_an_index_built_before_the_audience_is_filtered_by_the_fields_during_a_rolling_upgrade():
    """Which branch applies is decided by the concrete index's schema (its name), per shard."""
    alias = SETTINGS.index_alias("posts")
    audience, older = _branches(visible_clauses(SETTINGS, EMPLOYEE, ["post", "micropost"])[0])
    built_before = [{"prefix": {"_index": f"{alias}-v{n}-"}} for n in range(1, POSTS_AUDIENCE_SCHEMA)]
    assert audience["must_not"] == built_before
    assert older["filter"][0] == {"bool": {"should": built_before, "minimum_should_match": 1}}
    # Kinds whose documents carry no audience have one clause, filtered by the fields.
    (wiki,) = visible_clauses(SETTINGS, EMPLOYEE, ["wiki_page"])
    assert wiki["bool"]["filter"][0] == {"prefix": {"_index": SETTINGS.index_alias("wiki") + "-v"}} and audience_filter(EMPLOYEE, "wiki_page") is None


def test_one_of_the_two_keeps_its_kind_term_and_other_indices_are_untouched():
    only_posts = visible_clauses(SETTINGS, EMPLOYEE, ["post", "wiki_page"])
    assert len(only_posts) == 2
    assert all({"term": {"kind": "blog"}} in branch["filter"] for branch in _branches(only_posts[0]))
    assert {"term": {"kind": "page"}} in only_posts[1]["bool"]["filter"]  # the wiki index holds spaces too
    micro = visible_clauses(SETTINGS, EMPLOYEE, ["micropost"])
    assert all({"term": {"kind": "micro"}} in branch["filter"] for branch in _branches(micro[0]))
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
