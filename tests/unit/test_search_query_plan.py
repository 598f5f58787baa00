"""Search's query plan: facet aggregations only over fields the kinds asked for have (and the
table saying which kinds have them agrees with the projections' mappings), and a caller's scope
read only in the parts the kinds' rules need."""

from __future__ import annotations

import json

import pytest

from services.search.readmodels.projections import ALL
from services.search.unified import FACET_FIELD_KINDS, KINDS, Search
from services.search.visibility import ALL_PARTS, SCOPE_PARTS, Scope, kind_filter
from watercooler.auth import Principal
from watercooler.config import Settings

SETTINGS = Settings()


def test_the_facet_fields_kinds_are_those_whose_index_maps_the_field():
    mapped = {p.name: p(SETTINGS).index_body()["mappings"]["properties"] for p in ALL}
    for field, kinds in FACET_FIELD_KINDS.items():
        assert {kind for kind, (alias, _) in KINDS.items() if field in mapped[alias]} == set(kinds), field


def test_facet_aggregations_only_over_fields_the_kinds_have():
    assert set(Search._aggs(["person"])) == {"by_index", "people_departments"}
    assert "aggs" not in Search._aggs(["person"])["by_index"]  # no kind split but for posts
    assert set(Search._aggs(["bookmark"])) == {"by_index", "tags", "author_owner_id"}
    assert set(Search._aggs(["post"])) == {"by_index", "tags", "author_author_id"} and Search._aggs(["post"])["by_index"]["aggs"]
    every = Search._aggs(list(KINDS))
    assert set(every) == {"by_index", "tags", "people_departments", "author_author_id", "author_owner_id", "author_author", "author_owner"}


def test_every_kind_names_the_scope_parts_its_rule_reads():
    assert set(SCOPE_PARTS) == set(KINDS)
    communities_only = Scope(Principal("e1", "employee"), ["c1"], [], [], (), frozenset({"communities"}))
    assert json.dumps(kind_filter(communities_only, "post")) == json.dumps(kind_filter(Scope(Principal("e1", "employee"), ["c1"], ["s1"], None), "post"))
    # A kind whose part was not read is refused, never filtered by an empty stand-in.
    for kind in ("jam_idea", "jam_thread"):
        with pytest.raises(ValueError, match="scope was read without"):
            kind_filter(communities_only, kind)
    # A wiki page carries its space's audience, and so does a comment on one: their rules need
    # the communities alone.
    for kind in ("wiki_page", "comment"):
        assert kind_filter(communities_only, kind) == kind_filter(Scope(Principal("e1", "employee"), ["c1"], ["s1"], None), kind)
    assert Scope(Principal("e1", "employee"), [], None, None).parts == ALL_PARTS


def test_a_sub_search_that_failed_is_never_read_as_one_without_hits():
    """Suggest and Trending read an _msearch: a failed part used to be skipped, the list silently
    short of it. Busy or a shard away: UNAVAILABLE (retry); any other refusal: an internal error."""
    import pytest

    from services.search.unified import EngineRefused, answers
    from watercooler.errors import Unavailable

    ok = {"hits": {"hits": [], "total": {"value": 0}}, "status": 200}
    assert answers({"responses": [ok, ok]}) == [ok, ok]
    for status in (429, 503):
        with pytest.raises(Unavailable, match="retry"):
            answers({"responses": [ok, {"error": {"type": "es_rejected_execution_exception", "reason": "queue full"}, "status": status}]})
    with pytest.raises(EngineRefused, match="400: failed to create query"):
        answers({"responses": [{"error": {"type": "search_phase_execution_exception", "reason": "failed to create query"}, "status": 400}, ok]})
