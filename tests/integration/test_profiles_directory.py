"""Profiles completed: batch get, the directory (by department, country, manager) in
collation order for every script, the management chain, alumni, concurrent updates."""

from __future__ import annotations

import threading
import uuid

import grpc
import pytest

from tests.conftest import eventually
from tests.integration.helpers import bad_request_fields, read_events, rpc_error
from watercooler.profiles.v1 import graph_pb2 as gp
from watercooler.profiles.v1 import graph_pb2_grpc as gg
from watercooler.profiles.v1 import profiles_pb2 as pp
from watercooler.profiles.v1 import profiles_pb2_grpc as pg
from watercooler.search.v1 import search_pb2 as sp
from watercooler.search.v1 import search_pb2_grpc as sg

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def profiles(platform):
    return platform.stub(pg.ProfileServiceStub, "profiles")


@pytest.fixture()
def search(platform):
    return platform.stub(sg.SearchServiceStub, "search")


def create(profiles, platform, employee_id, **fields):
    return profiles.CreateProfile(pp.CreateProfileRequest(profile=pp.Profile(employee_id=employee_id, **fields)), metadata=platform.metadata())


# Written out by hand: accents sort with their base letter, case does not come first,
# Greek and Cyrillic by their alphabets (Ё right after Е), then Han ideographs.
DIRECTORY_ORDER = [
    "Ängel, Max",
    "Anger, Jon",
    "de Vries, Anna",
    "Dubois, Émile",
    "Éclair, Zoe",
    "Zola, Émile",
    "Άλφα, Ελένη",
    "Βήτα, Γιώργος",
    "Ωμέγα, Νίκος",
    "Егоров, Пётр",
    "Ёлкин, Иван",
    "Жуков, Олег",
    "山田太郎",
    "李伟",
    "王芳",
]


def test_directory_lists_a_department_in_collation_order_for_every_script(platform, profiles, search):
    department = unique("Dir")
    ids = {}
    for i, sort_name in enumerate(reversed(DIRECTORY_ORDER)):  # created in the wrong order on purpose
        employee = unique(f"d{i}-")
        ids[sort_name] = employee
        create(profiles, platform, employee, display_name=sort_name.split(", ")[-1] + (" " + sort_name.split(", ")[0] if ", " in sort_name else ""), sort_name=sort_name, department=department, country="DE")
    metadata = platform.metadata(unique("reader"), "employee")

    def listed(page_size=100):
        names, token = [], ""
        while True:
            page = search.ListPeople(sp.ListPeopleRequest(department=department, page_size=page_size, page_token=token), metadata=metadata)
            names.extend(p.sort_name for p in page.people)
            assert page.total_size == len(DIRECTORY_ORDER)
            token = page.next_page_token
            if not token:
                return names

    eventually(lambda: len(listed()) == len(DIRECTORY_ORDER), message="directory indexed")
    assert listed() == DIRECTORY_ORDER
    assert listed(page_size=4) == DIRECTORY_ORDER  # the same across page boundaries
    # Byte order would differ: the test would catch a plain keyword sort.
    assert sorted(DIRECTORY_ORDER) != DIRECTORY_ORDER


