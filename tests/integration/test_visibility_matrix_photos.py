"""Photos and avatars are media items, named ``media/{id}``, and follow the item's *current*
visibility on every read path.

A status update's photo must be an item its author may see when they post; afterwards the
status is shown to its own audience, and its photo only to those of them who may see the item
now (ListStatusUpdates, GetNetworkFeed, the DeleteStatusUpdate answer): made RESTRICTED, the
photo is gone for everyone but the owner and services; removed, for everyone. An avatar is a
PUBLIC image of the person's own (everyone reads profiles), shown with the profile
(GetProfile, BatchGetProfiles, GetManagementChain) while the reader may see the item."""

from __future__ import annotations

import uuid

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, read_events, rpc_error
from tests.integration.test_search_unified import Stubs, unique
from tests.integration.test_visibility_matrix import covers
from watercooler.posts.v1 import media_pb2 as mp
from watercooler.posts.v1 import wiki_pb2 as wp
from watercooler.profiles.v1 import graph_pb2 as gp
from watercooler.profiles.v1 import graph_pb2_grpc as gg
from watercooler.profiles.v1 import profiles_pb2 as prp
from watercooler.search.v1 import search_pb2 as sp

pytestmark = pytest.mark.integration
SV = gp.StatusUpdate
Code = grpc.StatusCode


@pytest.fixture(scope="module")
def photos(platform):
    """Ana (who shares photos), Bob (who follows her), and the other readers."""
    s = Stubs(platform)
    s.graph = platform.stub(gg.GraphServiceStub, "profiles")
    ana, as_ana = s.person("Ana Photographer")
    bob, as_bob = s.person("Bob Follower")
    s.graph.Follow(gp.FollowRequest(parent=f"profiles/{bob}", target=f"profiles/{ana}"), metadata=as_bob)
    readers = {"ana": as_ana, "bob": as_bob, "guest": platform.metadata(unique("g"), "guest"), "alumni": platform.metadata(unique("al"), "alumni"),
               "service": platform.metadata()}
    return s, ana, bob, readers


def media_item(s: Stubs, md, visibility, kind=mp.MediaItem.IMAGE) -> str:
    item = mp.MediaItem(title=f"Picture {unique('m')}", kind=kind, size_bytes=10, content_type="image/jpeg", visibility=visibility, storage_uri="s3://b/p")
    return s.media.RegisterMediaItem(mp.RegisterMediaItemRequest(media_item=item), metadata=md).name


def make(s: Stubs, md, name: str, visibility) -> None:
    s.media.UpdateMediaItem(mp.UpdateMediaItemRequest(media_item=mp.MediaItem(name=name, visibility=visibility), update_mask={"paths": ["visibility"]}), metadata=md)


def share(s: Stubs, author: str, md, photo: str, text: str = "look", visibility=SV.PUBLIC) -> gp.StatusUpdate:
    request = gp.CreateStatusUpdateRequest(parent=f"profiles/{author}", status_update=gp.StatusUpdate(text=text, photo=photo, visibility=visibility), request_id=str(uuid.uuid4()))
    return s.graph.CreateStatusUpdate(request, metadata=md)


def test_a_status_photo_must_be_an_item_the_author_may_see_now(platform, photos):
    s, ana, bob, readers = photos
    theirs = media_item(s, readers["bob"], wp.RESTRICTED)
    removed = media_item(s, readers["ana"], wp.PUBLIC)
    s.media.RemoveMediaItem(mp.RemoveMediaItemRequest(name=removed), metadata=readers["ana"])
    for photo in (theirs, removed, f"media/{uuid.uuid4()}"):  # not hers to see, removed, never was: all alike
        error = rpc_error(share, s, ana, readers["ana"], photo)
        assert (error.code(), bad_request_fields(error)) == (Code.NOT_FOUND, ["status_update.photo"]), (photo, error.details())
    error = rpc_error(share, s, ana, readers["ana"], "mediaItems/" + theirs.removeprefix("media/"))
    assert (error.code(), bad_request_fields(error)) == (Code.INVALID_ARGUMENT, ["status_update.photo"])
    # A colleague's INTERNAL item is hers to see, hence to share; a service shares as the author.
    colleagues = media_item(s, readers["bob"], wp.INTERNAL)
    assert share(s, ana, readers["ana"], colleagues, text="colleague's").photo == colleagues
    error = rpc_error(share, s, ana, readers["service"], theirs)
    assert error.code() == Code.NOT_FOUND, "a service posting for Ana may share only what Ana may see"
    # Nothing of the refusals was stored.
    listed = lambda: [u.text for u in s.search.ListStatusUpdates(sp.ListStatusUpdatesRequest(person=f"profiles/{ana}"), metadata=readers["service"]).status_updates]  # noqa: E731
    eventually(lambda: "colleague's" in listed(), message="the accepted status indexed")
    assert listed() == ["colleague's"]


