"""The benchmark report: JSON (everything), Markdown (the figures next to their raw limits,
the targets, where the time goes) and PNG plots, in docs/benchmarks/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(result: dict[str, Any]) -> str:
    lines = ["| figure | platform | raw limit | ratio | target | met |", "| --- | ---: | ---: | ---: | ---: | --- |"]
    for row in result["comparison"]:
        target = f"≥ {row['target_ratio']:.0%} of raw" if row.get("target_ratio") else (f"< {row['target_max']}" if row.get("target_max") else "–")
        raw = f"{_fmt(row['raw'])} ({row['raw_name']})" if row.get("raw") else "–"
        ratio = f"{row['ratio']:.1%}" if row.get("ratio") is not None else "–"
        met = {True: "yes", False: "**no**", None: "–"}[row.get("met")]
        lines.append(f"| {row['figure']} | {_fmt(row['platform'])} | {raw} | {ratio} | {target} | {met} |")
    return "\n".join(lines)


def _lat(summary: dict[str, Any]) -> str:
    if not summary.get("count"):
        return "no samples"
    return f"p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, p99.9 {summary['p999_ms']} ms, max {summary['max_ms']} ms (n={summary['count']})"


def _settled(seconds: float | None) -> str:
    return f"{seconds} s after the load" if seconds is not None else "**still merging** after 300 s: measured anyway"


def _cpu_per_write_lines(burst: dict[str, Any], echo: dict[str, Any]) -> list[str]:
    """Where a write's CPU goes, process by process, next to a bare echo call's."""
    def listed(per: dict[str, float]) -> str:
        return "; ".join(f"{name} {v:.2f}" for name, v in per.items() if v >= 0.005)

    lines = []
    if burst.get("cpu_ms_per_write"):
        lines.append(f"    - CPU per CreateProfile (ms) while the burst was written: {listed(burst['cpu_ms_per_write'])} (total {sum(burst['cpu_ms_per_write'].values()):.2f})")
    if burst.get("cpu_ms_per_indexed_write"):
        lines.append(f"    - and until every one was searchable: {listed(burst['cpu_ms_per_indexed_write'])} (total {sum(burst['cpu_ms_per_indexed_write'].values()):.2f})")
    if burst.get("jit_cpu_ms_per_indexed_write"):
        lines.append(f"    - of which the JVMs' JIT compilers (ms per write): {listed(burst['jit_cpu_ms_per_indexed_write']) or 'none'}")
    if echo.get("cpu_ms_per_call"):
        lines.append(f"    - CPU per bare echo call (ms): {listed(echo['cpu_ms_per_call'])} (total {sum(echo['cpu_ms_per_call'].values()):.2f})")
    return lines


def _directory_warm_up_lines(warm: dict[str, Any] | None) -> list[str]:
    if not warm:
        return []
    return [f"- SearchPeople and ListPeople warmed up first (`PlatformBench._warm_up_directory`): {_read_warm_up(warm)}"]


def _how_it_ended(warm: dict[str, Any]) -> str:
    return "settled" if warm["settled"] else "**not settled**, ended " + warm.get("ended", "?")


def _read_warm_up(warm: dict[str, Any]) -> str:
    """A read path's warm-up (search_latency.warm_up, PlatformBench._warm_up_directory)."""
    return (f"{warm['requests']:,} requests in {warm['seconds']} s, {_how_it_ended(warm)}; Elasticsearch CPU ms per request by 10 s window "
            + ", ".join(str(w["elasticsearch_cpu_ms_per_request"]) for w in warm["windows"]))


def _write_warm_up_lines(warm: dict[str, Any] | None) -> list[str]:
    if not warm:
        return []
    return [f"- Write path warmed up first (`PlatformBench._warm_up`): {warm['writes']:,} CreateProfile in {warm['seconds']} s, {_how_it_ended(warm)}; "
            "by 10 s window, Kafka + Elasticsearch CPU ms per write (of which their JIT compilers) and rpc/s: "
            + ", ".join(f"{w['jvm_cpu_ms_per_write']} ({sum(w['jit_cpu_ms_per_write'].values()):.2f}) at {_fmt(w['rpc_per_s'])}/s" for w in warm["windows"])]