def test_batch_create_is_all_or_nothing_idempotent_per_request_and_published_once(platform, profiles, search):
    ceo, vp, dev, taken = (unique(p) for p in ("ceo", "vp", "dev", "taken"))
    create(profiles, platform, taken, display_name="Already Here")
    metadata = platform.metadata()

    def item(employee_id, request_id="", **fields):
        return pp.CreateProfileRequest(profile=pp.Profile(employee_id=employee_id, **fields), request_id=request_id)

    def refused(requests, code, field):
        error = rpc_error(profiles.BatchCreateProfiles, pp.BatchCreateProfilesRequest(requests=requests), metadata=metadata)
        assert (error.code(), bad_request_fields(error)) == (code, [field]), error.details()

    # Each refusal names the request and its field, and saves none of the batch.
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    refused([item(ceo, display_name="Chief"), item(dev, display_name="Dev", manager=f"profiles/{vp}"), item(vp, display_name="Vice")], invalid, "requests[1].profile.manager")
    refused([item(ceo, display_name="Chief"), item(vp, display_name="")], invalid, "requests[1].profile.display_name")
    refused([item(ceo, display_name="Chief"), item(ceo, display_name="Again")], invalid, "requests[1].profile.employee_id")
    refused([item(ceo, "r1", display_name="Chief"), item(vp, "r1", display_name="Vice")], invalid, "requests[1].request_id")
    refused([item(ceo, display_name="Chief"), item(vp, manager="people/nobody", display_name="Vice")], invalid, "requests[1].profile.manager")
    refused([item(ceo, display_name="Chief"), item(taken, display_name="Twice")], grpc.StatusCode.ALREADY_EXISTS, "requests[1].profile.employee_id")
    refused([], invalid, "requests")
    refused([item(f"{ceo}-{n}", display_name="Many") for n in range(1001)], invalid, "requests")
    for employee_id in (ceo, vp, dev):
        assert rpc_error(profiles.GetProfile, pp.GetProfileRequest(name=f"profiles/{employee_id}"), metadata=metadata).code() == grpc.StatusCode.NOT_FOUND

    # Managers first: a manager created earlier in the same batch is known.
    batch = pp.BatchCreateProfilesRequest(requests=[
        item(ceo, f"{ceo}-r", display_name="Chief", country="US"),
        item(vp, f"{vp}-r", display_name="Vice", manager=f"profiles/{ceo}", country="US"),
        item(dev, f"{dev}-r", display_name="Dev", manager=f"profiles/{vp}", country="FR"),
    ])
    created = profiles.BatchCreateProfiles(batch, metadata=metadata)
    assert [p.name for p in created.profiles] == [f"profiles/{ceo}", f"profiles/{vp}", f"profiles/{dev}"]
    chain = profiles.GetManagementChain(pp.GetManagementChainRequest(name=f"profiles/{dev}"), metadata=metadata)
    assert [p.employee_id for p in chain.managers] == [vp, ceo]

    # A retried batch, or one of its requests retried alone, returns the first result.
    assert profiles.BatchCreateProfiles(batch, metadata=metadata) == created
    assert profiles.CreateProfile(batch.requests[1], metadata=metadata) == created.profiles[1]
    reused = pp.BatchCreateProfilesRequest(requests=[batch.requests[0], item(vp, f"{vp}-r", display_name="Someone Else")])
    refused(list(reused.requests), invalid, "requests[1].request_id")
    # Each profile was stored and published once, and is searchable.
    def reports_of_ceo():
        return {p.profile for p in search.ListPeople(sp.ListPeopleRequest(manager=f"profiles/{ceo}"), metadata=metadata).people}

    eventually(lambda: reports_of_ceo() == {f"profiles/{vp}"}, message="the batch indexed")
    mine = {ceo, vp, dev}
    published = [e for e in read_events(platform.settings, "profiles") if e.type_name == "ProfileCreated" and e.payload.employee_id in mine]
    assert sorted(e.payload.employee_id for e in published) == sorted(mine)


