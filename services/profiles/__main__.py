"""`python -m services.profiles`: the profiles gRPC service."""

from __future__ import annotations

import asyncio

from watercooler import auth, config, logs
from watercooler.grpc_server import serve

from .application import ProfilesApplication
from .servicer import register


def main() -> None:
    settings = config.load()
    logs.setup("profiles", settings.log_level, settings.log_format)
    auth.require_signing_key(settings)  # it signs service tokens for its calls to posts (media items)
    app = ProfilesApplication(settings)

    async def close() -> None:
        app.close()

    asyncio.run(serve("profiles", settings, lambda server: register(server, app), on_stop=close))


if __name__ == "__main__":
    main()
