"""Visibility matrix: the personal data export (docs/personal-data.md). An export is the person's
own data at every level (PRIVATE, drafts included) for them and services, nobody else's, and
refused to everyone else whatever the person's items' levels."""

from __future__ import annotations

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import rpc_error
from tests.integration.test_search_unified import Stubs, unique, word
from tests.integration.test_visibility_matrix import covers
from watercooler.posts.v1 import posts_pb2 as pb
from watercooler.profiles.v1 import personal_data_pb2 as pdp
from watercooler.profiles.v1 import personal_data_pb2_grpc as pdg
from watercooler.search.v1 import personal_data_pb2 as spd
from watercooler.search.v1 import personal_data_pb2_grpc as spdg
from watercooler.search.v1 import search_pb2 as sp

pytestmark = pytest.mark.integration
V = pb.Audience


@covers("ExportPersonalData", "GetPersonalDataKeys", kind="levels")
def test_an_export_holds_the_persons_own_items_at_every_level_for_them_and_services_only(platform):
    s = Stubs(platform)
    ana, as_ana = s.person("Ana Levels")
    bob, as_bob = s.person("Bob Levels")
    words = {level: word(8) for level in ("private", "internal", "draft", "bobs", "bobs_flag")}
    s.micro(as_ana, f"private {words['private']}", visibility=V.PRIVATE)
    internal = s.micro(as_ana, f"internal {words['internal']}", visibility=V.INTERNAL)
    # Bob flags it: the trail of her item says so, with his reason, which is his words, not hers.
    s.posts.FlagItem(pb.FlagItemRequest(name=internal, reason=f"dull {words['bobs_flag']}"), metadata=as_bob)
    s.post(as_ana, s.blog(as_ana), f"draft {words['draft']}", "not yet", publish=False)
    s.micro(as_bob, f"bob's own {words['bobs']}", visibility=V.PRIVATE)
    exporter = platform.stub(spdg.PersonalDataExportServiceStub, "search")

    def exported(md) -> str:
        try:
            return exporter.ExportPersonalData(spd.ExportPersonalDataRequest(name=f"profiles/{ana}"), metadata=md).archive.decode()
        except grpc.RpcError as error:
            raise AssertionError(error.code()) from None

    def all_hers():
        text = exported(as_ana)
        assert all(words[level] in text for level in ("private", "internal", "draft")), text[:200]
        return text

    assert words["bobs"] not in eventually(all_hers, timeout=90, message="every level of Ana's items in her export")
    trail = lambda: [e.reason for e in s.search.ListAuditEvents(sp.ListAuditEventsRequest(resource=internal), metadata=platform.metadata()).audit_events  # noqa: E731
                     if e.event_type == "ItemFlagged"]
    eventually(lambda: trail() == [f"dull {words['bobs_flag']}"], timeout=60, message="Bob's flag of her item in the audit trail")
    assert words["bobs_flag"] not in exported(as_ana)
    assert words["private"] in exported(platform.metadata())
    for md in (as_bob, platform.metadata(unique("g"), "guest"), platform.metadata(unique("a"), "alumni"), platform.metadata(ana, "guest")):
        error = rpc_error(exporter.ExportPersonalData, spd.ExportPersonalDataRequest(name=f"profiles/{ana}"), metadata=md)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    keys = platform.stub(pdg.PersonalDataServiceStub, "profiles")
    for md in (as_ana, as_bob, platform.metadata(unique("g"), "guest")):
        assert rpc_error(keys.GetPersonalDataKeys, pdp.GetPersonalDataKeysRequest(key_ids=[ana]), metadata=md).code() == grpc.StatusCode.PERMISSION_DENIED
    assert [k.key_id for k in keys.GetPersonalDataKeys(pdp.GetPersonalDataKeysRequest(key_ids=[ana]), metadata=platform.metadata()).keys] == [ana]
