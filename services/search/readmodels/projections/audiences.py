"""Documents that carry another item's *current* audience: a comment its target's
(comments.py), a wiki page its space's (wiki.py). A search filters them on their own fields, in
one query, instead of first listing the items the caller may see; the copies follow a change of
the item's audience by ``propagate``.

Each audience has an ``audience_version`` (the item's aggregate version when its audience last
changed) and each copy the version it was copied at, so a copy only ever moves forward. A
carrying document's Elasticsearch version is its own aggregate version times VERSION_SCALE: a
propagation rewrites it with the version it read plus one (external versioning), so an event of
the document or another propagation written in between wins and the propagation reads again,
and the document's next event is not mistaken for a duplicate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from elasticsearch import AsyncElasticsearch

from watercooler.projection import Doc

# Leaves room for propagations (each +1) between two events of a document.
VERSION_SCALE = 1_000_000
MAX_PROPAGATION_ROUNDS = 10_000
PROPAGATION_PAGE = 1000


async def propagate(es: AsyncElasticsearch, indices: str, key_field: str, audiences: dict[str, Doc], only: Sequence[dict[str, Any]] = (),
                    version_field: str = "audience_version") -> None:
    """Every document of ``indices`` (and matching ``only``) whose ``key_field`` names an
    audience of ``audiences`` (key -> the fields its documents copy, ``version_field`` among
    them) and that copied an older one takes it. This Elasticsearch has no scripting and no
    update_by_query, so: refresh (every document written before now becomes searchable), find the
    documents still behind, rewrite them with the version they were read at plus one (a write in
    between makes that a conflict: read again), until none is behind."""
    if not audiences:
        return
    behind = {"bool": {"filter": list(only), "should": [{"bool": {"filter": [{"term": {key_field: key}}, {"range": {version_field: {"lt": audience[version_field]}}}]}}
                                                         for key, audience in sorted(audiences.items())], "minimum_should_match": 1}}
    for _ in range(MAX_PROPAGATION_ROUNDS):
        await es.indices.refresh(index=indices, ignore_unavailable=True, allow_no_indices=True)
        found = await es.search(index=indices, query=behind, size=PROPAGATION_PAGE, version=True, ignore_unavailable=True, allow_no_indices=True)
        hits = found["hits"]["hits"]
        if not hits:
            return
        operations: list[dict[str, Any]] = []
        for hit in hits:
            doc = {**hit["_source"], **audiences[hit["_source"][key_field]]}
            operations += [{"index": {"_index": hit["_index"], "_id": hit["_id"], "version": hit["_version"] + 1, "version_type": "external"}}, doc]
        response = await es.bulk(operations=operations, filter_path="errors,items.*.status,items.*.error")
        if response["errors"]:
            for item in response["items"]:
                outcome = item["index"]
                if outcome.get("error") and outcome.get("status") != 409:  # 409: changed meanwhile, read again
                    raise RuntimeError(f"propagating audiences into {indices} failed: {outcome['error']}")
    raise RuntimeError(f"documents of {sorted(audiences)[:3]} kept changing while their audience was propagated into {indices}")
