"""`python -m services.search`: the search gRPC service."""

from __future__ import annotations

import asyncio

from watercooler import config, logs
from watercooler.grpc_server import serve
from watercooler.projection import es_client

from .copies import CallerPinnedElasticsearch
from .http import start as start_http
from .readmodels.indices import warm_up
from .readmodels.projections import ALL
from .servicer import register


def main() -> None:
    settings = config.load()
    logs.setup("search", settings.log_level, settings.log_format)

    async def run() -> None:
        es = es_client(settings, CallerPinnedElasticsearch)  # a caller's reads from one copy of each shard
        # Answer from the first request on, even before any processor has run.
        for projection in ALL:
            await projection(settings).ensure_index(es)
        warm_up()  # queries are matched in their language too: detecting it needs the model
        await start_http(es, settings)  # the JSON view and the dashboard, on WC_SEARCH_HTTP_PORT
        await serve("search", settings, lambda server: register(server, es, settings), on_stop=es.close)

    asyncio.run(run())


if __name__ == "__main__":
    main()
