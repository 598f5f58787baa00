"""A person's data exported, then erased by crypto-shredding (docs/personal-data.md), through the
real APIs, Kafka, Elasticsearch, the services' stores and the object store: once erased, and
again once every projection is rebuilt from the log, nothing anywhere yields their name or their
text, and the files they uploaded are gone."""

from __future__ import annotations

import json

import grpc
import pytest
from elasticsearch.helpers import scan

from services.search.readmodels import rebuild
from tests.conftest import eventually
from tests.integration.helpers import read_events, read_topic, rpc_error
from tests.integration.test_cli import cli
from tests.integration.test_jams_api import published_results, ts
from tests.integration.test_jams_stats import leaderboard_of
from tests.integration.test_media_content import get, objects_of, png, put
from tests.integration.test_search_unified import Stubs, far_word, unique
from watercooler.jams.v1 import jams_pb2 as jp
from watercooler.personaldata import FORMER_EMPLOYEE
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.profiles.v1 import graph_pb2 as gp
from watercooler.profiles.v1 import graph_pb2_grpc as gg
from watercooler.profiles.v1 import personal_data_pb2 as pdp
from watercooler.profiles.v1 import personal_data_pb2_grpc as pdg
from watercooler.profiles.v1 import profiles_pb2 as prp
from watercooler.search.v1 import personal_data_pb2 as spd
from watercooler.search.v1 import personal_data_pb2_grpc as spdg
from watercooler.search.v1 import search_pb2 as sp

pytestmark = pytest.mark.integration
V = pb.Audience