# How a measured step is named in the report: a Search without a read mask has no facets.
RPC_LABELS = {"Search": "Search (no read mask: hits, total, page token)", "SearchFacets": "Search with facets (read_mask `*`)"}


def _content_search_lines(content: dict[str, Any] | None) -> list[str]:
    if not content:
        return []
    load = content["load"]
    lines = [f"- Search and Suggest (`benchmarks/search_latency.py`): {load['documents']:,} synthetic content documents (posts and microposts 80 %, comments, people, wiki pages; "
             f"the projections' mappings, folded text) bulk-loaded into this run's own projection indices in {load['seconds']} s ({_fmt(load['docs_per_s'])} docs/s, "
             f"{load['in_flight']} requests in flight), {content['documents']:,} documents searched, as {content['callers']} distinct employees in turn, "
             f"measured once Elasticsearch's merges after the load had finished ({_settled(content.get('merges_settled_s'))}); "
             f"deleted afterwards ({content['deleted']:,} deleted, {content.get('synthetic_left')} left; the indices hold {content['documents_after']:,} documents, {content['documents_before']:,} before)."]
    for rpc in ("search", "searchfacets", "suggest"):
        run = content.get(rpc)
        if not run:
            continue
        lines.append(f"  - {RPC_LABELS.get(run['rpc'], run['rpc'])} at {run['offered_per_s']:.0f}/s for {run['seconds']:.0f} s: {_lat(run['latency_from_scheduled'])}, errors {run['errors'] or 'none'}, "
                     f"achieved {_fmt(run['achieved_per_s'])}/s ({'sustained' if run['sustained'] else '**not sustained**'}).")
        warm = run.get("warm_up")
        if warm:
            lines.append(f"    - warmed up first: {_read_warm_up(warm)}")
        if run.get("cpu_ms_per_request"):
            lines.append("    - CPU per request (ms, over the measured run incl. its 20 first requests): " + "; ".join(f"{name} {v}" for name, v in run["cpu_ms_per_request"].items())
                         + " — cores busy: " + "; ".join(f"{name} {v}" for name, v in run["cores_busy"].items())
                         + "".join(f" — {name} per request: {v}" for name, v in (run.get("per_request") or {}).items()))
        if run.get("elasticsearch_hot_threads"):
            lines.append("    - Elasticsearch's hot threads halfway through: " + "; ".join(f"`{x.strip()}`" for x in run["elasticsearch_hot_threads"] if "cpu usage by thread" in x))
        esp = run.get("elasticsearch_profile")
        if esp:
            lines.append(f"    - where Elasticsearch spends it (its profiler over {esp['searches']} Searches of the same mix, {esp['typo_queries']} of which needed the typo query; "
                         "ms per Search, summed over shards): " + "; ".join(f"{q} {v}" for q, v in esp["ms_per_search_by_query"].items())
                         + " — by index and phase: " + "; ".join(f"{k} {v}" for k, v in list(esp["ms_per_search"].items())[:12]))
        prof = run.get("profile_of_search") or {}
        if prof.get("samples"):
            lines.append(f"    - where the search process spends it (py-spy, {prof['samples']} samples): inclusive " + "; ".join(f"`{f}` {v:.0%}" for f, v in prof["inclusive"][:8])
                         + "; self " + "; ".join(f"`{f}` {v:.0%}" for f, v in prof["self"][:5]))
    return lines


