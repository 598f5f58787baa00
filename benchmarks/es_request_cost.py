"""CPU one Elasticsearch request costs the calling process: the platform's async client
(``watercooler.projection.es_client``, orjson serializers) against raw aiohttp sending the same
body, one request at a time, in the same process and sitting. Optionally on uvloop.

    WC_ES_URL=http://127.0.0.1:19200 .venv/bin/python -m benchmarks.es_request_cost --index s32b-wc-posts [--uvloop]

A Search sends several requests one after another (query, typo check, look-ups); this is what each
costs the search service whatever Elasticsearch does with it. Never part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BODY = {"query": {"match": {"content": "zebra"}}, "size": 0}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run(index: str, requests: int, rounds: int) -> None:
    import aiohttp
    import orjson

    from watercooler import config
    from watercooler.projection import es_client

    settings = config.load()
    es = es_client(settings)
    url = settings.es_url.split(",")[0].rstrip("/")
    body = orjson.dumps(BODY)
    async with aiohttp.ClientSession() as session:

        async def client(n: int) -> None:
            for _ in range(n):
                await es.search(index=index, **BODY)

        async def raw(n: int) -> None:
            for _ in range(n):
                async with session.post(f"{url}/{index}/_search", data=body, headers={"content-type": "application/json"}) as response:
                    orjson.loads(await response.read())

        await client(200)
        await raw(200)
        for round_ in range(rounds):
            c0 = _cpu()
            await client(requests)
            c1 = _cpu()
            await raw(requests)
            c2 = _cpu()
            print(f"round {round_}: client {1000 * (c1 - c0) / requests:.3f} ms of CPU per request, raw aiohttp {1000 * (c2 - c1) / requests:.3f}", flush=True)
    await es.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT / "libs"), str(ROOT)]
    if args.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(_run(args.index, args.requests, args.rounds))


if __name__ == "__main__":
    main()