@covers("ListStatusUpdates", "GetNetworkFeed", kind="parent_changed")
def test_a_status_photo_follows_its_item_made_restricted_then_removed_on_every_read_path(platform, photos):
    s, ana, bob, readers = photos
    picture = media_item(s, readers["ana"], wp.PUBLIC)
    status = share(s, ana, readers["ana"], picture, text="from the summit")
    assert status.photo == picture

    def seen() -> dict[str, object]:
        """reader -> the photo each read path shows with the status (None: the status is absent)."""
        out: dict[str, object] = {}
        for who, md in readers.items():
            listed = s.search.ListStatusUpdates(sp.ListStatusUpdatesRequest(person=f"profiles/{ana}"), metadata=md).status_updates
            out[f"list/{who}"] = next((u.photo for u in listed if u.name == status.name), None)
        for who in ("bob", "service"):  # Bob's feed, read by him and by a service
            feed = s.search.GetNetworkFeed(sp.GetNetworkFeedRequest(person=f"profiles/{bob}"), metadata=readers[who]).items
            out[f"feed/{who}"] = next((i.photo for i in feed if i.name == status.name), None)
        return out

    def expect(shown_to: set[str], message: str) -> None:
        def check() -> bool:
            got = seen()
            want = {path: picture if path.split("/")[1] in shown_to else "" for path in got}
            assert got == want, got
            return True

        eventually(check, timeout=90, message=message)

    expect(set(readers), "a PUBLIC item's photo is shown to all who see the status")
    make(s, readers["ana"], picture, wp.RESTRICTED)
    expect({"ana", "service"}, "RESTRICTED: the status stays, its photo only for the owner and services")
    s.media.RemoveMediaItem(mp.RemoveMediaItemRequest(name=picture), metadata=readers["ana"])
    expect(set(), "removed: nobody's, the status shown as if it had no photo")
    deleted = s.graph.DeleteStatusUpdate(gp.DeleteStatusUpdateRequest(name=status.name), metadata=readers["ana"])
    assert deleted.deleted and deleted.photo == ""


@covers("GetProfile", "BatchGetProfiles", "GetManagementChain", kind="parent_changed")
def test_an_avatar_is_a_public_image_of_ones_own_shown_while_the_reader_may_see_it(platform, photos):
    s, ana, bob, readers = photos
    name = f"profiles/{ana}"
    before = s.profiles.GetProfile(prp.GetProfileRequest(name=name), metadata=readers["ana"])
    refused = {
        "mediaItems/x1": (Code.INVALID_ARGUMENT, "the old form"),
        f"media/{uuid.uuid4()}": (Code.NOT_FOUND, "no such item"),
        media_item(s, readers["bob"], wp.RESTRICTED): (Code.NOT_FOUND, "not hers to see: as if absent"),
        media_item(s, readers["bob"], wp.PUBLIC): (Code.PERMISSION_DENIED, "someone else's"),
        media_item(s, readers["ana"], wp.INTERNAL): (Code.FAILED_PRECONDITION, "alumni and guests could not see it"),
        media_item(s, readers["ana"], wp.PUBLIC, kind=mp.MediaItem.VIDEO): (Code.FAILED_PRECONDITION, "not an image"),
    }
    for photo, (code, why) in refused.items():
        error = rpc_error(s.profiles.SetProfilePhoto, prp.SetProfilePhotoRequest(name=name, photo=photo), metadata=readers["ana"])
        assert (error.code(), bad_request_fields(error)) == (code, ["photo"]), (why, error.details())
    assert s.profiles.GetProfile(prp.GetProfileRequest(name=name), metadata=readers["ana"]).etag == before.etag  # nothing recorded

    portrait = media_item(s, readers["ana"], wp.PUBLIC)
    assert s.profiles.SetProfilePhoto(prp.SetProfilePhotoRequest(name=name, photo=portrait, request_id=str(uuid.uuid4())), metadata=readers["ana"]).photo == portrait
    report, _ = s.person("Carl Report")
    s.profiles.UpdateProfile(prp.UpdateProfileRequest(profile=prp.Profile(name=f"profiles/{report}", manager=name), update_mask={"paths": ["manager"]}), metadata=readers["service"])

    def avatars(md) -> set[str]:
        """The avatar each profile read shows of Ana."""
        return {s.profiles.GetProfile(prp.GetProfileRequest(name=name), metadata=md).photo,
                s.profiles.BatchGetProfiles(prp.BatchGetProfilesRequest(names=[name]), metadata=md).profiles[0].photo,
                s.profiles.GetManagementChain(prp.GetManagementChainRequest(name=f"profiles/{report}"), metadata=md).managers[0].photo}

    assert all(avatars(md) == {portrait} for md in readers.values())
    eventually(lambda: any(e.type_name == "ProfilePhotoSet" and e.payload.photo == portrait for e in read_events(platform.settings, "profiles")), message="ProfilePhotoSet published")

    make(s, readers["ana"], portrait, wp.RESTRICTED)
    eventually(lambda: {who: avatars(md) for who, md in readers.items()} == {"ana": {portrait}, "service": {portrait}, "bob": {""}, "guest": {""}, "alumni": {""}},
               message="the avatar made RESTRICTED: shown to its owner and services only")
    assert s.profiles.SetProfilePhoto(prp.SetProfilePhotoRequest(name=name, photo=""), metadata=readers["ana"]).photo == ""
    assert avatars(readers["service"]) == {""}
