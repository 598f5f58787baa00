"""Relevance you can see: the judged set in tests/relevance/ run through the real Search RPC.

The corpus (tests/relevance/corpus.json: people, blog posts, microposts, wiki pages and jam
ideas in twelve languages) is written through the public write APIs (profiles, posts, wiki,
jams), so it reaches Elasticsearch the way everything does: events on Kafka, the projections,
the indices. Each judged query (tests/relevance/judgments.json) is then searched once with
Search, as an employee whose profile languages are the query's, and the first ten hits are
scored against the graded judgments:

- nDCG@10: gains 2^grade - 1, discount log2(rank + 1), normalised by the ideal ordering of
  every document judged for the query (Järvelin and Kekäläinen's graded DCG, as trec_eval's
  ndcg_cut.10 computes it);
- recall@10: the share of the documents judged 1 or more that are among the first ten.

Both are averaged over the queries: overall, per query language and per category.

The searches are limited (start_time, end_time) to the minutes the corpus was written in:
whatever else shares the indices (the other integration tests' items, the benchmark's people)
is then neither a hit nor the reason the typo pass is skipped, and the figures are the corpus's
alone. A filter does not change scores; the other items still count in the term statistics.

Used by tests/integration/test_relevance_judged.py (which asserts a floor) and by `make bench`
(`benchmarks.harness`); alone, against a platform of its own in a namespace of its own:

    WC_INFRA=external WC_KAFKA_BOOTSTRAP=127.0.0.1:29092 WC_ES_URL=http://127.0.0.1:29200 \\
        .venv/bin/python -m benchmarks.relevance [--json out.json]
"""

from __future__ import annotations

import datetime as dt
import json
import math
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "tests" / "relevance"
CORPUS = DATA_DIR / "corpus.json"
JUDGMENTS = DATA_DIR / "judgments.json"
K = 10
KINDS = ("people", "posts", "microposts", "wiki_pages", "jam_ideas")


# --- the data ---------------------------------------------------------------------------------
def load_corpus(path: Path = CORPUS) -> dict[str, list[dict[str, Any]]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {kind: data[kind] for kind in KINDS}


def load_queries(path: Path = JUDGMENTS) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))["queries"]


