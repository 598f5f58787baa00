"""`python -m services.search.readmodels.counters`: the faust worker that keeps the counts."""

from __future__ import annotations

import asyncio
import os

import faust

from watercooler import config, logs, metrics, personaldata
from watercooler.kafka import create_topics
from watercooler.processor import faust_app
from watercooler.projection import es_client

from . import modules


def main() -> None:
    settings = config.load()
    logs.setup("stats", settings.log_level, settings.log_format)
    # The jam stats open sealed personal fields with keys asked of the profiles service, with a
    # service token of their own (signed here: this process needs the signing key).
    personaldata.shared_key_ring(settings, "stats")
    app = faust_app("search-stats", settings, commit_every=5000)
    es = es_client(settings)
    stats_modules = modules()
    for module in stats_modules:
        module.register(app, settings, es)

    @app.on_before_shutdown.connect
    async def close_es(app_: faust.App, **_: object) -> None:
        await es.close()

    create_topics(settings, [t for m in stats_modules for t in m.topics(settings)])

    async def prepare() -> None:
        client = es_client(settings)
        try:
            for module in stats_modules:
                await module.ensure_index(client, settings)
        finally:
            await client.close()

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(prepare())
    metrics.serve(int(os.environ.get("WC_STATS_METRICS_PORT", "9472")))
    from faust.worker import Worker

    worker = Worker(app, loglevel=settings.log_level.lower(), redirect_stdouts=False, override_logging=False, quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
