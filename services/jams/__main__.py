"""`python -m services.jams`: the jams gRPC service (health and reflection; its RPCs land with their issues)."""

from __future__ import annotations

import asyncio

from watercooler import config, logs
from watercooler.grpc_server import serve
from watercooler.jams.v1 import jams_pb2, jams_pb2_grpc


def register(server) -> list[str]:
    jams_pb2_grpc.add_JamServiceServicer_to_server(jams_pb2_grpc.JamServiceServicer(), server)
    return [jams_pb2.DESCRIPTOR.services_by_name["JamService"].full_name]


def main() -> None:
    settings = config.load()
    logs.setup("jams", settings.log_level, settings.log_format)
    asyncio.run(serve("jams", settings, register))


if __name__ == "__main__":
    main()