def corpus_ids(corpus: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    return [item["id"] for kind in KINDS for item in corpus[kind]]


# --- the metrics ------------------------------------------------------------------------------
def dcg(grades: Iterable[int]) -> float:
    return sum((2 ** grade - 1) / math.log2(rank + 2) for rank, grade in enumerate(grades))


def ndcg_at(ranked: Sequence[str], judgments: Mapping[str, int], k: int = K) -> float:
    """Graded nDCG of the first ``k`` of ``ranked`` (unjudged documents gain nothing)."""
    ideal = dcg(sorted(judgments.values(), reverse=True)[:k])
    if ideal == 0:
        raise ValueError("a query needs at least one document judged 1 or more")
    return dcg(judgments.get(doc, 0) for doc in ranked[:k]) / ideal


def recall_at(ranked: Sequence[str], judgments: Mapping[str, int], k: int = K) -> float:
    """The share of the documents judged 1 or more found among the first ``k``."""
    relevant = {doc for doc, grade in judgments.items() if grade >= 1}
    if not relevant:
        raise ValueError("a query needs at least one document judged 1 or more")
    return len(relevant & set(ranked[:k])) / len(relevant)


def score(query: Mapping[str, Any], ranked: Sequence[str]) -> dict[str, Any]:
    return {"id": query["id"], "lang": query["lang"], "category": query["category"], "query": query["query"], "ranked": list(ranked[:K]),
            "ndcg_at_10": ndcg_at(ranked, query["judgments"]), "recall_at_10": recall_at(ranked, query["judgments"])}


def summarise(scored: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean nDCG@10 and recall@10 overall, per query language and per category."""
    def mean(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {"queries": len(rows), "ndcg_at_10": round(sum(r["ndcg_at_10"] for r in rows) / len(rows), 4),
                "recall_at_10": round(sum(r["recall_at_10"] for r in rows) / len(rows), 4)}

    groups: dict[str, dict[str, list]] = {"by_language": defaultdict(list), "by_category": defaultdict(list)}
    for row in scored:
        groups["by_language"][row["lang"]].append(row)
        groups["by_category"][row["category"]].append(row)
    return {"overall": mean(scored), **{name: {key: mean(rows) for key, rows in sorted(g.items())} for name, g in groups.items()}}


# --- through the platform ---------------------------------------------------------------------
class Corpus:
    """The corpus written once through the public write APIs, and the Search RPC over it."""

    def __init__(self, settings, corpus: Mapping[str, Sequence[Mapping[str, Any]]] | None = None, queries: Sequence[Mapping[str, Any]] | None = None):
        from watercooler import auth
        from watercooler.client import bearer_metadata, channel

        self.settings = settings
        self.corpus = corpus or load_corpus()
        self.queries = list(queries or load_queries())
        # Employee ids, handles and ids of this run: the corpus can be written again into the
        # same namespace (the suite's bench smoke test after the relevance test) without clashing.
        self.run = secrets.token_hex(3)
        self._metadata = lambda subject, kind="employee": bearer_metadata(auth.issue_token(settings, subject, kind, ttl_seconds=3600))
        self._channels = {service: channel(settings, service) for service in ("profiles", "posts", "jams", "search")}
        self.names: dict[str, str] = {}  # resource name -> corpus id
        self.readers: dict[str, Any] = {}  # query language -> the searcher's metadata
        self.window: tuple[dt.datetime, dt.datetime] | None = None

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()

    def employee(self, corpus_id: str) -> str:
        return f"rel-{self.run}-{corpus_id}"

    def write(self) -> dict[str, Any]:
        """Searchers first (outside the window), then every item; returns counts and seconds."""
        from google.protobuf.timestamp_pb2 import Timestamp

        from watercooler.jams.v1 import jams_pb2 as jp
        from watercooler.jams.v1 import jams_pb2_grpc as jg
        from watercooler.posts.v1 import posts_pb2 as pb
        from watercooler.posts.v1 import posts_pb2_grpc as pg
        from watercooler.posts.v1 import wiki_pb2 as wp
        from watercooler.posts.v1 import wiki_pb2_grpc as wg
        from watercooler.profiles.v1 import profiles_pb2 as prp
        from watercooler.profiles.v1 import profiles_pb2_grpc as prg

        profiles = prg.ProfileServiceStub(self._channels["profiles"])
        posts = pg.PostServiceStub(self._channels["posts"])
        wiki = wg.WikiServiceStub(self._channels["posts"])
        jams = jg.JamServiceStub(self._channels["jams"])
        service = self._metadata("relevance-corpus", "service")
        began = time.perf_counter()
        # One searcher per query language, whose profile says it: an engine may search the
        # caller's languages. They are written before the window, so never among the hits.
        for lang in sorted({q["lang"] for q in self.queries}):
            reader = f"rel-{self.run}-reader-{lang}"
            profiles.CreateProfile(prp.CreateProfileRequest(profile=prp.Profile(employee_id=reader, display_name=f"Relevance reader {lang}", languages=[lang])), metadata=service)
            self.readers[lang] = self._metadata(reader)
        time.sleep(0.01)
        start = dt.datetime.now(dt.UTC)
        for person in self.corpus["people"]:
            fields = {k: person[k] for k in ("display_name", "title", "department", "country", "languages", "expertise", "bio") if k in person}
            created = profiles.CreateProfile(prp.CreateProfileRequest(profile=prp.Profile(employee_id=self.employee(person["id"]), **fields)), metadata=service)
            self.names[created.name] = person["id"]
            # Corpus people write what others read: they accept the participation guidelines.
            profiles.AcceptGuidelines(prp.AcceptGuidelinesRequest(name=created.name, version=self.settings.guidelines_version), metadata=service)
        blogs: dict[str, str] = {}
        for post in self.corpus["posts"]:
            author = self._metadata(self.employee(post["author"]))
            if post["author"] not in blogs:
                blogs[post["author"]] = posts.CreateBlog(pb.CreateBlogRequest(blog=pb.Blog(handle=f"rel-{self.run}-{len(blogs)}", title="Notes", visibility=pb.Audience.INTERNAL)),
                                                         metadata=author).name
            created = posts.CreatePost(pb.CreatePostRequest(parent=blogs[post["author"]], post=pb.Post(title=post["title"], body=post["body"], visibility=pb.Audience.INTERNAL)),
                                       metadata=author)
            posts.PublishPost(pb.PublishPostRequest(name=created.name), metadata=author)
            self.names[created.name] = post["id"]
        for micro in self.corpus["microposts"]:
            created = posts.CreateMicropost(pb.CreateMicropostRequest(micropost=pb.Micropost(text=micro["text"], visibility=pb.Audience.INTERNAL)),
                                            metadata=self._metadata(self.employee(micro["author"])))
            self.names[created.name] = micro["id"]
        space = wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=f"rel-{self.run}", display_name="Handbook", visibility=wp.INTERNAL)), metadata=service).name
        for page in self.corpus["wiki_pages"]:
            created = wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space, title=page["title"], body=page["body"])), metadata=self._metadata(self.employee(page["author"])))
            self.names[created.name] = page["id"]
        # The host seeds the ideas before the jam opens (proposing needs it open).
        host = self._metadata(self.employee(self.corpus["people"][0]["id"]))

        def stamp(seconds_from_now: float) -> Timestamp:
            out = Timestamp()
            out.FromDatetime((dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds_from_now)).replace(tzinfo=None))
            return out

        jam = jams.CreateJam(jp.CreateJamRequest(jam_id=f"rel-{self.run}", jam=jp.Jam(title="Ideas", vote_budget=3, top_n=3, open_time=stamp(3600), voting_time=stamp(7200),
                                                                                     close_time=stamp(9000))), metadata=host).name
        for idea in self.corpus["jam_ideas"]:
            created = jams.CreateIdea(jp.CreateIdeaRequest(parent=jam, idea=jp.Idea(title=idea["title"], description=idea["description"])), metadata=host)
            self.names[created.name] = idea["id"]
        time.sleep(0.01)
        self.window = (start, dt.datetime.now(dt.UTC))
        return {"documents": len(self.names), "written_in_s": round(time.perf_counter() - began, 2)}

    def _search(self, metadata, query: str, page_size: int, mask: str):
        from google.protobuf.field_mask_pb2 import FieldMask
        from google.protobuf.timestamp_pb2 import Timestamp

        from watercooler.search.v1 import search_pb2 as sp
        from watercooler.search.v1 import search_pb2_grpc as sg

        assert self.window is not None, "write the corpus first"
        start, end = Timestamp(), Timestamp()
        start.FromDatetime(self.window[0].replace(tzinfo=None))
        end.FromDatetime((self.window[1] + dt.timedelta(seconds=1)).replace(tzinfo=None))
        request = sp.SearchRequest(query=query, start_time=start, end_time=end, page_size=page_size, read_mask=FieldMask(paths=[mask]))
        return sg.SearchServiceStub(self._channels["search"]).Search(request, metadata=metadata, timeout=30)

    def wait_indexed(self, timeout: float = 120.0) -> float:
        """Seconds until every written item is searchable (Search without text, in the window)."""
        began, expected = time.perf_counter(), len(self.names)
        reader = next(iter(self.readers.values()))
        while True:
            found = self._search(reader, "", 1, "total_size").total_size
            if found >= expected:
                return round(time.perf_counter() - began, 2)
            if time.perf_counter() - began > timeout:
                raise TimeoutError(f"{found} of {expected} corpus items searchable after {timeout:.0f} s")
            time.sleep(0.25)

    def ranked(self, query: Mapping[str, Any]) -> list[str]:
        """The corpus ids of the first ten hits of one judged query, as its searcher."""
        hits = self._search(self.readers[query["lang"]], query["query"], K, "hits").hits
        return [self.names.get(hit.name, hit.name) for hit in hits]

    def evaluate(self) -> list[dict[str, Any]]:
        return [score(query, self.ranked(query)) for query in self.queries]


def run(settings, log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Write the corpus, wait until it is searchable, search every judged query, summarise."""
    corpus = Corpus(settings)
    try:
        written = corpus.write()
        written["indexed_after_s"] = corpus.wait_indexed()
        log(f"[relevance] {written['documents']} documents written in {written['written_in_s']} s, all searchable {written['indexed_after_s']} s later")
        began = time.perf_counter()
        scored = corpus.evaluate()
        result = {**summarise(scored), "corpus": written, "searched_in_s": round(time.perf_counter() - began, 2), "k": K, "queries": scored}
    finally:
        corpus.close()
    log(f"[relevance] {len(scored)} queries: nDCG@10 {result['overall']['ndcg_at_10']}, recall@10 {result['overall']['recall_at_10']}")
    return result


def table(result: Mapping[str, Any]) -> str:
    """Markdown: overall, per language and per category."""
    lines = ["| queries | group | nDCG@10 | recall@10 |", "| --- | --- | ---: | ---: |"]
    o = result["overall"]
    lines.append(f"| {o['queries']} | **all** | **{o['ndcg_at_10']:.3f}** | **{o['recall_at_10']:.3f}** |")
    for name, label in (("by_language", "language"), ("by_category", "category")):
        for key, row in result[name].items():
            lines.append(f"| {row['queries']} | {label} {key} | {row['ndcg_at_10']:.3f} | {row['recall_at_10']:.3f} |")
    return "\n".join(lines)


def misses(result: Mapping[str, Any], below: float = 1.0) -> list[str]:
    """The queries under ``below`` nDCG@10, worst first, with what came back (for reading)."""
    rows = sorted((q for q in result["queries"] if q["ndcg_at_10"] < below), key=lambda q: (q["ndcg_at_10"], q["id"]))
    return [f"{q['id']} ({q['query']!r}): nDCG@10 {q['ndcg_at_10']:.2f}, recall@10 {q['recall_at_10']:.2f}; top: {', '.join(q['ranked'][:4]) or 'nothing'}" for q in rows]


def main(argv: list[str] | None = None) -> int:
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser(prog="python -m benchmarks.relevance", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the whole result (every query's ranking) here")
    parser.add_argument("--misses", action="store_true", help="list every query below nDCG@10 1.0 with its top hits")
    args = parser.parse_args(argv)
    os.environ["WC_NAMESPACE"] = os.environ.get("WC_NAMESPACE") or f"benchrel{secrets.token_hex(3)}"
    sys.path[:0] = [str(ROOT / "libs"), str(ROOT)]
    from benchmarks.__main__ import _clean
    from benchmarks.harness import free_port
    from tools import infra
    from tools.runner import Platform
    from watercooler import auth, config

    env = {"WC_PROJECTIONS_METRICS_PORT": "0", "WC_STATS_METRICS_PORT": "0", "WC_THUMBNAILS_METRICS_PORT": "0", "WC_SEARCH_HTTP_PORT": str(free_port()), "WC_RATE_LIMIT": "0"}
    for service in config.SERVICES:
        env[f"WC_{service.upper()}_PORT"] = str(free_port())
        env[f"WC_{service.upper()}_METRICS_PORT"] = "0"
    os.environ.update(env)
    settings = config.load()
    up = infra.ensure_up(settings, progress=lambda message: print(f"[infra] {message}"))
    auth.ensure_dev_keys(settings)
    running = Platform(settings, log_dir=ROOT / "test-artifacts" / "bench" / "logs" / settings.namespace)
    try:
        running.start()
        result = run(settings)
    finally:
        running.stop()
        _clean(settings)
        if up and settings.infra_mode == "local":
            infra.ensure_down(settings)
    print(table(result))
    if args.misses:
        print("\n".join(misses(result)))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
