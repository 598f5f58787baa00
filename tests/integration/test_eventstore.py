"""The event store on SQLite and on PostgreSQL: optimistic concurrency, idempotent
commands, atomic rejection.  Same tests, both stores."""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.profiles.application import ProfilesApplication
from watercooler.auth import Principal
from watercooler.errors import Aborted, AlreadyExists, InvalidArgument
from watercooler.eventstore import CommandContext, CommandRecord
from watercooler.request_records import MOVED_FROM_LOG

HR = Principal("hr-feed", "service")


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request, tmp_path):
    if request.param == "postgres":
        base = request.getfixturevalue("postgres")
    else:
        base = request.getfixturevalue("settings")
        base = dataclasses.replace(base, data_dir=tmp_path)
    # A namespace per test: its own SQLite file or PostgreSQL schema.
    return dataclasses.replace(base, store=request.param, namespace=f"s{secrets.token_hex(4)}")


@pytest.fixture
def open_profiles(store_settings):
    """Opens ProfilesApplications on this test's store, each closed after the test: an open
    one's key cache asks its store again every 30 s, after the test PostgreSQL has stopped."""
    opened: list[ProfilesApplication] = []

    def open_one() -> ProfilesApplication:
        opened.append(ProfilesApplication(store_settings))
        return opened[-1]

    yield open_one
    for app in opened:
        app.close()


def ctx(request_id: str = "") -> CommandContext:
    return CommandContext(HR, request_id=request_id)


def stored_count(app: ProfilesApplication) -> int:
    # The rows themselves: PostgreSQL's notification ids have gaps where a conflicting insert
    # rolled back (a sequence is never rolled back), so the highest id is not a count.
    return len(app.recorder.select_notifications(start=None, limit=1_000_000))


def test_stale_version_is_aborted_and_first_write_wins(open_profiles):
    first, second = open_profiles(), open_profiles()
    first.create_profile(ctx(), "e1", {"display_name": "Ada"}, "fp")
    stale = second.get_profile("e1")  # both now hold version 1
    first.update_profile(ctx(), "e1", {"title": "Engineer"}, "", "fp1")

    def change_stale():
        stale.update({"title": "Manager"})
        return stale

    with pytest.raises(Aborted):
        second.run_command(ctx(), "UpdateProfile", "fp2", change_stale)
    assert first.get_profile("e1").title == "Engineer"
    assert second.get_profile("e1").version == 2


def test_stale_etag_is_aborted(open_profiles):
    app = open_profiles()
    created = app.create_profile(ctx(), "e1", {"display_name": "Ada"}, "fp")
    app.update_profile(ctx(), "e1", {"title": "Engineer"}, created.etag, "fp1")
    with pytest.raises(Aborted) as err:
        app.update_profile(ctx(), "e1", {"title": "Manager"}, created.etag, "fp2")
    assert err.value.details["current_etag"] == '"2"'


def test_retried_command_returns_first_result_and_records_nothing(open_profiles):
    app = open_profiles()
    first = app.create_profile(ctx("req-1"), "e1", {"display_name": "Ada"}, "fp-a")
    count = stored_count(app)
    again = app.create_profile(ctx("req-1"), "e1", {"display_name": "Ada"}, "fp-a")
    assert (again.id, again.version) == (first.id, first.version)
    assert stored_count(app) == count
    app.update_profile(ctx("req-2"), "e1", {"title": "Engineer"}, "", "fp-b")
    # A retry of the create after later changes still answers with what the create produced.
    assert app.create_profile(ctx("req-1"), "e1", {"display_name": "Ada"}, "fp-a").version == 1
    with pytest.raises(InvalidArgument) as err:
        app.create_profile(ctx("req-1"), "e1", {"display_name": "Grace"}, "fp-other")
    assert err.value.field == "request_id"


def test_concurrent_retries_of_one_request_store_it_once(open_profiles):
    apps = [open_profiles() for _ in range(4)]

    def create(i: int):
        return apps[i % 4].create_profile(ctx("same-request"), "e7", {"display_name": "Ada"}, "fp")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(create, range(16)))
    assert {(r.id, r.version) for r in results} == {(results[0].id, 1)}
    assert stored_count(apps[0]) == 1  # the ProfileCreated event; its request record is not in the log
    assert apps[0].request_records.select_request_record(CommandRecord.create_id("CreateProfile", HR.subject, "same-request")) is not None


