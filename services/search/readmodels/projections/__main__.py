"""`python -m services.search.readmodels.projections`: the faust worker that keeps the search indices."""

from __future__ import annotations

import os

from watercooler import config, logs, personaldata, processor

from . import ALL


def main() -> None:
    settings = config.load()
    logs.setup("projections", settings.log_level, settings.log_format)
    # The projections open sealed personal fields with keys they ask the profiles service for,
    # with a service token of their own (signed here: this process needs the signing key).
    personaldata.shared_key_ring(settings)
    app = processor.create_app("search-projections", ALL, settings)
    processor.run(app, settings, metrics_port=int(os.environ.get("WC_PROJECTIONS_METRICS_PORT", "9471")))


if __name__ == "__main__":
    main()
