"""The read side's models: what the search service reads, kept only by consuming events.

- ``projections``: one document projection per index (`python -m services.search.readmodels.projections`).
- ``counters``: view/download counts and jam statistics (`python -m services.search.readmodels.counters`).
- ``indices``: the index names and field names they export; the query side imports only this.
- ``rebuild``: `watercooler reindex <name>`, for a projection or a counter alike.

Nothing here imports the query side (services/search/*.py) nor another service's domain code
(import contracts in pyproject.toml).
"""