def test_concurrent_creates_of_one_profile_one_wins(open_profiles):
    apps = [open_profiles() for _ in range(4)]

    def create(i: int):
        try:
            apps[i % 4].create_profile(ctx(f"r{i}"), "e9", {"display_name": f"Person {i}"}, f"fp{i}")
            return "created"
        except AlreadyExists:
            return "exists"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(create, range(12)))
    assert outcomes.count("created") == 1
    assert outcomes.count("exists") == 11


def test_a_request_record_is_saved_with_its_events_or_not_at_all(open_profiles):
    """The loser of a race and a refused command leave no request record: retried with the same
    request id they are decided again (and refused again), not answered as if they had run."""
    app = open_profiles()
    app.create_profile(ctx("won"), "e3", {"display_name": "Ada"}, "fp-won")
    for _ in range(2):
        with pytest.raises(AlreadyExists):
            app.create_profile(ctx("lost"), "e3", {"display_name": "Grace"}, "fp-lost")
    with pytest.raises(InvalidArgument):
        app.update_profile(ctx("refused"), "e3", {"country": "Germany"}, "", "fp-refused")
    assert app.request_records.select_request_record(CommandRecord.create_id("CreateProfile", HR.subject, "lost")) is None
    assert app.request_records.select_request_record(CommandRecord.create_id("UpdateProfile", HR.subject, "refused")) is None
    # and the same id with a corrected request then runs
    assert app.update_profile(ctx("refused"), "e3", {"country": "DE"}, "", "fp-fixed").version == 2


def test_request_records_an_older_version_kept_in_the_log_still_answer_retries(open_profiles, store_settings):
    """Until 2026-12 a request record was an aggregate in the log. A store written then is
    copied once into the records' table at start, so a request retried across the upgrade is
    answered from its first run rather than run again."""
    app = open_profiles()
    first = app.create_profile(ctx(), "e4", {"display_name": "Ada"}, "fp")
    # What the older version saved beside the create, and a store without the copy's mark.
    app.save(CommandRecord(command="CreateProfile", subject=HR.subject, request_id="before-upgrade", fingerprint="fp-old",
                           aggregate_id=str(first.id), aggregate_version=1))
    forget_the_copy(app, store_settings.store)
    assert app.request_records.select_request_record(CommandRecord.create_id("CreateProfile", HR.subject, "before-upgrade")) is None

    upgraded = open_profiles()
    again = upgraded.create_profile(ctx("before-upgrade"), "e4", {"display_name": "Ada"}, "fp-old")
    assert (again.id, again.version) == (first.id, 1)
    with pytest.raises(InvalidArgument) as err:
        upgraded.create_profile(ctx("before-upgrade"), "e4", {"display_name": "Grace"}, "fp-other")
    assert err.value.field == "request_id"
    assert upgraded.request_records.select_request_record(MOVED_FROM_LOG) is not None
    # A second start finds the mark and copies nothing again.
    open_profiles().create_profile(ctx("after-upgrade"), "e5", {"display_name": "Grace"}, "fp")

    # An older replica still running (a rolling upgrade) records in the log after the copy: a
    # retry whose command fails is still answered from that record.
    late = app.create_profile(ctx(), "e6", {"display_name": "Linus"}, "fp")
    app.save(CommandRecord(command="CreateProfile", subject=HR.subject, request_id="during-upgrade", fingerprint="fp-late",
                           aggregate_id=str(late.id), aggregate_version=1))
    assert upgraded.create_profile(ctx("during-upgrade"), "e6", {"display_name": "Linus"}, "fp-late").id == late.id


def forget_the_copy(app: ProfilesApplication, store: str) -> None:
    recorder = app.recorder
    with recorder.datastore.transaction(commit=True) as cursor:
        if store == "postgres":
            from psycopg.sql import SQL

            cursor.execute(SQL("DELETE FROM {} WHERE id=%s").format(recorder._table), (MOVED_FROM_LOG,))
        else:
            cursor.execute(f"DELETE FROM {recorder.TABLE} WHERE id=?", (MOVED_FROM_LOG.hex,))


