"""One gate for every read, without running the platform.

Every RPC of protos/ (from the generated descriptors) and every HTTP route of the search
service's HTTP view (services/search/http.py) must have a row in the authorization matrix
(docs/authorization.md, run by tests/integration/test_authorization_matrix.py). Every read
among them must have a case in the visibility matrix (tests/integration/test_visibility_matrix*.py),
declared with ``@covers(...)`` (see the convention at the top of test_visibility_matrix.py);
the reads of child items need a ``parent_changed`` case and the reads of flaggable items a
``hidden_by_flags`` case. A path outside both matrices is how reads leaked before."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

from google.protobuf import descriptor as d

from watercooler.config import SERVICES

ROOT = Path(__file__).resolve().parents[2]
AUTHORIZATION = ROOT / "docs" / "authorization.md"
VISIBILITY = sorted((ROOT / "tests" / "integration").glob("test_visibility_matrix*.py"))
HTTP = ROOT / "services" / "search" / "http.py"

# A read is an RPC whose verb (the method name's first word) only reads: AIP-131/132/231
# standard reads, and the custom read verbs in use. A read takes no request_id (AIP-155 is for
# changes); test_reads_and_request_ids_agree holds the two definitions to each other.
READ_VERBS = ("BatchGet", "Get", "List", "Search", "Suggest", "Trending", "Export", "Find", "Lookup", "Diff", "Watch")
# Changes that take no request_id, each for its reason (anything else without one is a read).
CHANGES_WITHOUT_REQUEST_ID = {
    "BatchCreateProfiles": "each of its CreateProfileRequests carries its own request_id",
    "RedeemInvitation": "the invitation code is the idempotency key",
}
# HTTP routes under /api/ read items; the others are the health probe and the dashboard's files.
HTTP_READ_PREFIX = "/api/"
KINDS = ("levels", "parent_changed", "hidden_by_flags", "confidential")
# Reads that show child items (comments, ratings, likes, replies) or counts of them: what a
# child shows follows its parent's current visibility, so each needs a case where the parent
# changed visibility after the child was written.
CHILD_ITEM_READS = {"GetComment", "ListComments", "GetPostStats", "Search", "GetStats", "GET /api/v1/search"}
# Reads that show (or count) items flags can hide (posts, microposts, comments, wiki pages, media
# items, status updates, jam ideas, threads and replies): each needs a case with an item hidden by flags.
FLAGGABLE_READS = {
    "GetPost", "GetMicropost", "ListComments", "SearchPosts", "GetPostStats", "Search", "Suggest", "Trending", "GetStats",
    "GET /api/v1/search", "GET /api/v1/suggest", "GET /api/v1/trending", "GET /api/v1/stats",
    "GetPage", "LookupPage", "ListRevisions", "GetRevision", "DiffRevisions", "GetMediaItem", "ListMediaItems", "ListWikiBacklinks",
    "GetViewCounts", "ListStatusUpdates", "GetNetworkFeed", "GetIdea", "SearchJamIdeas", "ListJamDiscussion", "GetJamLeaderboard",
}

# Reads that show (or count) items that carry a classification label (posts, microposts,
# bookmarks, status updates, media items, wiki spaces and so their pages) or their children: each needs a case where a
# CONFIDENTIAL item answers as absent to alumni and guests.
CLASSIFIED_READS = {"GetPost", "GetMicropost", "GetBookmark", "SearchBookmarks", "ListPostRevisions", "GetComment", "ListComments", "SearchPosts", "Search", "GetPostStats",
                    "ListStatusUpdates", "GetNetworkFeed", "GetMediaItem", "ListMediaItems", "GetSpace", "GetPage"}


def rpc_methods() -> dict[str, d.MethodDescriptor]:
    found: dict[str, d.MethodDescriptor] = {}
    for service in SERVICES:
        package = importlib.import_module(f"watercooler.{service}.v1")
        for module_info in pkgutil.iter_modules(package.__path__):
            if module_info.name.endswith("_pb2"):
                module = importlib.import_module(f"watercooler.{service}.v1.{module_info.name}")
                for service_descriptor in module.DESCRIPTOR.services_by_name.values():
                    for method in service_descriptor.methods:
                        assert method.name not in found, f"two RPCs named {method.name}: the matrices name RPCs by their short name"
                        found[method.name] = method
    assert len(found) > 100, "generated code not where expected (run make protos)"
    return found


def http_routes() -> set[str]:
    """``GET /path`` for every route services/search/http.py registers (read from its source)."""
    routes = set()
    for node in ast.walk(ast.parse(HTTP.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("add_get", "add_static"):
            path = node.args[0].value
            routes.add(f"GET {path}{{filename}}" if node.func.attr == "add_static" else f"GET {path}")
    assert "GET /api/v1/search" in routes, "services/search/http.py changed shape"
    return routes


def is_read(name: str) -> bool:
    if name.startswith("GET "):
        return name.split(" ", 1)[1].startswith(HTTP_READ_PREFIX)
    verb = re.match(r"[A-Z][a-z]+(?:Get)?", name)
    return bool(verb) and verb.group() in READ_VERBS


def documented() -> set[str]:
    """What the rows of docs/authorization.md name: `Rpc` and `GET /route` in the first column."""
    names = set()
    for line in AUTHORIZATION.read_text().splitlines():
        if line.startswith("|") and not line.startswith(("| RPC", "|---")):
            names |= set(re.findall(r"`([A-Z]\w+|GET /[^`]*)`", line.strip("|").split("|")[0].split("—")[0]))
    return names


def visibility_cases() -> dict[str, set[str]]:
    """read -> the kinds of the visibility-matrix cases that cover it, from each test's
    ``@covers("Rpc", "GET /route", kind="...")`` decorators (parsed, not run)."""
    covered: dict[str, set[str]] = {}
    for path in VISIBILITY:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for decorator in node.decorator_list:
                if not (isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == "covers"):
                    continue
                where = f"{path.name}:{node.lineno} {node.name}"
                assert node.name.startswith("test_"), f"{where}: @covers marks a test function"
                kinds = [k.value.value for k in decorator.keywords if k.arg == "kind"]
                assert len(kinds) == 1 and kinds[0] in KINDS, f"{where}: @covers(..., kind=one of {KINDS})"
                reads = [a.value for a in decorator.args]
                assert reads and all(isinstance(r, str) for r in reads), f"{where}: @covers names reads as string literals"
                for read in reads:
                    covered.setdefault(read, set()).add(kinds[0])
    return covered


def everything() -> set[str]:
    return set(rpc_methods()) | http_routes()


def test_reads_and_request_ids_agree():
    """The read set by verb and the descriptors agree: a read takes no request_id, and an
    RPC without one is a read unless it is a listed exception."""
    for name, method in rpc_methods().items():
        takes_request_id = "request_id" in method.input_type.fields_by_name
        if is_read(name):
            assert not takes_request_id, f"{name} is named like a read but takes a request_id"
        else:
            assert takes_request_id or name in CHANGES_WITHOUT_REQUEST_ID, f"{name} takes no request_id: a read with a verb not in READ_VERBS, or a change to list"


def test_every_rpc_and_http_route_has_a_row_in_the_authorization_matrix():
    names, rows = everything(), documented()
    assert not names - rows, f"no row in docs/authorization.md for: {sorted(names - rows)}"
    assert not rows - names, f"rows of docs/authorization.md naming no RPC or route: {sorted(rows - names)}"


def test_every_read_has_a_case_in_the_visibility_matrix():
    reads = {name for name in everything() if is_read(name)}
    assert len(reads) > 40
    covered = visibility_cases()
    assert not reads - set(covered), f"reads with no case in the visibility matrix: {sorted(reads - set(covered))}"
    assert not set(covered) - everything(), f"visibility cases naming no RPC or route: {sorted(set(covered) - everything())}"


def test_reads_of_child_and_flaggable_items_have_cases_of_those_kinds():
    reads = {name for name in everything() if is_read(name)}
    assert reads >= CHILD_ITEM_READS | FLAGGABLE_READS | CLASSIFIED_READS
    covered = visibility_cases()
    missing = sorted({f"{read}: parent_changed" for read in CHILD_ITEM_READS if "parent_changed" not in covered.get(read, set())}
                     | {f"{read}: hidden_by_flags" for read in FLAGGABLE_READS if "hidden_by_flags" not in covered.get(read, set())}
                     | {f"{read}: confidential" for read in CLASSIFIED_READS if "confidential" not in covered.get(read, set())})
    assert not missing, "visibility-matrix cases missing (see the convention at the top of tests/integration/test_visibility_matrix.py):\n" + "\n".join(missing)


def test_the_gate_reads_declarations_and_names_as_meant():
    assert is_read("GetPost") and is_read("BatchGetProfiles") and is_read("Trending") and is_read("GET /api/v1/jams/{jam}/pulse")
    assert not is_read("CreatePost") and not is_read("BatchCreateProfiles") and not is_read("GET /healthz") and not is_read("Getaway")
    tree = ast.parse('@covers("GetPost", "GET /api/v1/search", kind="hidden_by_flags")\ndef test_x(): pass\n')
    decorator = tree.body[0].decorator_list[0]
    assert [a.value for a in decorator.args] == ["GetPost", "GET /api/v1/search"] and decorator.keywords[0].value.value == "hidden_by_flags"