@pytest.fixture(scope="module")
def person(platform):
    """Nora writes one of each kind, a jam idea, a wiki page and a media item with a file too (her words are
    invented, so only she wrote them), with her department and expertise on her profile (and so on her blog), a
    link of her own saved and a reason for flagging Bob's comment; Bob likes her micropost, comments on her post
    and edits her page (his data, which stays)."""
    stubs = Stubs(platform)
    w = {kind: far_word() for kind in ("name", "title", "bio", "department", "expertise", "blog", "post", "micro", "comment", "status", "bookmark", "url",
                                    "flag", "idea", "pagetitle", "page", "media")}
    nora = unique("e")
    stubs.profiles.CreateProfile(prp.CreateProfileRequest(profile=prp.Profile(employee_id=nora, display_name=f"Nora {w['name']}",
                                                                           title=f"Chief {w['title']}", bio=f"I like {w['bio']}",
                                                                           department=f"{w['department']} Lab", expertise=[w["expertise"]])),
                                 metadata=platform.metadata())
    platform.accept_guidelines(nora)
    as_nora = platform.metadata(nora, "employee")
    bob, as_bob = stubs.person("Bob Keeps")
    blog = stubs.posts.CreateBlog(pb.CreateBlogRequest(blog=pb.Blog(handle=unique("b-"), title=f"{w['blog']} notes", visibility=V.INTERNAL)), metadata=as_nora).name
    post = stubs.post(as_nora, blog, f"On {w['post']}", f"Why {w['post']} matters.")
    micro = stubs.micro(as_nora, f"thinking about {w['micro']}")
    comment = stubs.posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=post, body=f"And {w['comment']} too")), metadata=as_nora).name
    bobs_comment = stubs.posts.CreateComment(pb.CreateCommentRequest(comment=pb.Comment(target=post, body="Well said")), metadata=as_bob).name
    stubs.posts.Like(pb.LikeRequest(target=micro), metadata=as_bob)
    graph = platform.stub(gg.GraphServiceStub, "profiles")
    graph.CreateStatusUpdate(gp.CreateStatusUpdateRequest(parent=f"profiles/{nora}", status_update=gp.StatusUpdate(text=f"feeling {w['status']}", visibility=gp.StatusUpdate.INTERNAL)),
                             metadata=as_nora)
    bookmark = stubs.posts.CreateBookmark(pb.CreateBookmarkRequest(bookmark=pb.Bookmark(url=f"https://example.com/{w['url']}", title=f"{w['bookmark']} list",
                                                                                      visibility=V.INTERNAL)), metadata=as_nora).name
    stubs.posts.FlagItem(pb.FlagItemRequest(name=bobs_comment, reason=f"rude about {w['flag']}"), metadata=as_nora)
    jam_id = unique("j")
    stubs.jams.CreateJam(jp.CreateJamRequest(jam_id=jam_id, jam=jp.Jam(title="Jam", vote_budget=3, top_n=3, open_time=ts(3600), voting_time=ts(7200), close_time=ts(9000))),
                         metadata=as_nora)
    idea = stubs.jams.CreateIdea(jp.CreateIdeaRequest(parent=f"jams/{jam_id}", idea=jp.Idea(title=f"Fund {w['idea']}", description=f"Because {w['idea']}.")),
                                 metadata=as_nora).name
    # Bob's vote on her idea: the jam stats (a recount after the erasure) keep it, under a tombstone title.
    for current in (jp.SCHEDULED, jp.OPEN):  # to voting (the phase named is the one it leaves)
        stubs.jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=f"jams/{jam_id}", phase=current), metadata=as_nora)
    stubs.jams.CastVote(jp.CastVoteRequest(jam=f"jams/{jam_id}", idea=idea), metadata=as_bob)
    # Closed: the published results copy her idea's title (sealed with her key), beside Bob's vote.
    stubs.jams.AdvanceJamPhase(jp.AdvanceJamPhaseRequest(name=f"jams/{jam_id}", phase=jp.VOTING), metadata=as_nora)
    results = published_results(stubs.jams, f"jams/{jam_id}", as_bob)
    assert [(row.idea, row.title, row.votes) for row in results.rows] == [(idea, f"Fund {w['idea']}", 1)]
    # A wiki page: her revision 1, Bob's 2, her 3 (the current one).
    space = stubs.wiki.CreateSpace(wp.CreateSpaceRequest(space=wp.Space(space_id=unique("s"), display_name="Shared guides", visibility=wp.INTERNAL)),
                                   metadata=as_nora).name
    page = stubs.wiki.CreatePage(wp.CreatePageRequest(page=wp.Page(space=space, title=f"{w['pagetitle']} guide", body=f"How to {w['page']}.")),
                                 metadata=as_nora).name
    stubs.wiki.EditPage(wp.EditPageRequest(name=page, base_revision=1, body="Bob's own words stay."), metadata=as_bob)
    stubs.wiki.EditPage(wp.EditPageRequest(name=page, base_revision=2, body=f"How to {w['page']}, again."), metadata=as_nora)
    # A media item and its file in the object store.
    media = stubs.media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=mp.MediaItem(title=f"{w['media']} photo", description=f"Of {w['media']}.",
                                                                                            kind=mp.MediaItem.IMAGE, visibility=wp.INTERNAL)),
                                          metadata=as_nora).name
    data = png(w["media"].encode())
    started = stubs.media.CreateUpload(mp.CreateUploadRequest(parent=media, upload=mp.Upload(size_bytes=len(data), content_type="image/png")), metadata=as_nora)
    assert put(started.upload_uri, started.upload_headers, data) == 200
    stubs.media.ConfirmUpload(mp.ConfirmUploadRequest(name=started.name), metadata=as_nora)
    link = stubs.media.CreateDownloadLink(mp.CreateDownloadLinkRequest(name=media, client="web"), metadata=as_bob)
    assert get(link.uri) == (200, data) and objects_of(platform, media)
    return dict(stubs=stubs, w=w, nora=nora, as_nora=as_nora, bob=bob, as_bob=as_bob, post=post, micro=micro, comment=comment, bobs_comment=bobs_comment,
                jam=f"jams/{jam_id}", idea=idea, page=page, media=media, link=link.uri, bookmark=bookmark)


def export(platform, name: str, md) -> spd.PersonalDataExport:
    return platform.stub(spdg.PersonalDataExportServiceStub, "search").ExportPersonalData(spd.ExportPersonalDataRequest(name=name), metadata=md)


def flag_reasons(platform, person) -> list[str]:
    """The reasons the audit trail shows for Nora's flags."""
    trail = person["stubs"].search.ListAuditEvents(sp.ListAuditEventsRequest(actor=f"profiles/{person['nora']}", page_size=100), metadata=platform.metadata())
    return [event.reason for event in trail.audit_events if event.event_type == "ItemFlagged"]