def test_rejected_command_stores_nothing(open_profiles):
    app = open_profiles()
    app.create_profile(ctx(), "e1", {"display_name": "Ada"}, "fp")
    before = stored_count(app)
    for bad in ({"display_name": ""}, {"country": "Germany"}, {"manager_id": "nobody"}, {"display_name": "x" * 201}):
        with pytest.raises(InvalidArgument):
            app.update_profile(ctx(), "e1", bad, "", "fp")
    with pytest.raises(InvalidArgument):
        app.update_profile(ctx(), "e1", {"manager_id": "e1"}, "", "fp")
    assert stored_count(app) == before
    assert app.get_profile("e1").version == 1


def events_stored(app: ProfilesApplication) -> int:
    """Counted, not the highest notification id: PostgreSQL's ids skip those of a failed transaction."""
    return len(app.recorder.select_notifications(start=1, limit=10_000))


class HeldStore:
    """Holds the store's first transaction open until released, so that the commands sent
    meanwhile queue up behind it (as they do behind a real fsync), and counts transactions."""

    def __init__(self, app: ProfilesApplication):
        self.app, self.record = app, app._record
        self.release, self.transactions = threading.Event(), []
        app._record = self._held

    def _held(self, processing_event):
        # Each aggregate and each request record the transaction writes.
        records = processing_event.saved_kwargs.get("request_records", ())
        self.transactions.append(len({e.originator_id for e in processing_event.events}) + len(records))
        if len(self.transactions) == 1:
            self.release.wait(30)
        return self.record(processing_event)

    def queue_behind_a_commit(self, pool: ThreadPoolExecutor, first: tuple, others: list[tuple]):
        """Run ``first``, hold its commit, run ``others`` until all of them wait in the queue,
        then let the store go on; returns the futures of ``first`` and of ``others``."""
        held = pool.submit(*first)
        deadline = time.monotonic() + 30
        while not self.transactions:
            assert time.monotonic() < deadline, "the first command never reached the store"
            time.sleep(0.01)
        queued = [pool.submit(*call) for call in others]
        while self.app._group_commit._waiting.qsize() < len(others):
            assert time.monotonic() < deadline, "the commands never queued"
            time.sleep(0.01)
        self.release.set()
        return held, queued


def test_commands_arriving_during_a_commit_share_the_next_transaction(open_profiles):
    app = open_profiles()
    held = HeldStore(app)
    with ThreadPoolExecutor(12) as pool:
        first, rest = held.queue_behind_a_commit(
            pool, (app.create_profile, ctx(), "g0", {"display_name": "First"}, "fp"),
            [(app.create_profile, ctx(f"r{i}"), f"g{i}", {"display_name": f"Person {i}"}, f"fp{i}") for i in range(1, 11)],
        )
        assert [f.result(30).version for f in [first, *rest]] == [1] * 11
    # one transaction for the first, one for the ten (each a profile and its request record)
    assert held.transactions == [1, 20]
    assert events_stored(app) == 1 + 10  # the records are beside the log, not in it
    assert all(app.request_records.select_request_record(CommandRecord.create_id("CreateProfile", HR.subject, f"r{i}")) for i in range(1, 11))
    assert app.get_profile("g7").display_name == "Person 7"


def test_a_colliding_command_in_a_group_fails_alone(open_profiles):
    app = open_profiles()
    app.create_profile(ctx(), "taken", {"display_name": "Taken"}, "fp")
    before = events_stored(app)
    held = HeldStore(app)
    names = ["h1", "h2", "taken", "h3"]
    with ThreadPoolExecutor(8) as pool:
        first, rest = held.queue_behind_a_commit(
            pool, (app.create_profile, ctx(), "h0", {"display_name": "First"}, "fp"),
            [(app.create_profile, ctx(), name, {"display_name": name}, "fp") for name in names],
        )
        first.result(30)
        outcomes = {}
        for name, future in zip(names, rest, strict=True):
            try:
                outcomes[name] = future.result(30).version
            except AlreadyExists:
                outcomes[name] = "exists"
    assert outcomes == {"h1": 1, "h2": 1, "taken": "exists", "h3": 1}
    # the grouped transaction failed whole, then each command was saved on its own
    assert held.transactions == [1, 4, 1, 1, 1, 1]
    assert events_stored(app) == before + 4
    assert app.get_profile("taken").display_name == "Taken"