def _corpus_growth_lines(small: dict[str, Any] | None, large: dict[str, Any] | None) -> list[str]:
    """How a request's cost grows from the first corpus to the larger one (same run, same mix)."""
    if not small or not large:
        return []
    parts = []
    for rpc in ("search", "suggest"):
        a, b = small[rpc], large[rpc]
        cpu_a, cpu_b = a.get("cpu_ms_per_request") or {}, b.get("cpu_ms_per_request") or {}
        parts.append(f"{a['rpc']} p50 {a['latency_from_scheduled'].get('p50_ms')} → {b['latency_from_scheduled'].get('p50_ms')} ms, "
                     f"p99 {a['latency_from_scheduled'].get('p99_ms')} → {b['latency_from_scheduled'].get('p99_ms')} ms, "
                     f"Elasticsearch CPU {cpu_a.get('elasticsearch')} → {cpu_b.get('elasticsearch')} ms, search service CPU {cpu_a.get('search')} → {cpu_b.get('search')} ms per request")
    return [f"- From {small['documents']:,} to {large['documents']:,} documents ({large['documents'] / max(1, small['documents']):.1f}×): " + "; ".join(parts) + "."]


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {code.rsplit('.', 1)[-1]}" for code, n in errors.items()) or "no errors"


def _ms(per: dict[str, float], top: int = 4) -> str:
    return ", ".join(f"{name} {v:.2f}" for name, v in sorted(per.items(), key=lambda kv: -kv[1])[:top])


def _batched_lines(batched: dict[str, Any] | None) -> list[str]:
    if not batched or not batched.get("profiles"):
        return []
    return [f"- BatchCreateProfiles ({batched['profiles']:,} profiles, {batched['batch_size']} a call, {batched['concurrency']} calls in flight): "
            f"{_fmt(batched['acknowledged_events_per_s'])} profiles/s acknowledged, a call {_lat(batched['call_latency'])}; every one searchable "
            f"{batched['all_indexed_after_s']} s after the first send ({_fmt(batched['e2e_events_per_s'])} events/s end to end).",
            f"    - CPU per profile (ms) until every one was searchable: {_ms(batched['cpu_ms_per_indexed_write'], top=6)} "
            f"(total {sum(batched['cpu_ms_per_indexed_write'].values()):.2f})"]


def _command_lines(commands: dict[str, Any] | None) -> list[str]:
    if not commands:
        return []
    lines = [f"- The other main write commands, {commands['calls_each']:,} calls each, closed loop, {commands['workers']} in flight (each worker one author):"]
    for name, run in commands.items():
        if isinstance(run, dict) and "rpc_per_s" in run:
            lines.append(f"    - {name}: {_fmt(run['rpc_per_s'])} rpc/s, {_lat(run['latency'])}; CPU per call (ms): {_ms(run['cpu_ms_per_call'])} "
                         f"(total {sum(run['cpu_ms_per_call'].values()):.2f})")
    return lines