def test_batch_get_direct_reports_and_the_management_chain(platform, profiles, search):
    ceo, vp, lead, dev1, dev2 = (unique(p) for p in ("ceo", "vp", "lead", "dev", "dev"))
    create(profiles, platform, ceo, display_name="Chief", country="US")
    create(profiles, platform, vp, display_name="Vice", manager=f"profiles/{ceo}", country="US")
    create(profiles, platform, lead, display_name="Lead", manager=f"profiles/{vp}", country="FR")
    create(profiles, platform, dev1, display_name="Zed Dev", manager=f"profiles/{lead}", country="FR")
    create(profiles, platform, dev2, display_name="Abe Dev", manager=f"profiles/{lead}", country="FR")
    metadata = platform.metadata(dev1, "employee")

    batch = profiles.BatchGetProfiles(pp.BatchGetProfilesRequest(names=[f"profiles/{dev2}", f"profiles/{ceo}", f"profiles/{dev2}"]), metadata=metadata)
    assert [p.employee_id for p in batch.profiles] == [dev2, ceo, dev2]
    missing = rpc_error(profiles.BatchGetProfiles, pp.BatchGetProfilesRequest(names=[f"profiles/{ceo}", "profiles/nobody-at-all"]), metadata=metadata)
    assert missing.code() == grpc.StatusCode.NOT_FOUND and bad_request_fields(missing) == ["names[1]"]
    too_many = rpc_error(profiles.BatchGetProfiles, pp.BatchGetProfilesRequest(names=[f"profiles/{ceo}"] * 101), metadata=metadata)
    assert too_many.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(too_many) == ["names"]

    chain = profiles.GetManagementChain(pp.GetManagementChainRequest(name=f"profiles/{dev1}"), metadata=metadata)
    assert [p.employee_id for p in chain.managers] == [lead, vp, ceo]
    assert list(profiles.GetManagementChain(pp.GetManagementChainRequest(name=f"profiles/{ceo}"), metadata=metadata).managers) == []

    def reports():
        page = search.ListPeople(sp.ListPeopleRequest(manager=f"profiles/{lead}"), metadata=metadata)
        return [p.display_name for p in page.people]

    eventually(lambda: len(reports()) == 2, message="direct reports indexed")
    assert reports() == ["Abe Dev", "Zed Dev"]
    by_country = eventually(lambda: search.ListPeople(sp.ListPeopleRequest(country="fr", manager=f"profiles/{vp}"), metadata=metadata).people, message="lead indexed")
    assert [p.profile for p in by_country] == [f"profiles/{lead}"] and by_country[0].manager == f"profiles/{vp}"

    # Moving the CEO under the developer would close a loop: refused, nothing stored.
    own = platform.metadata(ceo, "employee")
    current = profiles.GetProfile(pp.GetProfileRequest(name=f"profiles/{ceo}"), metadata=own)
    cycle = rpc_error(profiles.UpdateProfile, pp.UpdateProfileRequest(profile=pp.Profile(name=f"profiles/{ceo}", manager=f"profiles/{dev1}"), update_mask={"paths": ["manager"]}), metadata=own)
    assert cycle.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_request_fields(cycle) == ["profile.manager"]
    assert profiles.GetProfile(pp.GetProfileRequest(name=f"profiles/{ceo}"), metadata=own).etag == current.etag


