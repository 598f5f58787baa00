"""`make bench` at tiny sizes against the session's platform, so the harness cannot rot.

Measures nothing worth reading (the sizes are tiny and the machine is shared); it checks
that every section runs through the real processes and reports positive figures, and that
the JSON, Markdown and plots are written.  No timed assertions."""

from __future__ import annotations

import json
from dataclasses import replace

from benchmarks import harness, relevance, report
from benchmarks.__main__ import quick


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


def test_bench_harness_runs_every_section(platform, tmp_path) -> None:
    cfg = replace(quick(harness.BenchConfig()), out_dir=tmp_path, name="smoke", seed=4242)
    result = harness.run(cfg, platform.settings, platform.platform.procs, log=lambda _: None)
    paths = report.write(result, tmp_path, "smoke")
    saved = json.loads((tmp_path / "smoke.json").read_text())
    assert {"machine", "raw", "platform", "partitions", "comparison"} <= set(saved)
    assert saved["machine"]["nproc"] >= 1 and saved["machine"]["kafka"] and saved["machine"]["elasticsearch"]

    raw = saved["raw"]
    assert _positive(raw["es_bulk"]["docs_per_s"])
    assert _positive(raw["kafka_producer"]["records_per_s"])
    assert _positive(raw["grpc_echo"]["closed_loop_rpc_per_s"])
    assert _positive(raw["grpc_echo"]["cpu_ms_per_call"]["echo server"])

    plat = saved["platform"]
    warm = plat["writes"]["warm_up"]  # the write path ran before it was measured
    assert warm["writes"] > 0 and warm["windows"] and _positive(warm["windows"][0]["jvm_cpu_ms_per_write"])
    assert set(warm["windows"][0]["cpu_ms_per_write"]) == {"kafka", "elasticsearch"}
    assert _positive(plat["writes"]["burst"]["rpc_per_s"]) and _positive(plat["writes"]["burst"]["e2e_events_per_s"])
    assert set(plat["writes"]["burst"]["jit_cpu_ms_per_indexed_write"]) == {"kafka", "elasticsearch"}
    # Where a write's CPU went: the service that took it, and (once indexed) the processor.
    assert _positive(plat["writes"]["burst"]["cpu_ms_per_write"]["profiles"])
    assert _positive(plat["writes"]["burst"]["cpu_ms_per_indexed_write"]["projections"])
    batched = plat["writes"]["batched"]  # the same writes through BatchCreateProfiles, all searchable
    assert batched["profiles"] == cfg.batched_profiles and batched["calls"] == -(-cfg.batched_profiles // cfg.batch_size)
    assert batched["call_latency"]["count"] == batched["calls"] and _positive(batched["e2e_events_per_s"]) and _positive(batched["acknowledged_events_per_s"])
    assert _positive(batched["cpu_ms_per_indexed_write"]["projections"])
    for name in harness.COMMANDS:  # the other main commands, each measured and attributed to its service
        run = plat["commands"][name]
        assert run["calls"] == cfg.command_calls and run["latency"]["count"] == cfg.command_calls and _positive(run["rpc_per_s"])
        assert _positive(run["cpu_ms_per_call"]["profiles" if name in ("Follow", "CreateStatusUpdate") else "posts"])
    for run in plat["writes"]["rates"]:
        assert run["completed"] > 0 and not run["errors"]
        assert run["latency_from_scheduled"]["count"] == run["completed"]
        assert run["freshness"]["count"] == run["completed"] and run["freshness"]["not_seen"] == 0
        assert _positive(run["freshness"]["p99_ms"]) and _positive(run["indexed_events_per_s"])
    assert plat["catch_up"]["events"] == cfg.people_events and _positive(plat["catch_up"]["processor_events_per_s"])
    # The rebuild replays everything on the topic: at least what this run wrote.
    assert plat["rebuild"]["events_replayed"] >= cfg.people_events + cfg.burst_profiles and _positive(plat["rebuild"]["events_per_s"])
    assert plat["rebuild"]["documents"] >= cfg.people_events + cfg.burst_profiles
    for name in ("search_people", "list_people"):
        assert plat["search"][name]["completed"] > 0 and not plat["search"][name]["errors"]
        assert _positive(plat["search"][name]["latency_from_scheduled"]["p99_ms"])
    assert plat["search"]["callers"] == cfg.search_callers > 1  # spread over employees, not one principal
    warm = plat["search"]["warm_up"]  # SearchPeople and ListPeople warmed up before being measured
    assert warm["requests"] == sum(w["requests"] for w in warm["windows"]) > 0 and warm["ended"]
    # Search and Suggest over the bulk-loaded content documents, in this platform's own indices,
    # answered without errors (no RESOURCE_EXHAUSTED from the limiter), and deleted after.
    content = plat["content_search"]
    assert content["load"]["documents"] == content["synthetic_loaded"] == cfg.search_docs + 1  # + the wiki space the pages belong to
    assert content["documents"] >= content["documents_before"] + cfg.search_docs
    assert content["callers"] == cfg.search_callers > 1
    assert content["merges_settled_s"] is not None and content["merges_settled_s"] >= 0  # measured after the load's merges
    for rpc in ("search", "suggest"):
        assert content[rpc]["completed"] == content[rpc]["requests"] > 0 and not content[rpc]["errors"]
        assert content[rpc]["latency_from_scheduled"]["count"] == content[rpc]["completed"] and _positive(content[rpc]["latency_from_scheduled"]["p99_ms"])
        assert _positive(content[rpc]["cpu_ms_per_request"]["search"]) and _positive(content[rpc]["cpu_ms_per_request"]["elasticsearch"])
        assert content[rpc]["per_request"]["elasticsearch shard queries"] >= 1  # every request reaches at least one shard
        assert isinstance(content[rpc]["elasticsearch_hot_threads"], list)  # taken halfway through the run
        assert content[rpc]["warm_up"]["requests"] > 0 and content[rpc]["warm_up"]["windows"]  # run before it was measured
    # Elasticsearch's own profile of Search's queries: time in the posts index, where most documents are.
    esp = content["search"]["elasticsearch_profile"]
    assert esp["searches"] > 0 and _positive(esp["ms_per_search_by_query"]["first query"])
    assert any(key.startswith("first query posts ") and v > 0 for key, v in esp["ms_per_search"].items()), esp
    assert content["deleted"] == cfg.search_docs + 1 and content["synthetic_left"] == 0
    # The larger corpus, measured the same way after the first, so the report can say how the
    # cost grows with the corpus.
    large = plat["content_search_large"]
    assert large["load"]["documents"] == large["synthetic_loaded"] == cfg.search_docs_large + 1 > content["load"]["documents"]
    assert all(large[rpc]["completed"] == large[rpc]["requests"] > 0 and not large[rpc]["errors"] for rpc in ("search", "suggest"))
    assert large["deleted"] == cfg.search_docs_large + 1 and large["synthetic_left"] == 0
    assert any(row["figure"] == f"elasticsearch CPU per Search over {large['documents']:,} docs (ms)" for row in saved["comparison"])
    tally = plat["jam_tally"]
    assert tally["participants"] == cfg.jam_participants and tally["votes_counted"] > 0
    assert tally["events"] >= cfg.jam_participants * cfg.jam_votes_each and _positive(tally["events_per_second"]) and _positive(tally["process_rss_mb"])
    # The judged relevance set, through the write APIs and Search: every query scored.
    rel = saved["relevance"]
    assert rel["overall"]["queries"] == len(relevance.load_queries()) and rel["corpus"]["documents"] == len(relevance.corpus_ids(relevance.load_corpus()))
    assert 0 < rel["overall"]["ndcg_at_10"] <= 1 and 0 < rel["overall"]["recall_at_10"] <= 1 and len(rel["by_language"]) >= 6
    memory = plat["idle_memory"]["rss_bytes"]
    assert {"profiles", "search", "projections", "kafka", "elasticsearch"} <= set(memory)
    assert all(_positive(v) for v in memory.values())

    parts = saved["partitions"]
    assert parts["topic_partitions"] == 6 and [p["workers"] for p in parts["phases"]] == list(cfg.partition_workers)
    assert parts["no_loss"] and parts["missing_documents"] == 0 and parts["documents_by_version"] == {"2": parts["people"]}
    assert _positive(parts["phases"][0]["docs_per_s"])

    figures = {row["figure"]: row for row in saved["comparison"]}
    assert any(f.startswith("write RPCs/s") and _positive(r["ratio"]) for f, r in figures.items())
    assert any(f.startswith("end-to-end indexing events/s (BatchCreateProfiles") and _positive(r["ratio"]) for f, r in figures.items())
    assert all(_positive(figures[f"write RPCs/s ({name}, closed loop)"]["ratio"]) for name in harness.COMMANDS)
    assert any(f.startswith("projection rebuild") and _positive(r["ratio"]) for f, r in figures.items())
    assert any(f.startswith("jam tally events/s") and _positive(r["platform"]) for f, r in figures.items())
    assert any(f.startswith("Search p99") and _positive(r["platform"]) and r["target_max"] == harness.TARGETS["search_p99_s"] for f, r in figures.items())
    assert any(f.startswith("Suggest p99") and _positive(r["platform"]) for f, r in figures.items())
    assert any(f.startswith("relevance nDCG@10") and _positive(r["platform"]) for f, r in figures.items())
    markdown = (tmp_path / "smoke.md").read_text()
    assert "Platform figures next to raw limits" in markdown and "Partition scaling" in markdown and "Jam tally" in markdown
    assert "## Relevance: the judged set" in markdown and "| language de |" in markdown and "| category false_friends |" in markdown
    assert "Search and Suggest" in markdown and "Suggest at" in markdown and "where Elasticsearch spends it" in markdown and "- BatchCreateProfiles (" in markdown and "    - CreatePost: " in markdown
    assert f"- From {content['documents']:,} to {large['documents']:,} documents" in markdown  # how the cost grows with the corpus
    # Every missed target is explained under its own heading (a quick run misses the ratio targets).
    assert any(row["met"] is False for row in result["comparison"]) and "Targets missed: where the time goes and what would close the gap" in markdown
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
