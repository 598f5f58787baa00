"""The judged relevance set (tests/relevance/) is well formed, and its metrics are the standard
ones: graded nDCG@10 (gains 2^grade - 1, log2 discount) and recall@10 over documents judged 1+."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from benchmarks import relevance

CORPUS = relevance.load_corpus()
QUERIES = relevance.load_queries()
IDS = relevance.corpus_ids(CORPUS)


def test_ndcg_uses_graded_gains_and_a_log2_discount():
    judged = {"a": 3, "b": 2, "c": 0}
    assert relevance.ndcg_at(["a", "b"], judged) == pytest.approx(1.0)
    # b then a: (3/1 + 7/log2(3)) against the ideal (7/1 + 3/log2(3)).
    assert relevance.ndcg_at(["b", "a"], judged) == pytest.approx((3 + 7 / math.log2(3)) / (7 + 3 / math.log2(3)))
    # Unjudged and zero-graded documents gain nothing but take a rank.
    assert relevance.ndcg_at(["x", "c", "a", "b"], judged) == pytest.approx((7 / 2 + 3 / math.log2(5)) / (7 + 3 / math.log2(3)))
    assert relevance.ndcg_at([], judged) == 0.0


def test_only_the_first_ten_count():
    judged = {"a": 3, "b": 1}
    ranked = [f"x{n}" for n in range(10)] + ["a", "b"]
    assert relevance.ndcg_at(ranked, judged) == 0.0 and relevance.recall_at(ranked, judged) == 0.0
    assert relevance.recall_at(["a", *ranked], judged) == 0.5


def test_recall_counts_documents_judged_one_or_more():
    assert relevance.recall_at(["a", "c"], {"a": 3, "b": 1, "c": 0}) == 0.5
    with pytest.raises(ValueError):
        relevance.recall_at(["a"], {"a": 0})


def test_summary_is_the_mean_per_query_overall_per_language_and_per_category():
    rows = [relevance.score({"id": "q1", "lang": "de", "category": "typo", "query": "x", "judgments": {"a": 3}}, ["a"]),
            relevance.score({"id": "q2", "lang": "de", "category": "names", "query": "y", "judgments": {"b": 3}}, ["a"]),
            relevance.score({"id": "q3", "lang": "fr", "category": "typo", "query": "z", "judgments": {"c": 3, "d": 1}}, ["c"])]
    summary = relevance.summarise(rows)
    assert summary["overall"]["queries"] == 3 and summary["overall"]["recall_at_10"] == pytest.approx(0.5)
    assert summary["by_language"]["de"] == {"queries": 2, "ndcg_at_10": 0.5, "recall_at_10": 0.5}
    assert summary["by_category"]["typo"]["queries"] == 2 and summary["by_category"]["names"]["ndcg_at_10"] == 0.0


def test_the_corpus_is_small_and_every_item_has_a_known_author():
    assert len(IDS) == len(set(IDS)) and 150 <= len(IDS) <= 300
    people = {p["id"] for p in CORPUS["people"]}
    for kind in ("posts", "microposts", "wiki_pages"):
        assert all(item["author"] in people for item in CORPUS[kind]), kind
    assert len({item["lang"] for kind in relevance.KINDS for item in CORPUS[kind]}) >= 6


def test_the_judgments_cover_languages_and_categories_and_name_only_corpus_items():
    categories = json.loads(relevance.JUDGMENTS.read_text(encoding="utf-8"))["categories"]
    ids = [q["id"] for q in QUERIES]
    assert len(QUERIES) >= 60 and len(ids) == len(set(ids))
    languages = Counter(q["lang"] for q in QUERIES)
    assert {"en", "es", "de", "fr", "pt"} <= set(languages) and len(languages) >= 6
    assert set(Counter(q["category"] for q in QUERIES)) == set(categories)
    known = set(IDS)
    for q in QUERIES:
        assert 0 < len(q["query"]) <= 256, q["id"]
        assert set(q["judgments"]) <= known, (q["id"], set(q["judgments"]) - known)
        assert all(isinstance(g, int) and 0 <= g <= 3 for g in q["judgments"].values()), q["id"]
        assert max(q["judgments"].values()) >= 1, q["id"]