def _gap_lines(result: dict[str, Any]) -> list[str]:
    """For each target this run missed: where its time went (this run's figures) and what would
    close the gap (what earlier runs measured; the session notes and docs/ have the details)."""
    raw, plat = result["raw"], result["platform"]
    missed_rows = [row for row in result["comparison"] if row.get("met") is False]
    missed = [row["figure"] for row in missed_rows]
    if not missed:
        return []
    burst, echo, cores = plat["writes"]["burst"], raw["grpc_echo"], int(result["machine"]["nproc"])
    lines = ["## Targets missed: where the time goes and what would close the gap", ""]
    if any(f.startswith("write RPCs") for f in missed):
        per_write = sum(burst["cpu_ms_per_write"].values())
        needed = next(row["target_ratio"] for row in missed_rows if row["figure"].startswith("write RPCs")) * echo["closed_loop_rpc_per_s"]
        lines.append(f"- **Write RPCs vs the bare echo.** A CreateProfile cost {per_write:.2f} ms of CPU across all processes ({_ms(burst['cpu_ms_per_write'])}), "
                     f"a bare echo call {sum(echo.get('cpu_ms_per_call', {}).values()):.2f} ms. {cores} cores allow at most {1000 * cores / per_write:,.0f} writes/s at that cost; "
                     f"{needed:,.0f}/s would need at most {1000 * cores / needed:.2f} ms per write, and the profiles service alone used {burst['cpu_ms_per_write'].get('profiles', 0):.2f} "
                     "(gRPC's Python server, the command's decision, the SQLite transaction). The relay, Kafka, the projection and Elasticsearch come on top, since "
                     f"every acknowledged write is published and indexed too. No change measured so far closes this on {cores} cores; on Kubernetes the service "
                     "scales out as replicas on PostgreSQL."
                     + (" The other commands: " + "; ".join(f"{name} {sum(run['cpu_ms_per_call'].values()):.2f} ms a call ({_fmt(run['rpc_per_s'])}/s)"
                                                           for name, run in plat["commands"].items() if isinstance(run, dict) and "rpc_per_s" in run) + "."
                        if plat.get("commands") else ""))
    if any(f.startswith(("end-to-end", "processor catch-up")) for f in missed):
        batched = plat["writes"].get("batched") or {}
        indexed = batched.get("cpu_ms_per_indexed_write") or {}
        acknowledged, caught_up = batched.get("acknowledged_events_per_s") or 0, plat["catch_up"].get("processor_events_per_s") or 0
        per_profile = sum(indexed.values())
        ceiling = 1000 * cores / per_profile if per_profile else 0
        if acknowledged < caught_up:
            bound = (f"the write side bounds it, and with it the cores: all processes together used {per_profile:.2f} ms of CPU per profile, "
                     f"which {cores} cores allow at most {_fmt(ceiling)} times a second")
        else:
            bound = "the single projections process bounds it"
        lines.append(f"- **End-to-end indexing vs `_bulk`.** One profile a CreateProfile call is bound by the write path above ({_fmt(burst['rpc_per_s'])}/s here). "
                     f"BatchCreateProfiles ({batched.get('batch_size')} a call) took {_fmt(batched.get('e2e_events_per_s'))} events/s from first send to all searchable; "
                     f"it was acknowledged at {_fmt(acknowledged)}/s and the processors alone caught up at {_fmt(caught_up)} events/s, so {bound} "
                     f"(CPU per batched profile until searchable: {_ms(indexed, top=6)}). In the projections process faust's per-record machinery (fetching, "
                     "conducting each record to its agents' streams, acking) was about 40 % of the CPU samples (py-spy, one catch-up of 100,000 events). "
                     "What would close it (not measured): more profiles replicas on PostgreSQL and more projection workers, on a machine with the cores "
                     "for them, and a consumer that hands the projections whole fetches (aiokafka's getmany, as the rebuild does).")
    if any(f.startswith("projection rebuild") for f in missed):
        lines.append(f"- **Rebuild vs `_bulk`.** {_fmt(plat['rebuild']['events_per_s'])} events/s against {_fmt(raw['es_bulk']['docs_per_s'])} docs/s. The rebuild reads the current documents of each batch (`mget`) "
                     "before writing them; into a new index they are nearly all absent. Answering those reads without Elasticsearch gave 0-11 % more "
                     "(150,000 events, three runs each way, within the noise). Both this figure and raw `_bulk` vary from run to run on this machine: over four runs raw `_bulk` (two in flight) did 12,616-16,205 docs/s and the rebuild 58-85 % of it.")
    if any(f.startswith("freshness") for f in missed):
        top = max(plat["writes"]["rates"], key=lambda r: r["offered_per_s"])
        low = min(plat["writes"]["rates"], key=lambda r: r["offered_per_s"])
        lines.append(f"- **Freshness at {top['offered_per_s']:.0f}/s.** One profiles service took {_fmt(top['achieved_per_s'])}/s of it and refused the rest "
                     f"({_errors(top['errors'])}), using the cores the relay, Kafka, the processor and Elasticsearch need to make a write searchable: "
                     f"p99 {top['freshness'].get('p99_ms')} ms from acknowledgement to search hit, against {low['freshness'].get('p99_ms')} ms at {low['offered_per_s']:.0f}/s. "
                     "Freshness is bound by the CPU left beside the write path; closing it takes cores for the indexing path of its own "
                     "(on Kubernetes: services, processors and Elasticsearch on separate nodes).")
    for step in ("content_search", "content_search_large"):
        content = plat.get(step) or {}
        for rpc in ("search", "suggest"):
            run = content.get(rpc) or {}
            label = f"{rpc.title()} p99 at {run.get('offered_per_s', 0):.0f}/s over {content.get('documents', 0):,} docs"
            cpu_missed = rpc == "search" and any(f.endswith(f"per Search over {content.get('documents', 0):,} docs (ms)") for f in missed)
            if run and (any(f.startswith(label) for f in missed) or cpu_missed):
                lines.append(_request_cost_line(run, content["documents"], cores))
    for figure in missed:
        if figure.startswith("SearchPeople"):
            lines.append(f"- **{figure}.** Missed in this run; both met it in the runs before, so look at the load average above first.")
        if figure.startswith("idle resident"):
            lines.append("- **Idle memory.** See each process's share under Platform; Elasticsearch's heap (1 GiB) is the largest.")
    return lines + [""]