def everything_indexed(platform) -> str:
    """Every document of this run's namespace, as one text."""
    platform.es.indices.refresh(index=f"{platform.settings.namespace}-*")
    # Scrolled: in the whole suite the namespace holds tens of thousands of documents.
    found = scan(platform.es, index=f"{platform.settings.namespace}-*", query={"query": {"match_all": {}}}, size=5_000)
    return json.dumps([hit["_source"] for hit in found], ensure_ascii=False)


def none_of_her_words_indexed(platform, w: dict[str, str]) -> bool:
    """True when no document of this run's namespace holds any of her words; else which, where."""
    platform.es.indices.refresh(index=f"{platform.settings.namespace}-*")
    found = scan(platform.es, index=f"{platform.settings.namespace}-*", query={"query": {"match_all": {}}}, size=5_000)
    left = sorted({(kind, hit["_index"]) for hit in found for kind, written in w.items() if written in json.dumps(hit["_source"], ensure_ascii=False)})
    assert not left, left
    return True


def her_bookmarks(platform, person) -> list[str]:
    """Her bookmarks as Bob and as a service find them: SearchBookmarks by owner, and Search of
    the bookmark kind by author."""
    search, owner = person["stubs"].search, f"profiles/{person['nora']}"
    found = []
    for md in (person["as_bob"], platform.metadata()):
        page = search.SearchBookmarks(sp.SearchBookmarksRequest(owner=owner, page_size=50), metadata=md)
        found += [b.name for b in page.bookmarks] + ([f"total_size {page.total_size}"] if page.total_size else [])
        found += [h.name for h in search.Search(sp.SearchRequest(kinds=["bookmark"], author=owner), metadata=md).hits]
    return found


def stores(platform) -> bytes:
    """The bytes of the services' SQLite stores (and their write-ahead logs)."""
    files = sorted(platform.settings.service_data_dir.glob(f"{platform.settings.namespace}/*.sqlite*"))
    assert any(f.name == "posts.sqlite" for f in files) and any(f.name == "profiles.sqlite" for f in files), files
    return b"".join(f.read_bytes() for f in files)


def test_export_holds_what_she_wrote_and_is_hers_alone(platform, person):
    w, nora = person["w"], person["nora"]

    def complete():
        try:
            archive = export(platform, f"profiles/{nora}", person["as_nora"])
        except grpc.RpcError as error:  # NOT_FOUND until her profile is indexed
            raise AssertionError(error.code()) from None
        text = archive.archive.decode()
        assert all(written in text for written in w.values()), [k for k, v in w.items() if v not in text]
        return archive

    archive = eventually(complete, timeout=90, message="everything Nora wrote in her export")
    assert archive.content_type == "application/json" and archive.filename.endswith(".json") and archive.item_count >= 7
    body = json.loads(archive.archive)
    assert body["person"] == f"profiles/{nora}" and {"people", "posts", "comments", "statuses", "bookmarks", "wiki", "media"} <= set(body["items"])
    assert flag_reasons(platform, person) == [f"rude about {w['flag']}"]  # opened for the audit trail
    as_service = export(platform, f"profiles/{nora}", platform.metadata()).archive.decode()  # a service
    assert all(written in as_service for written in w.values())
    assert rpc_error(export, platform, f"profiles/{nora}", person["as_bob"]).code() == grpc.StatusCode.PERMISSION_DENIED
    assert rpc_error(export, platform, f"profiles/{unique('nobody')}", person["as_bob"]).code() == grpc.StatusCode.PERMISSION_DENIED  # tells nothing
    assert rpc_error(export, platform, f"profiles/{unique('nobody')}", platform.metadata()).code() == grpc.StatusCode.NOT_FOUND
    # Sealed where they are kept: neither the stores nor Kafka hold her words in the clear.
    assert not any(written.encode() in stores(platform) for written in w.values())
    for service in ("profiles", "posts", "jams"):
        raw = b"".join(record.value for record in read_topic(platform.settings, platform.topic(service)))
        assert not any(written.encode() in raw for written in w.values()), service


