"""The write path alone: CPU per write, process by process, in a few minutes.

    WC_INFRA=external WC_KAFKA_BOOTSTRAP=127.0.0.1:29092 WC_ES_URL=http://127.0.0.1:29200 \\
        .venv/bin/python -m benchmarks.write_path --name write-path

The part of `make bench` that measures what a write costs (harness.raw_grpc_echo and
PlatformBench.writes without the constant-rate runs, optionally PlatformBench.commands), on a
platform of its own in a namespace of its own, so that a change to the write path can be
measured before and after in one sitting without the hour the whole bench takes. Against
shared Kafka and Elasticsearch servers (WC_INFRA=external) their CPU includes other users'
work: it is reported as measured and, next to it, less the rate the two servers used in an
idle window just before (``background``), which is only an estimate. Results go to
docs/benchmarks/<name>.json and .md (test-artifacts/bench with --scratch).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# The client is not part of the pipeline a write costs: it is reported, but not summed.
NOT_PIPELINE = ("load generator",)
JVMS = ("kafka", "elasticsearch")
# The targets a write is held to (CPU ms, whole pipeline: service, relay, processors, Kafka,
# Elasticsearch; the load generator not counted).
TARGET_SINGLE_WRITE_MS = 2.0
TARGET_BATCHED_EVENT_MS = 0.4


def pipeline_ms(per_process: dict[str, float], background: dict[str, float] | None = None, items: int = 0, seconds: float = 0.0) -> float:
    """The sum of per-process CPU ms per item, the load generator left out; with ``background``
    (CPU seconds per second of a process when idle) that much of ``seconds`` is taken off."""
    total = 0.0
    for name, ms in per_process.items():
        if name in NOT_PIPELINE:
            continue
        if background and name in background and items:
            ms = max(0.0, ms - 1000 * background[name] * seconds / items)
        total += ms
    return round(total, 3)


def background_cpu(bench, seconds: float) -> dict[str, float]:
    """CPU seconds per second each measured process uses while this platform is idle (the JVMs:
    other users of shared servers; the platform: its pollers)."""
    before = bench.cpu_by_process()
    time.sleep(seconds)
    after = bench.cpu_by_process()
    return {name: round((after[name] - before[name]) / seconds, 4) for name in after if name in before and name not in NOT_PIPELINE}


async def measure(bench, cfg, with_commands: bool) -> dict[str, Any]:
    out = {"writes": await bench.writes()}
    if with_commands:
        out["commands"] = await bench.commands()
    return out


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """The figures the targets are about, from a bench result's ``platform`` section."""
    writes = result["platform"]["writes"]
    burst, batched = writes["burst"], writes.get("batched") or {}
    background = result.get("background_cpu_per_s") or {}
    out: dict[str, Any] = {
        "single_write_cpu_ms": pipeline_ms(burst["cpu_ms_per_indexed_write"]),
        "single_write_cpu_ms_less_background": pipeline_ms(burst["cpu_ms_per_indexed_write"], background, burst["profiles"], burst.get("all_indexed_after_s") or 0),
        # The platform's own processes alone: on shared servers the JVMs' CPU is partly others'.
        "single_write_cpu_ms_platform_only": pipeline_ms({k: v for k, v in burst["cpu_ms_per_indexed_write"].items() if k not in JVMS}),
        "single_write_latency": burst["latency"],
        "single_write_rpc_per_s": burst["rpc_per_s"],
    }
    if batched.get("profiles"):
        out["batched_event_cpu_ms"] = pipeline_ms(batched["cpu_ms_per_indexed_write"])
        out["batched_event_cpu_ms_platform_only"] = pipeline_ms({k: v for k, v in batched["cpu_ms_per_indexed_write"].items() if k not in JVMS})
        out["batched_event_cpu_ms_less_background"] = pipeline_ms(batched["cpu_ms_per_indexed_write"], background, batched["profiles"], batched.get("all_indexed_after_s") or 0)
    return out