def _request_cost_line(run: dict[str, Any], documents: int, cores: int) -> str:
    """Where one Search's or Suggest's time went in this run: each process's CPU per request
    against the cores, Elasticsearch's shard queries and its own profile, the search process's
    hottest frames — this run's figures, not an earlier run's."""
    cpu = run.get("cpu_ms_per_request") or {}
    busy = sum(v for name, v in (run.get("cores_busy") or {}).items() if "gc" not in name)
    esp = run.get("elasticsearch_profile") or {}
    prof = run.get("profile_of_search") or {}
    shards = (run.get("per_request") or {}).get("elasticsearch shard queries")
    lat = run["latency_from_scheduled"]
    text = (f"- **{run['rpc']} over {documents:,} documents.** p50 {lat.get('p50_ms')} ms, p99 {lat.get('p99_ms')} ms at {run['offered_per_s']:.0f}/s. "
            f"Each request cost {cpu.get('elasticsearch', 0):.2f} ms of Elasticsearch CPU and {cpu.get('search', 0):.2f} ms in the search service "
            f"({busy:.2f} of the {cores} cores busy with this load alone, beside whatever else ran: see the load average)"
            + (f", in {shards} shard queries" if shards else "") + ". ")
    if esp:
        text += ("Elasticsearch's profile, ms of shard time per Search: " + "; ".join(f"{k} {v}" for k, v in esp.get("ms_per_search_by_query", {}).items())
                 + f" ({esp.get('typo_queries', 0)} of {esp.get('searches', 0)} Searches needed the typo query); largest parts: "
                 + "; ".join(f"{k} {v}" for k, v in list(esp.get("ms_per_search", {}).items())[:6]) + ". ")
    if prof.get("samples"):
        text += "The search process's hottest frames (py-spy): " + "; ".join(f"`{f}` {v:.0%}" for f, v in prof.get("inclusive", [])[2:6]) + ". "
    text += ("A p99 far above the p50 is queueing for the cores, which this machine's two share between Elasticsearch, the search service and the load generator. "
             "What would close it, by what these figures show: Elasticsearch on cores of its own (a dedicated node, as on Kubernetes) and "
             "fewer indices per Search (ask for the kinds you need: each index is a shard query); docs/search.md lists each cut measured so far, "
             "what it saved, and what is left of a Search's time by Elasticsearch's profile.")
    return text


def _relevance_lines(rel: dict[str, Any] | None) -> list[str]:
    if not rel:
        return []
    from benchmarks import relevance

    corpus = rel["corpus"]
    return ["## Relevance: the judged set (`benchmarks/relevance.py`)", "",
            f"{rel['overall']['queries']} judged queries (`tests/relevance/judgments.json`, grades 0-3) over {corpus['documents']} documents, queries in {len(rel['by_language'])} languages "
            f"(`tests/relevance/corpus.json`), written through the write APIs in {corpus['written_in_s']} s and all searchable {corpus['indexed_after_s']} s later, "
            f"each searched once with Search as an employee of the query's language, the first {rel['k']} hits scored: "
            "nDCG@10 with gains 2^grade - 1 and a log2 discount, recall@10 over the documents judged 1 or more; means per query.", "",
            relevance.table(rel), ""]


