"""`python -m services.posts`: the posts gRPC service (health and reflection; its RPCs land with their issues)."""

from __future__ import annotations

import asyncio

from watercooler import config, logs
from watercooler.grpc_server import serve
from watercooler.posts.v1 import posts_pb2, posts_pb2_grpc


def register(server) -> list[str]:
    posts_pb2_grpc.add_PostServiceServicer_to_server(posts_pb2_grpc.PostServiceServicer(), server)
    return [posts_pb2.DESCRIPTOR.services_by_name["PostService"].full_name]


def main() -> None:
    settings = config.load()
    logs.setup("posts", settings.log_level, settings.log_format)
    asyncio.run(serve("posts", settings, register))


if __name__ == "__main__":
    main()