def markdown(result: dict[str, Any]) -> str:
    m, writes, s = result["machine"], result["platform"]["writes"], result["summary"]
    burst, batched, echo = writes["burst"], writes.get("batched") or {}, result["raw"]["grpc_echo"]
    background = result.get("background_cpu_per_s") or {}
    names = sorted({*burst["cpu_ms_per_indexed_write"], *batched.get("cpu_ms_per_indexed_write", {})},
                   key=lambda n: -burst["cpu_ms_per_indexed_write"].get(n, 0))

    def cell(per: dict[str, float], name: str) -> str:
        return f"{per[name]:.3f}" if name in per else "–"

    lat = burst["latency"]
    out = [f"# Write path: {result['name']}", "",
           f"Run {m['started_at']} with `python -m benchmarks.write_path` (commit {result.get('commit', '?')}); {m['nproc']} CPUs ({m['cpu_model']}); "
           f"load average {m['loadavg_start']} at start, {result.get('loadavg_end')} at end (`uptime`); infra {m['infra_mode']}"
           + (" — **Kafka and Elasticsearch shared with other users**: their CPU includes others' work" if m["infra_mode"] == "external" else "") + ".", "",
           f"CreateProfile: {burst['profiles']:,} single writes, {burst['concurrency']} in flight, {burst['rpc_per_s']} rpc/s, p50 {lat.get('p50_ms')} ms, p99 {lat.get('p99_ms')} ms; "
           + (f"BatchCreateProfiles: {batched['profiles']:,} profiles, {batched['batch_size']} a call, {batched['concurrency']} in flight, a call p50 {batched['call_latency'].get('p50_ms')} ms, "
              f"p99 {batched['call_latency'].get('p99_ms')} ms. " if batched.get("profiles") else "")
           + "CPU from the first send until every write was searchable, ms per write (per event for the batches):", "",
           "| process | single write | batched event | idle background (CPU s/s) |", "| --- | ---: | ---: | ---: |"]
    out += [f"| {n} | {cell(burst['cpu_ms_per_indexed_write'], n)} | {cell(batched.get('cpu_ms_per_indexed_write', {}), n)} | {background.get(n, '–')} |" for n in names]
    out += [f"| **pipeline** (all but the load generator) | **{s['single_write_cpu_ms']}** (target ≤ {TARGET_SINGLE_WRITE_MS}) | "
            f"**{s.get('batched_event_cpu_ms', '–')}** (target ≤ {TARGET_BATCHED_EVENT_MS}) | |",
            f"| pipeline less the idle background | {s['single_write_cpu_ms_less_background']} | {s.get('batched_event_cpu_ms_less_background', '–')} | |",
            f"| of the pipeline, the platform's own processes (not Kafka, Elasticsearch) | {s['single_write_cpu_ms_platform_only']} | {s.get('batched_event_cpu_ms_platform_only', '–')} | |", "",
            f"A bare gRPC echo call (the same request size, {echo['concurrency']} in flight): {sum(echo['cpu_ms_per_call'].values()):.3f} ms "
            f"({', '.join(f'{k} {v:.3f}' for k, v in echo['cpu_ms_per_call'].items())}), {echo['closed_loop_rpc_per_s']} rpc/s.", ""]
    commands = result["platform"].get("commands") or {}
    for name, run in commands.items():
        if isinstance(run, dict) and "cpu_ms_per_call" in run:
            out.append(f"- {name}: {run['rpc_per_s']} rpc/s, p50 {run['latency'].get('p50_ms')} ms, p99 {run['latency'].get('p99_ms')} ms; pipeline CPU "
                       f"{pipeline_ms(run['cpu_ms_per_call'])} ms a call ({', '.join(f'{k} {v:.2f}' for k, v in run['cpu_ms_per_call'].items())})")
    return "\n".join(out) + "\n"


