"""Projections kept by the stream processors, one module per index.

ALL lists every document projection; `python -m services.search.projections` runs them
in one faust worker, and `watercooler reindex <name>` rebuilds one from the log."""

from __future__ import annotations

from .people import PeopleProjection

ALL = (PeopleProjection,)
