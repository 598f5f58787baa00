"""The pure half of view counting: how facts are grouped into count documents."""

from __future__ import annotations

from services.search.readmodels.counters.views import doc_id, plan
from watercooler.posts.v1.library_events_pb2 import ViewFact


def fact(target: str, day: str, department: str = "") -> bytes:
    return ViewFact(target=target, space_id="s", department=department, view_time=f"{day}T10:00:00Z").SerializeToString()


def test_facts_group_by_target_day_department_and_partition_in_offset_order():
    records = [
        (0, 10, fact("pages/a", "2026-01-01", "Research")),
        (0, 11, fact("pages/a", "2026-01-01", "Research")),
        (0, 12, fact("pages/a", "2026-01-02", "Research")),
        (0, 13, fact("pages/a", "2026-01-01", "Sales")),
        (3, 7, fact("pages/a", "2026-01-01", "Research")),  # same key, other partition: its own document
        (0, 14, fact("pages/a", "2026-01-01", "Research")),
    ]
    docs = plan("views", records)
    key = doc_id("views", "pages/a", "2026-01-01", "Research", 0)
    assert docs[key]["offsets"] == [10, 11, 14]
    assert docs[key]["day"] == "2026-01-01" and docs[key]["department"] == "Research" and docs[key]["space_id"] == "s"
    assert len(docs) == 4
    assert sum(len(d["offsets"]) for d in docs.values()) == len(records)


def test_document_ids_separate_kinds_and_partitions():
    assert doc_id("views", "pages/a", "2026-01-01", "", 0) != doc_id("downloads", "pages/a", "2026-01-01", "", 0)
    assert doc_id("views", "pages/a", "2026-01-01", "", 0) != doc_id("views", "pages/a", "2026-01-01", "", 1)