def comparison(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Before and after, side by side: CPU ms per single write and per batched event by process,
    the pipeline's sums, single-write latency, and the machine's load during each run."""
    def per(result: dict[str, Any], kind: str) -> dict[str, float]:
        section = result["platform"]["writes"].get(kind) or {}
        return section.get("cpu_ms_per_indexed_write") or {}

    names = sorted({*per(before, "burst"), *per(after, "burst")}, key=lambda n: -per(before, "burst").get(n, 0))
    out = ["| process | single write before | after | batched event before | after |", "| --- | ---: | ---: | ---: | ---: |"]
    for name in names:
        cells = [per(r, kind).get(name) for kind in ("burst", "batched") for r in (before, after)]
        if any(c for c in cells):
            out.append(f"| {name} | " + " | ".join("–" if c is None else f"{c:.3f}" for c in cells) + " |")
    sb, sa = summarise(before), summarise(after)  # from the figures, whichever version wrote them
    out.append(f"| **pipeline** (all but the load generator) | **{sb['single_write_cpu_ms']}** | **{sa['single_write_cpu_ms']}** | "
               f"**{sb.get('batched_event_cpu_ms', '–')}** | **{sa.get('batched_event_cpu_ms', '–')}** |")
    out.append(f"| pipeline less the idle background | {sb['single_write_cpu_ms_less_background']} | {sa['single_write_cpu_ms_less_background']} | "
               f"{sb.get('batched_event_cpu_ms_less_background', '–')} | {sa.get('batched_event_cpu_ms_less_background', '–')} |")
    out.append(f"| of the pipeline, the platform's own processes (not Kafka, Elasticsearch) | {sb['single_write_cpu_ms_platform_only']} | "
               f"{sa['single_write_cpu_ms_platform_only']} | {sb.get('batched_event_cpu_ms_platform_only', '–')} | {sa.get('batched_event_cpu_ms_platform_only', '–')} |")
    for label, key in (("p50", "p50_ms"), ("p99", "p99_ms")):
        out.append(f"| CreateProfile latency {label} (ms, 32 in flight) | {sb['single_write_latency'].get(key)} | {sa['single_write_latency'].get(key)} | | |")
    out.append(f"| CreateProfile rpc/s | {sb['single_write_rpc_per_s']} | {sa['single_write_rpc_per_s']} | | |")
    out.append(f"| load average at start → end (`uptime`) | {before['machine']['loadavg_start']} → {before.get('loadavg_end')} | "
               f"{after['machine']['loadavg_start']} → {after.get('loadavg_end')} | | |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    from benchmarks.__main__ import _DEFAULTS, _clean

    p = argparse.ArgumentParser(prog="python -m benchmarks.write_path", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--burst", type=int, default=3_000, help="single CreateProfile writes measured")
    p.add_argument("--batched", type=int, default=20_000, help="profiles written by BatchCreateProfiles (500 a call)")
    p.add_argument("--warmup", type=int, default=25_000, help="CreateProfile writes (closed loop) before measuring, every one of them: enough to fill the services' aggregate caches (20,000), as in a long-running service")
    p.add_argument("--echo-seconds", type=float, default=5.0)
    p.add_argument("--background-seconds", type=float, default=5.0, help="idle window measuring the shared servers' background CPU")
    p.add_argument("--commands", action="store_true", help="also the other main write commands (CreatePost, Follow, ...)")
    p.add_argument("--command-calls", type=int, default=1_000)
    p.add_argument("--name", default="write-path")
    p.add_argument("--keep", action="store_true", help="leave the namespace's topics and indices behind (to read Elasticsearch's indexing time per index)")
    p.add_argument("--scratch", action="store_true", help="write to test-artifacts/bench instead of docs/benchmarks")
    p.add_argument("--before", type=Path, help="the JSON of an earlier run (the code before a change): the report shows both side by side")
    args = p.parse_args(argv)
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ["WC_NAMESPACE"] = os.environ.get("WC_BENCH_NAMESPACE") or f"wpath{secrets.token_hex(3)}"
    sys.path[:0] = [str(ROOT / "libs"), str(ROOT)]

    from benchmarks import harness
    from tools import infra
    from tools.runner import Platform
    from tools.synthetic import Company
    from watercooler import auth, config

    env = {"WC_PROJECTIONS_METRICS_PORT": "0", "WC_STATS_METRICS_PORT": "0", "WC_THUMBNAILS_METRICS_PORT": "0", "WC_SEARCH_HTTP_PORT": str(harness.free_port()), "WC_RATE_LIMIT": "0"}
    for service in config.SERVICES:
        env[f"WC_{service.upper()}_PORT"] = str(harness.free_port())
        env[f"WC_{service.upper()}_METRICS_PORT"] = "0"
    os.environ.update(env)
    settings = config.load()
    measured = harness.measured_settings(settings)  # whose CPU to read: the servers behind the addresses given
    cfg = replace(harness.BenchConfig(), burst_profiles=args.burst, batched_profiles=args.batched,
                  # All of the warm-up is written (no early stop once settled): a later write's manager may be among them.
                  write_warmup_seconds=3600.0, write_warmup_min_seconds=3600.0, write_warmup_profiles=args.warmup,
                  rates=(), rate_seconds=0.0, people_events=0, echo_seconds=args.echo_seconds, command_calls=args.command_calls, profile_seconds=0)
    print(f"[write-path] namespace {settings.namespace}; Kafka {settings.kafka_bootstrap}; Elasticsearch {settings.es_url} ({settings.infra_mode})", flush=True)
    up = infra.ensure_up(settings, progress=lambda message: print(f"[infra] {message}"))
    auth.ensure_dev_keys(settings)
    company = Company(employees=cfg.employees, seed=cfg.seed)
    sample = next(iter(company.people(limit=1)))
    result: dict[str, Any] = {"name": args.name, "machine": harness.machine(settings), "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    import subprocess

    from tools.company import create_profile_request

    result["commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    # Before the platform starts: the bare echo measured on a quiet platform, as in `make bench`.
    result["raw"] = {"grpc_echo": harness.raw_grpc_echo(cfg, len(create_profile_request(sample, "bench-size").SerializeToString()))}
    running = Platform(settings, log_dir=harness.ROOT / "test-artifacts" / "bench" / "logs" / settings.namespace)
    try:
        running.start()
        bench = harness.PlatformBench(measured, cfg, company, running.procs)
        time.sleep(3)  # the platform settles after start
        result["background_cpu_per_s"] = background_cpu(bench, args.background_seconds)
        result["platform"] = asyncio.run(measure(bench, cfg, args.commands))
    finally:
        running.stop()
        if not args.keep:
            _clean(settings)
        if up and settings.infra_mode == "local":
            infra.ensure_down(settings)
    result["loadavg_end"] = harness.loadavg()
    result["summary"] = summarise(result)
    out_dir = harness.ROOT / ("test-artifacts/bench" if args.scratch else "docs/benchmarks")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{args.name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    text = markdown(result)
    if args.before:
        before = json.loads(args.before.read_text())
        result["before"] = {"name": before["name"], "commit": before.get("commit"), "summary": before["summary"], "loadavg": [before["machine"]["loadavg_start"], before.get("loadavg_end")]}
        text += (f"\n## Before and after\n\nThe same measurement of the code before ({before.get('commit') or before['name']}, run "
                 f"{before['machine']['started_at']}) and of this run's, one after the other:\n\n" + comparison(before, result))
        (out_dir / f"{args.name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out_dir / f"{args.name}.md").write_text(text)
    print(text)
    print(f"[write-path] wrote {out_dir / args.name}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
