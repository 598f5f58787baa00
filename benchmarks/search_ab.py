"""Search and Suggest before and after a change, interleaved in one sitting.

Two search services run at once, each from its own checkout over its own kept corpus (made by
``benchmarks.search_latency --keep`` with that checkout's mappings), and take turns at a constant
100 requests/s in windows of ``--window`` seconds (before first in even rounds), so that whatever
else the machine does falls on both alike. Per window: p50/p99 from the scheduled send time,
Elasticsearch's and the service's CPU per request.

    WC_INFRA=external WC_ES_URL=http://127.0.0.1:19200 WC_JWT_PRIVATE_KEY_FILE=... WC_JWT_PUBLIC_KEY_FILE=... \\
        .venv/bin/python -m benchmarks.search_ab --before /work/main:s27 --after .:s27b --rounds 3 --window 45

Both services must trust the tokens this process signs: give them one key pair
(``WC_JWT_PRIVATE_KEY_FILE``/``WC_JWT_PUBLIC_KEY_FILE``). Never part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shard_queries(es_url: str, namespace: str) -> dict[str, int]:
    """Shard queries so far over the namespace's indices, in all and by the stats group a Search
    or Suggest tags its requests with (``wc-search-facets`` counts the facets' look-ups): the
    countable cost of a request, where CPU per request moves with whatever else the machine does."""
    import urllib.request

    with urllib.request.urlopen(f"{es_url}/{namespace}-wc-*/_stats/search?groups=_all&filter_path=_all.total.search", timeout=10) as r:
        search = json.load(r)["_all"]["total"]["search"]
    return {"all": search["query_total"], **{group: g["query_total"] for group, g in search.get("groups", {}).items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="CHECKOUT:NAMESPACE of the code before and its kept corpus")
    parser.add_argument("--after", required=True, help="CHECKOUT:NAMESPACE of the code after and its kept corpus")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=45)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--warmup-seconds", type=float, default=60)
    parser.add_argument("--rpcs", default="Search,Suggest")
    parser.add_argument("--callers", type=int, default=50,
                        help="distinct employees the load speaks as, in turn (at 100/s, more than 100 means no caller's scope is kept from its last request)")
    parser.add_argument("--out", default="", help="write the windows as JSON here")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT / "libs"), str(ROOT)]
    from benchmarks import search_latency
    from benchmarks.harness import cpu_seconds, free_port, listening_pid
    from watercooler import auth, config
    from watercooler.client import wait_serving

    os.environ.setdefault("WC_RATE_LIMIT", "0")
    os.environ.setdefault("WC_SEARCH_METRICS_PORT", "0")
    sides = {}
    namespaces = {}
    for side, spec in (("before", args.before), ("after", args.after)):
        root, namespace = spec.rsplit(":", 1)
        namespaces[side] = namespace
        root = str(Path(root).resolve())
        port = free_port()
        env = {**os.environ, "WC_NAMESPACE": namespace, "WC_SEARCH_PORT": str(port), "WC_SEARCH_HTTP_PORT": str(free_port()),
               "PYTHONPATH": os.pathsep.join([f"{root}/libs", root])}
        python = Path(root) / ".venv/bin/python"
        process = subprocess.Popen([str(python if python.exists() else sys.executable), "-m", "services.search"], cwd=root, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sides[side] = (process, f"127.0.0.1:{port}")
    settings = config.load()
    auth.ensure_dev_keys(settings)
    es_pid = listening_pid(int(settings.es_url.rsplit(":", 1)[1].split("/")[0]))
    windows = []
    try:
        for _, address in sides.values():
            wait_serving(address, 60)
        callers = search_latency.callers_for(settings, [f"e{k}" for k in range(1, args.callers + 1)])
        for rpc in args.rpcs.split(","):
            for side, (_, address) in sides.items():
                warm = asyncio.run(search_latency.warm_up(address, callers, rpc, args.warmup_seconds, None, min_seconds=args.warmup_seconds))
                print(f"warm-up {side} {rpc}: {warm['requests']} requests", flush=True)
            for round_ in range(args.rounds):
                for side in (("before", "after") if round_ % 2 == 0 else ("after", "before")):
                    process, address = sides[side]
                    queries0 = shard_queries(settings.es_url, namespaces[side])
                    cpu0 = (cpu_seconds(es_pid), cpu_seconds(process.pid))
                    result = asyncio.run(search_latency.measure(address, callers, rpc, args.rate, args.window, warmup=0))
                    cpu1 = (cpu_seconds(es_pid), cpu_seconds(process.pid))
                    queries1 = shard_queries(settings.es_url, namespaces[side])
                    done, latency = max(1, result["completed"]), result["latency_from_scheduled"]
                    row = {"rpc": rpc, "round": round_, "side": side, "p50": latency.get("p50_ms"), "p99": latency.get("p99_ms"),
                           "es": round(1000 * (cpu1[0] - cpu0[0]) / done, 2), "svc": round(1000 * (cpu1[1] - cpu0[1]) / done, 2),
                           "achieved": result["achieved_per_s"], "errors": result["errors"], "load": round(os.getloadavg()[0], 2),
                           "shard_queries": {group: round((queries1[group] - queries0.get(group, 0)) / done, 3) for group in queries1}}
                    windows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        for process, _ in sides.values():
            process.terminate()
            process.wait(10)
    if args.out:
        Path(args.out).write_text(json.dumps(windows, indent=1))


if __name__ == "__main__":
    main()