def markdown(result: dict[str, Any], plots: list[str]) -> str:
    m, raw, plat, parts = result["machine"], result["raw"], result["platform"], result["partitions"]
    out = [f"# Benchmark: {result['config']['name']}", "",
           f"Run {m['started_at']} with `make bench` ({'quick' if result['config']['employees'] <= 5000 else 'full'} sizes; configuration in the JSON).", "",
           "## Machine", "",
           f"- {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB memory, Linux {m['kernel']}",
           f"- load average at start {m['loadavg_start']}, at end {m.get('loadavg_end')} — **shared machine**: other engineers' test suites ran at the same time, so every figure is a lower bound",
           f"- Python {m['python']}; {m.get('jdk')}; Kafka {m['kafka']}; Elasticsearch {m['elasticsearch']} (running: {m.get('elasticsearch_running', '?')}); infra {m['infra_mode']}; ES refresh interval {m['es_refresh_interval']}; relay idle ceiling {m.get('relay_idle_max_s', '?')} s; processor batch wait {m.get('processor_batch_within_s', '?')} s; "
           f"per-principal rate limit {m.get('rate_limit_per_principal', '?')} (0 = off)",
           "", "## Platform figures next to raw limits", "", table(result), "",
           "## Raw limits", "",
           f"- Elasticsearch `_bulk`: {raw['es_bulk']['documents']:,} people documents (the projection's own `apply`, mappings and external versions, ~{raw['es_bulk']['avg_doc_bytes']} B each), batches of {raw['es_bulk']['batch']}: "
           f"{_fmt(raw['es_bulk']['docs_per_s_1_in_flight'])} docs/s one request in flight, {_fmt(raw['es_bulk']['docs_per_s_2_in_flight'])} docs/s two in flight (refresh included).",
           f"- Kafka ProducerPerformance (same distribution, acks=all): `{raw['kafka_producer']['output']}`",
           f"- gRPC unary echo (grpc.aio server in another process, {raw['grpc_echo']['payload_bytes']} B payload = a CreateProfileRequest, {raw['grpc_echo']['concurrency']} in flight): "
           f"{_fmt(raw['grpc_echo']['closed_loop_rpc_per_s'])} rpc/s; at a constant {raw['grpc_echo']['constant_rate']['offered_per_s']:.0f}/s: {_lat(raw['grpc_echo']['constant_rate']['latency_from_scheduled'])}.",
           "", "## Platform", "",
           *_write_warm_up_lines(plat["writes"].get("warm_up")),
           f"- CreateProfile burst ({plat['writes']['burst']['profiles']:,} profiles, {plat['writes']['burst']['concurrency']} in flight): {_fmt(plat['writes']['burst']['rpc_per_s'])} rpc/s, {_lat(plat['writes']['burst']['latency'])}; "
           f"every one searchable {plat['writes']['burst']['all_indexed_after_s']} s after the first send ({_fmt(plat['writes']['burst']['e2e_events_per_s'])} events/s end to end).",
           *_cpu_per_write_lines(plat["writes"]["burst"], raw["grpc_echo"]),
           *_batched_lines(plat["writes"].get("batched")),
           *_command_lines(plat.get("commands"))]
    for run in plat["writes"]["rates"]:
        out.append(f"- CreateProfile at a constant {run['offered_per_s']:.0f}/s for {run['seconds']:.0f} s: achieved {_fmt(run['achieved_per_s'])}/s ({'sustained' if run['sustained'] else '**not sustained**'}), "
                   f"errors {run['errors'] or 'none'}; latency from scheduled send {_lat(run['latency_from_scheduled'])}; freshness (ack → first hit on the alias) {_lat(run['freshness'])}, not seen {run['freshness']['not_seen']}; "
                   f"indexed {_fmt(run.get('indexed_events_per_s'))} events/s; client send slip max {run['max_send_slip_ms']} ms.")
    cu = plat["catch_up"]
    out += [f"- Processor catch-up: {cu['events']:,} ProfileCreated envelopes produced straight to the topic (as the relay would) in {cu.get('produced_in_s')} s, all indexed after {cu.get('all_indexed_after_s')} s: {_fmt(cu.get('processor_events_per_s'))} events/s.",
            f"- Rebuild (`PeopleProjection.rebuild`, what `watercooler reindex people` runs): {plat['rebuild']['events_replayed']:,} events in {plat['rebuild']['seconds']} s = {_fmt(plat['rebuild']['events_per_s'])} events/s into {plat['rebuild']['documents']:,} documents.",
            *_directory_warm_up_lines(plat["search"].get("warm_up")),
            f"- SearchPeople at {plat['search']['search_people']['offered_per_s']:.0f}/s over {plat['search']['documents']:,} documents: {_lat(plat['search']['search_people']['latency_from_scheduled'])}, errors {plat['search']['search_people']['errors'] or 'none'}.",
            f"- ListPeople (department/country, directory order) at {plat['search']['list_people']['offered_per_s']:.0f}/s: {_lat(plat['search']['list_people']['latency_from_scheduled'])}, errors {plat['search']['list_people']['errors'] or 'none'}.",
            *_content_search_lines(plat.get("content_search")),
            *_content_search_lines(plat.get("content_search_large")),
            *_corpus_growth_lines(plat.get("content_search"), plat.get("content_search_large")),
            *([f"- Jam tally (`benchmarks/jams_votes.py`): {plat['jam_tally']['events']:,} vote events ({plat['jam_tally']['participants_offered']:,} participants x {plat['jam_tally']['votes_each']} votes, with withdrawals and merges, "
               f"{plat['jam_tally']['bytes_mb']} MB of envelopes) decoded and tallied by `services.jams.domainmodel.Tally` in {plat['jam_tally']['tally_seconds']} s = {_fmt(plat['jam_tally']['events_per_second'])} events/s; "
               f"the tally holds {plat['jam_tally']['tally_rss_mb']} MiB (RSS growth), process {plat['jam_tally']['process_rss_mb']} MiB resident; {plat['jam_tally']['votes_counted']:,} votes counted."] if "jam_tally" in plat else []),
            "- Idle resident memory (VmRSS, each process with its children): " + ", ".join(f"{k} {v / 2**20:,.0f} MiB" for k, v in sorted(plat["idle_memory"]["rss_bytes"].items())) +
            f"; total {plat['idle_memory']['total_gib']} GiB (Python {plat['idle_memory']['python_gib']} GiB).",
            "", "## Partition scaling", "",
            f"{parts['people']:,} people = {parts['events']:,} events (ProfileCreated v1 + ProfileUpdated v2) on a {parts['topic_partitions']}-partition topic; `python -m services.search.readmodels.projections` workers added one at a time (each addition rebalances the group):", "",
            "| workers | documents in step | docs/s | events/s | pause before progress (s) |", "| ---: | ---: | ---: | ---: | ---: |"]
    out += [f"| {p['workers']} | {p['documents']:,} | {_fmt(p['docs_per_s'])} | {_fmt(p['events_per_s'])} | {p['pause_before_progress_s']} |" for p in parts["phases"]]
    out += ["", f"Check: documents by version {parts['documents_by_version']}, missing {parts['missing_documents']}, lost events {parts['lost_events']}; "
            f"redeliveries absorbed by the version check {int(parts['redelivered_skipped_by_version'])}. **No event lost: {parts['no_loss']}.**", ""]
    profiles = {k: v for r in plat["writes"]["rates"] for k, v in r.get("profiles_of_processes", {}).items()}
    if profiles:
        out += ["## Where the time goes (py-spy, during the highest offered rate)", ""]
        for name, prof in profiles.items():
            if not prof.get("samples"):
                continue
            out.append(f"- **{name}** ({prof['samples']} samples) — hottest inclusive frames: " + "; ".join(f"`{f}` {s:.0%}" for f, s in prof["inclusive"][:8]))
            out.append("  - self time: " + "; ".join(f"`{f}` {s:.0%}" for f, s in prof["self"][:6]))
        out.append("")
    out += _relevance_lines(result.get("relevance"))
    out += _gap_lines(result)
    out += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + ["", f"Step durations (s): {result['timings_s']}", ""]
    return "\n".join(out)


