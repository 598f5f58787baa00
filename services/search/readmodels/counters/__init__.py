"""Counts kept by stream processors (documents that are not one aggregate).

Each module in MODULES adds its agents to the one shared faust app with
``register(app, settings, es)``, names the topics it reads with
``topics(settings)`` and creates its index with ``ensure_index(es, settings)``.
Every module must stay exact under redelivery and SIGKILL, and prove it in a test.
`python -m services.search.readmodels.counters` runs them all in one worker (process "stats").
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from elasticsearch import AsyncElasticsearch

MODULES = ("views", "jams")


def modules() -> list[ModuleType]:
    return [importlib.import_module(f"{__name__}.{name}") for name in MODULES]


async def create_counter_index(es: AsyncElasticsearch, alias: str, settings: dict[str, Any], mappings: dict[str, Any]) -> None:
    """The first index of a counter behind its alias (a rebuild makes later ones and switches
    the alias); several workers may start at once, so losing the race to create it is fine."""
    if await es.indices.exists_alias(name=alias):
        return
    try:
        await es.indices.create(index=f"{alias}-v1-initial", settings=settings, mappings=mappings, aliases={alias: {"is_write_index": True}})
    except Exception as exc:
        if "resource_already_exists" not in str(exc):
            raise