def test_alumni_stay_readable_and_searchable_can_connect_but_not_publish_internally(platform, profiles, search):
    leaver, friend = unique("alum"), unique("friend")
    department = unique("Alu")
    create(profiles, platform, leaver, display_name="Ottilie Leaver", department=department, expertise=["cobol"])
    create(profiles, platform, friend, display_name="Frida Friend", department=department)
    stranger = platform.metadata(friend, "employee")
    denied = rpc_error(profiles.LeaveCompany, pp.LeaveCompanyRequest(name=f"profiles/{leaver}"), metadata=stranger)
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED

    left = profiles.LeaveCompany(pp.LeaveCompanyRequest(name=f"profiles/{leaver}", reason="retired", request_id=str(uuid.uuid4())), metadata=platform.metadata())
    assert left.state == pp.Profile.ALUMNI and left.display_name == "Ottilie Leaver"
    again = rpc_error(profiles.LeaveCompany, pp.LeaveCompanyRequest(name=f"profiles/{leaver}"), metadata=platform.metadata())
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert profiles.GetProfile(pp.GetProfileRequest(name=f"profiles/{leaver}"), metadata=stranger).state == pp.Profile.ALUMNI

    def alumni_hit():
        hits = search.SearchPeople(sp.SearchPeopleRequest(query="ottilie", department=department), metadata=stranger).people
        return [h for h in hits if h.alumni]

    eventually(alumni_hit, message="alumni flag in search")
    eventually(lambda: search.ListPeople(sp.ListPeopleRequest(department=department), metadata=stranger).total_size == 2, message="both indexed")
    only_alumni = search.ListPeople(sp.ListPeopleRequest(department=department, state=sp.ListPeopleRequest.ALUMNI_ONLY), metadata=stranger)
    only_active = search.ListPeople(sp.ListPeopleRequest(department=department, state=sp.ListPeopleRequest.ACTIVE_ONLY), metadata=stranger)
    assert [p.profile for p in only_alumni.people] == [f"profiles/{leaver}"]
    assert [p.profile for p in only_active.people] == [f"profiles/{friend}"]
    # Find-an-expert leaves alumni out unless asked.
    assert not search.FindExperts(sp.FindExpertsRequest(topic="cobol"), metadata=stranger).people
    assert [p.profile for p in search.FindExperts(sp.FindExpertsRequest(topic="cobol", include_alumni=True), metadata=stranger).people] == [f"profiles/{leaver}"]

    graph = platform.stub(gg.GraphServiceStub, "profiles")
    platform.accept_guidelines(leaver)
    as_alumnus = platform.metadata(leaver, "alumni")
    asked = graph.RequestConnection(gp.RequestConnectionRequest(parent=f"profiles/{leaver}", target=f"profiles/{friend}"), metadata=as_alumnus)
    assert asked.state == gp.Connection.PENDING
    internal = rpc_error(
        graph.CreateStatusUpdate,
        gp.CreateStatusUpdateRequest(parent=f"profiles/{leaver}", status_update=gp.StatusUpdate(text="insider news", visibility=gp.StatusUpdate.INTERNAL)),
        metadata=as_alumnus,
    )
    assert internal.code() == grpc.StatusCode.PERMISSION_DENIED and bad_request_fields(internal) == ["status_update.visibility"]
    # Even with a service token the alumni profile may not publish internally.
    via_service = rpc_error(
        graph.CreateStatusUpdate,
        gp.CreateStatusUpdateRequest(parent=f"profiles/{leaver}", status_update=gp.StatusUpdate(text="insider news", visibility=gp.StatusUpdate.INTERNAL)),
        metadata=platform.metadata(),
    )
    assert via_service.code() == grpc.StatusCode.PERMISSION_DENIED
    public = graph.CreateStatusUpdate(gp.CreateStatusUpdateRequest(parent=f"profiles/{leaver}", status_update=gp.StatusUpdate(text="hello from the outside", visibility=gp.StatusUpdate.PUBLIC)), metadata=as_alumnus)
    assert public.visibility == gp.StatusUpdate.PUBLIC

    def posted():
        return [e for e in read_events(platform.settings, "profiles") if e.type_name == "StatusUpdatePosted" and e.payload.author_id == leaver]

    # The refused INTERNAL updates stored nothing: only the public one reached the log.
    assert [e.payload.visibility for e in eventually(posted, message="status in Kafka")] == ["PUBLIC"]

def test_concurrent_updates_of_one_profile_lose_nothing(platform, profiles):
    employee = unique("conc")
    created = create(profiles, platform, employee, display_name="Con Current")
    metadata = platform.metadata(employee, "employee")
    fields = ["title", "department", "bio", "country"]
    values = {"title": "Architect", "department": "Research", "bio": "Writes things.", "country": "JP"}
    codes: list[grpc.StatusCode] = []
    barrier = threading.Barrier(len(fields))

    def stale_writer(field: str) -> None:
        barrier.wait()
        try:
            profiles.UpdateProfile(pp.UpdateProfileRequest(profile=pp.Profile(name=created.name, etag=created.etag, **{field: values[field]}), update_mask={"paths": [field]}), metadata=metadata, timeout=30)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            codes.append(error.code())

    threads = [threading.Thread(target=stale_writer, args=(f,)) for f in fields]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # All sent the same etag: exactly one wins, the rest are told to re-read.
    assert codes.count(grpc.StatusCode.OK) == 1 and codes.count(grpc.StatusCode.ABORTED) == len(fields) - 1, codes
    after_race = profiles.GetProfile(pp.GetProfileRequest(name=created.name), metadata=metadata)
    assert after_race.etag == '"2"'

    # Writers that re-read on ABORTED and retry: every change lands, none overwrites another.
    barrier = threading.Barrier(len(fields))
    retry_values = {"title": "Fellow", "department": "Software", "bio": "Writes more.", "country": "BR"}

    def careful_writer(field: str) -> None:
        barrier.wait()
        for _ in range(50):
            current = profiles.GetProfile(pp.GetProfileRequest(name=created.name), metadata=metadata)
            try:
                profiles.UpdateProfile(pp.UpdateProfileRequest(profile=pp.Profile(name=created.name, etag=current.etag, **{field: retry_values[field]}), update_mask={"paths": [field]}), metadata=metadata, timeout=30)
                return
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.ABORTED, error.details()
        raise AssertionError(f"{field} never got through")

    threads = [threading.Thread(target=careful_writer, args=(f,)) for f in fields]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = profiles.GetProfile(pp.GetProfileRequest(name=created.name), metadata=metadata)
    assert {f: getattr(final, f) for f in fields} == retry_values
    assert final.etag == f'"{2 + len(fields)}"'