def plots(result: dict[str, Any], out_dir: Path, name: str) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    files = []
    plat = result["platform"]
    # 1. Latency percentiles of every constant-rate run.
    runs = [(f"CreateProfile @{r['offered_per_s']:.0f}/s", r["latency_from_scheduled"]) for r in plat["writes"]["rates"]]
    runs += [(f"freshness @{r['offered_per_s']:.0f}/s", r["freshness"]) for r in plat["writes"]["rates"]]
    runs += [(f"SearchPeople @{plat['search']['search_people']['offered_per_s']:.0f}/s", plat["search"]["search_people"]["latency_from_scheduled"]),
             (f"ListPeople @{plat['search']['list_people']['offered_per_s']:.0f}/s", plat["search"]["list_people"]["latency_from_scheduled"]),
             *((f"{plat[step][rpc]['rpc']} @{plat[step][rpc]['offered_per_s']:.0f}/s, {plat[step]['documents']:,} docs",
                plat[step][rpc]["latency_from_scheduled"]) for step in ("content_search", "content_search_large") if step in plat for rpc in ("search", "suggest")),
             (f"gRPC echo @{result['raw']['grpc_echo']['constant_rate']['offered_per_s']:.0f}/s", result["raw"]["grpc_echo"]["constant_rate"]["latency_from_scheduled"])]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    labels = [label for label, s in runs if s.get("count")]
    for i, pct in enumerate(("p50_ms", "p99_ms", "p999_ms")):
        ax.bar([x + i * 0.27 for x in range(len(labels))], [s[pct] for _, s in runs if s.get("count")], width=0.27, label=pct.replace("_ms", ""))
    ax.set_xticks([x + 0.27 for x in range(len(labels))], labels, rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.axhline(50, color="red", linestyle="--", linewidth=0.8, label="search target 50 ms")
    ax.axhline(1500, color="orange", linestyle="--", linewidth=0.8, label="freshness target 1.5 s")
    ax.set_ylabel("ms (log), from scheduled send")
    ax.set_title("Latency at constant offered rates (HDR, no coordinated omission)")
    ax.legend()
    fig.tight_layout()
    files.append(f"{name}-latency.png")
    fig.savefig(out_dir / files[-1], dpi=110)
    plt.close(fig)
    # 2. Throughput next to the raw limits.
    rows = [r for r in result["comparison"] if r.get("raw") and r.get("platform")]
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.barh([r["figure"][:50] for r in rows], [r["raw"] for r in rows], color="#cccccc", label="raw limit")
    ax.barh([r["figure"][:50] for r in rows], [r["platform"] for r in rows], color="#1f77b4", label="platform")
    ax.set_xscale("log")
    ax.set_xlabel("per second (log)")
    ax.legend()
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    files.append(f"{name}-throughput.png")
    fig.savefig(out_dir / files[-1], dpi=110)
    plt.close(fig)
    # 3. Partition scaling: documents over time as workers join.
    parts = result["partitions"]
    if parts.get("samples"):
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
        left.plot([t for t, _ in parts["samples"]], [c for _, c in parts["samples"]])
        left.set_xlabel("s")
        left.set_ylabel("documents indexed")
        left.set_title("progress as workers join")
        right.bar([str(p["workers"]) for p in parts["phases"]], [p["events_per_s"] for p in parts["phases"]])
        right.set_xlabel("worker processes")
        right.set_ylabel("events/s")
        right.set_title(f"{parts['topic_partitions']} partitions")
        fig.tight_layout()
        files.append(f"{name}-partitions.png")
        fig.savefig(out_dir / files[-1], dpi=110)
        plt.close(fig)
    return files


def write(result: dict[str, Any], out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{name}.json"
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    images = plots(result, out_dir, name)
    md_path = out_dir / f"{name}.md"
    md_path.write_text(markdown(result, images))
    return [json_path, md_path, *(out_dir / i for i in images)]
