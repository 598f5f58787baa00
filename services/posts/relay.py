"""`python -m services.posts.relay`: publishes the posts service's stored events to Kafka
(watercooler.relay). Exactly one runs per service."""

from __future__ import annotations

from watercooler.relay import main

from .application import PostsApplication

if __name__ == "__main__":
    main(PostsApplication)
