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

MODULES = ("views", "jams")


def modules() -> list[ModuleType]:
    return [importlib.import_module(f"{__name__}.{name}") for name in MODULES]