def test_erasure_leaves_nothing_of_her_even_after_every_projection_is_rebuilt(platform, person):
    w, nora = person["w"], person["nora"]
    test_export_holds_what_she_wrote_and_is_hers_alone(platform, person)  # all of it indexed (and sealed) first
    assert person["bookmark"] in her_bookmarks(platform, person)
    keys = platform.stub(pdg.PersonalDataServiceStub, "profiles")
    erase = pdp.ErasePersonRequest(name=f"profiles/{nora}", request_id=unique("r"))
    assert rpc_error(keys.ErasePerson, erase, metadata=person["as_nora"]).code() == grpc.StatusCode.PERMISSION_DENIED
    assert keys.ErasePerson(erase, metadata=platform.metadata()).keys_destroyed == 2
    assert keys.ErasePerson(pdp.ErasePersonRequest(name=f"profiles/{nora}"), metadata=platform.metadata()).keys_destroyed == 0  # again: nothing more
    from services.profiles.domainmodel import profile_id

    asked = pdp.GetPersonalDataKeysRequest(key_ids=[nora, str(profile_id(nora)), person["bob"]], create=True)
    assert [k.key_id for k in keys.GetPersonalDataKeys(asked, metadata=platform.metadata()).keys] == [person["bob"]]  # hers never again
    # What she wrote reads as a tombstone through the API at once.
    profile = person["stubs"].profiles.GetProfile(prp.GetProfileRequest(name=f"profiles/{nora}"), metadata=person["as_bob"])
    assert (profile.display_name, profile.title, profile.bio, profile.department, list(profile.expertise)) == (FORMER_EMPLOYEE, "", "", "", [])
    # Decrypting without the key fails: read from Kafka now, her fields open to tombstones only.
    texts = {e.type_name: e.payload for e in read_events(platform.settings, "posts") if getattr(e.payload, "author_id", "") == nora}
    assert texts["MicropostCreated"].text == "" and texts["PostCreated"].body == "" and texts["CommentCreated"].body == ""
    # The projections tombstone her fields as soon as they hear of the erasure: no rebuild needed.
    eventually(lambda: none_of_her_words_indexed(platform, w), timeout=120, interval=1, message="none of her words in any index before a rebuild")
    for written in w.values():
        assert not person["stubs"].find(platform.metadata(), query=written).hits, written
    # Her save counts toward no link, nor shows as an empty one; the trail keeps her flag, without its reason.
    links = person["stubs"].search.ListPopularLinks(sp.ListPopularLinksRequest(page_size=100), metadata=platform.metadata()).links
    assert not [link.url for link in links if not link.url or w["url"] in link.url]
    assert flag_reasons(platform, person) == [""]
    # Her bookmark, with nothing left of it (its url is hers too), is gone as a deleted one is.
    assert her_bookmarks(platform, person) == []
    # The jam stats counted the jams topic again: Bob's vote stays, on an idea without a title.
    rows = lambda: [(row.idea, row.title, row.votes) for row in leaderboard_of(person["stubs"].search, person["jam"], person["as_bob"]).rows]  # noqa: E731
    eventually(lambda: rows() == [(person["idea"], "", 1)], timeout=60, interval=0.5, message="her idea untitled on the leaderboard, Bob's vote kept")
    # The jam's frozen results: her idea's title a tombstone, Bob's vote counted (the jams service
    # forgets what it opened within ≤ 2 × the key cache time).
    results = lambda: [(row.idea, row.title, row.votes) for row in person["stubs"].jams.GetJamResults(  # noqa: E731
        jp.GetJamResultsRequest(name=person["jam"]), metadata=person["as_bob"]).rows]
    eventually(lambda: results() == [(person["idea"], "", 1)], timeout=90, interval=0.5, message="her idea's title gone from the published results")
    # The files she uploaded are deleted, and recorded so: no link, and the link already out no longer works.
    eventually(lambda: objects_of(platform, person["media"]) == [], timeout=90, interval=0.5, message="her uploaded file deleted from the object store")
    link = mp.CreateDownloadLinkRequest(name=person["media"], client="web")
    assert rpc_error(person["stubs"].media.CreateDownloadLink, link, metadata=person["as_bob"]).code() == grpc.StatusCode.NOT_FOUND
    assert get(person["link"])[0] == 404
    # Her wiki revisions read as tombstones (the current one too, so the page shows an empty text); Bob's stays.
    wiki = person["stubs"].wiki

    def revisions():
        return [wiki.GetRevision(wp.GetRevisionRequest(name=person["page"], revision=n), metadata=person["as_bob"]).body for n in (1, 2, 3)]

    eventually(lambda: revisions() == ["", "Bob's own words stay.", ""], timeout=90, interval=0.5, message="her revisions tombstones, Bob's kept")
    page = wiki.GetPage(wp.GetPageRequest(name=person["page"]), metadata=person["as_bob"])
    assert (page.title, page.body, page.revision) == ("", "", 3)
    # And every read model rebuilt by replaying the log: they stay tombstones.
    result = cli("reindex", *rebuild.names())  # the projections and the counters, in one run
    assert result.returncode == 0, result.stderr[-2000:]
    assert [line.split()[1].rstrip(":") for line in result.stdout.splitlines() if line.startswith("rebuilt ")] == rebuild.names()
    # (the jam stats count the jams topic again on their own once they hear of the erasure)
    eventually(lambda: none_of_her_words_indexed(platform, w), timeout=120, interval=1, message="none of her words in any index")
    indexed = everything_indexed(platform)
    assert FORMER_EMPLOYEE in indexed and nora in indexed  # the tombstone, named by her (pseudonymous) id
    # What others did stays: Bob's comment on her post and his like of her micropost.
    assert "Well said" in indexed
    likes = platform.es.search(index=platform.alias("reactions"), query={"term": {"target": person["micro"]}})
    assert likes["hits"]["total"]["value"] == 1
    assert her_bookmarks(platform, person) == []  # replayed, it opens to its tombstone: deleted again
    # She can write nothing more, once the posts service's copy of her key has expired
    # (WC_PERSONAL_KEY_CACHE_SECONDS: 30 s by default, 10 s on the test platform; docs/personal-data.md).
    micro = pb.CreateMicropostRequest(micropost=pb.Micropost(text="still here?", visibility=V.INTERNAL))

    def refused():
        try:
            person["stubs"].posts.CreateMicropost(micro, metadata=person["as_nora"])
        except grpc.RpcError as error:
            return error.code() == grpc.StatusCode.FAILED_PRECONDITION and "erased" in error.details()
        raise AssertionError("still accepted")

    eventually(refused, timeout=60, interval=0.5, message="an erased person's write refused")
    # The posts service forgot what it held in memory of hers, too (docs/personal-data.md: ≤ 2 × the cache time).
    shown = lambda: person["stubs"].posts.GetMicropost(pb.GetMicropostRequest(name=person["micro"]), metadata=person["as_bob"]).text  # noqa: E731
    eventually(lambda: shown() == "", timeout=90, interval=0.5, message="her micropost's text gone from the posts service")
    # Her bookmark by name: not found, for Bob and for a service, as a deleted one.
    for md in (person["as_bob"], platform.metadata()):
        error = rpc_error(person["stubs"].posts.GetBookmark, pb.GetBookmarkRequest(name=person["bookmark"]), metadata=md)
        assert error.code() == grpc.StatusCode.NOT_FOUND, error
    # And the search API finds none of her words, nor counts her save.
    for written in w.values():
        assert not person["stubs"].find(platform.metadata(), query=written).hits, written
    links = person["stubs"].search.ListPopularLinks(sp.ListPopularLinksRequest(page_size=100), metadata=platform.metadata()).links
    assert not [link.url for link in links if not link.url or w["url"] in link.url]
    assert flag_reasons(platform, person) == [""]
    assert not any(written.encode() in stores(platform) for written in w.values())


def test_keys_and_erasure_are_for_services_only(platform, person):
    keys = platform.stub(pdg.PersonalDataServiceStub, "profiles")
    error = rpc_error(keys.GetPersonalDataKeys, pdp.GetPersonalDataKeysRequest(key_ids=[person["bob"]]), metadata=person["as_bob"])
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = rpc_error(keys.GetPersonalDataKeys, pdp.GetPersonalDataKeysRequest(key_ids=["a:b"]), metadata=platform.metadata())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "key_ids[0]" in error.details()
    error = rpc_error(keys.ErasePerson, pdp.ErasePersonRequest(name=f"profiles/{unique('nobody')}"), metadata=platform.metadata())
    assert error.code() == grpc.StatusCode.NOT_FOUND

