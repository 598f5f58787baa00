"""`python -m services.jams`: the jams gRPC service and its phase scheduler."""

from __future__ import annotations

import asyncio

from watercooler import auth, config, logs
from watercooler.grpc_server import serve

from .application import JamsApplication
from .scheduler import run_scheduler
from .servicer import register


def main() -> None:
    settings = config.load()
    logs.setup("jams", settings.log_level, settings.log_format)
    auth.require_signing_key(settings)  # it signs the guest tokens of redeemed invitations
    app = JamsApplication(settings)

    async def run() -> None:
        stopping = asyncio.Event()
        scheduler = asyncio.create_task(run_scheduler(app, stopping))

        async def close() -> None:
            stopping.set()
            await scheduler
            app.close()

        await serve("jams", settings, lambda server: register(server, app), on_stop=close)

    asyncio.run(run())


if __name__ == "__main__":
    main()
