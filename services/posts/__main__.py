"""`python -m services.posts`: the posts gRPC service (blogs, posts, microblog, comments,
ratings, bookmarks, flags; wiki and media from services/posts/library)."""

from __future__ import annotations

import asyncio

from watercooler import auth, config, logs
from watercooler.grpc_server import serve

from .application import PostsApplication
from .servicer import register as register_posts


def main() -> None:
    settings = config.load()
    logs.setup("posts", settings.log_level, settings.log_format)
    auth.require_signing_key(settings)  # it signs service tokens for its calls to profiles
    from .library.servicer import register as register_library
    from .library.targets import install as install_library_targets

    app = PostsApplication(settings)
    install_library_targets(app)  # pages/{id} and media/{id} take comments and likes
    # One line per servicer sharing this process; each returns the service names it added.
    registrations = [
        lambda server: register_posts(server, app),
        lambda server: register_library(server, settings),
    ]

    async def close() -> None:
        app.close()

    asyncio.run(serve("posts", settings, lambda server: [name for register in registrations for name in register(server)], on_stop=close))


if __name__ == "__main__":
    main()