def test_concurrent_manager_changes_never_close_a_management_cycle(platform, profiles):
    """Each change alone passes the cycle check against what it read; sent together, the changes
    of a loop (X1 under X2 and X2 under X1; or around three people) would all pass unless the
    store serialises them."""
    service = platform.metadata()
    accepted = (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ABORTED)
    codes: list[grpc.StatusCode] = []

    def set_manager(person: str, manager: str):
        return pp.UpdateProfileRequest(profile=pp.Profile(name=f"profiles/{person}", manager=f"profiles/{manager}"), update_mask={"paths": ["manager"]})

    people: list[str] = []
    for _ in range(4):
        loops = [[unique("org") for _ in range(size)] for size in (2,) * 8 + (3,) * 4]
        newcomers = {unique("new"): unique("boss") for _ in range(4)}
        fresh = [person for loop in loops for person in loop] + list(newcomers.values())
        profiles.BatchCreateProfiles(pp.BatchCreateProfilesRequest(requests=[pp.CreateProfileRequest(profile=pp.Profile(employee_id=p, display_name=f"Org {p}")) for p in fresh]), metadata=service)
        people += fresh + list(newcomers)
        # Every loop closed at once, each of its people under the next one.
        calls = [(profiles.UpdateProfile, set_manager(person, loop[(i + 1) % len(loop)])) for loop in loops for i, person in enumerate(loop)]
        # And new people created under a boss while that boss is moved under the newcomer.
        for newcomer, boss in newcomers.items():
            calls.append((profiles.CreateProfile, pp.CreateProfileRequest(profile=pp.Profile(employee_id=newcomer, display_name="New", manager=f"profiles/{boss}"))))
            calls.append((profiles.UpdateProfile, set_manager(boss, newcomer)))
        barrier = threading.Barrier(len(calls))

        def call(method, request, barrier=barrier) -> None:
            barrier.wait()
            try:
                method(request, metadata=service, timeout=60)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                assert error.code() in accepted, (error.code(), error.details())
                codes.append(error.code())

        threads = [threading.Thread(target=call, args=c) for c in calls]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    assert codes.count(grpc.StatusCode.OK) > 0 and codes.count(grpc.StatusCode.INVALID_ARGUMENT) > 0, codes
    for person in people:
        # Up the chain from everyone: it must end at someone without a manager.
        seen = [person]
        current = profiles.GetProfile(pp.GetProfileRequest(name=f"profiles/{person}"), metadata=service).manager
        while current:
            manager_id = current.removeprefix("profiles/")
            assert manager_id not in seen, f"management cycle: {seen + [manager_id]}"
            seen.append(manager_id)
            current = profiles.GetProfile(pp.GetProfileRequest(name=current), metadata=service).manager
        chain = profiles.GetManagementChain(pp.GetManagementChainRequest(name=f"profiles/{person}"), metadata=service)
        assert [p.employee_id for p in chain.managers] == seen[1:]
