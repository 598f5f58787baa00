"""gRPC face of the jams application: translates messages, nothing more."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

import grpc

from watercooler.auth import current_principal
from watercooler.errors import InvalidArgument
from watercooler.jams.v1 import jams_pb2, jams_pb2_grpc
from watercooler.moderation import Flaggable, flag_threshold
from watercooler.rpc import command_context, decode_page_token, encode_page_token, enum_name, fields_under, in_thread, page_size, request_fingerprint

from .application import JamsApplication
from .domainmodel import Ballot, Idea, Jam, Reply, Thread, now, parse_iso


def _ts(message: Any, field: str, value: dt.datetime | None) -> None:
    if value is not None:
        getattr(message, field).FromDatetime(value.astimezone(dt.UTC).replace(tzinfo=None))


def _time(message: Any, field: str) -> dt.datetime | None:
    return message.__getattribute__(field).ToDatetime(tzinfo=dt.UTC) if message.HasField(field) else None


def _parts(name: str, pattern: tuple[str, ...], field: str) -> list[str]:
    """``jams/{jam}/ideas/{idea}`` against ("jams", "ideas") -> [jam, idea] (AIP-122)."""
    parts = (name or "").split("/")
    example = "/".join(f"{c}/{{{c[:-1]}}}" for c in pattern)
    if len(parts) != 2 * len(pattern) or any(parts[2 * i] != c or not parts[2 * i + 1] for i, c in enumerate(pattern)):
        raise InvalidArgument(f"must look like '{example}', got {name!r}", field=field)
    return parts[1::2]


def _flaggable_name(name: str) -> tuple[str, tuple[str, ...]]:
    """An idea, a thread or a reply -> (jam id, (idea,) | (thread, "") | (thread, reply))."""
    parts = (name or "").split("/")
    if len(parts) == 4 and parts[2] == "ideas":
        jam_id, idea_id = _parts(name, ("jams", "ideas"), "name")
        return jam_id, (idea_id,)
    if len(parts) == 4:
        jam_id, thread_id = _parts(name, ("jams", "threads"), "name")
        return jam_id, (thread_id, "")
    if len(parts) == 6:
        jam_id, thread_id, reply_id = _parts(name, ("jams", "threads", "replies"), "name")
        return jam_id, (thread_id, reply_id)
    raise InvalidArgument(f"must name an idea, a thread or a reply ('jams/{{jam}}/ideas/{{idea}}', 'jams/{{jam}}/threads/{{thread}}[/replies/{{reply}}]'), got {name!r}", field="name")


def _flag_state(name: str, item: Flaggable) -> jams_pb2.FlagState:
    return jams_pb2.FlagState(name=name, hidden=item.hidden, flag_count=len(item.flaggers), restore_votes=len(item.restore_voters), threshold=flag_threshold(),
                               hide_reason=item.hide_reason)


def jam_to_proto(jam: Jam) -> jams_pb2.Jam:
    message = jams_pb2.Jam(
        name=f"jams/{jam.jam_id}", title=jam.title, description=jam.description, hosts=jam.hosts,
        vote_budget=jam.vote_budget, top_n=jam.top_n, visibility=jams_pb2.Jam.Visibility.Value(jam.visibility),
        phase=jams_pb2.Phase.Value(jam.phase_at(now())), etag=jam.etag,
        forums=[jams_pb2.Forum(name=f"jams/{jam.jam_id}/forums/{f}", title=v["title"], description=v["description"]) for f, v in jam.forums.items()],
    )
    _ts(message, "open_time", jam.open_time)
    _ts(message, "voting_time", jam.voting_time)
    _ts(message, "close_time", jam.close_time)
    _ts(message, "create_time", jam.created_on)
    return message


def idea_to_proto(idea: Idea) -> jams_pb2.Idea:
    message = jams_pb2.Idea(
        name=f"jams/{idea.jam_id}/ideas/{idea.idea_id}", title=idea.title, description=idea.description,
        forum=f"jams/{idea.jam_id}/forums/{idea.forum_id}" if idea.forum_id else "", author=idea.author, seeded=idea.seeded,
        merged_into=f"jams/{idea.jam_id}/ideas/{idea.merged_into}" if idea.merged_into else "", hidden=idea.hidden, hide_reason=idea.hide_reason,
    )
    _ts(message, "create_time", idea.created_on)
    return message


def ballot_to_proto(ballot: Ballot, jam: Jam) -> jams_pb2.Ballot:
    effective = ballot.effective(jam)
    return jams_pb2.Ballot(
        name=f"jams/{jam.jam_id}/ballots/{ballot.participant}", ideas=[f"jams/{jam.jam_id}/ideas/{i}" for i in effective],
        votes_used=len(effective), votes_left=max(0, jam.vote_budget - len(effective)), etag=f'"{ballot.version or 0}"',
    )


def thread_to_proto(thread: Thread) -> jams_pb2.Thread:
    message = jams_pb2.Thread(
        name=f"jams/{thread.jam_id}/threads/{thread.thread_id}", forum=f"jams/{thread.jam_id}/forums/{thread.forum_id}" if thread.forum_id else "",
        idea=f"jams/{thread.jam_id}/ideas/{thread.idea_id}" if thread.idea_id else "", title=thread.title, body=thread.body, author=thread.author,
    )
    _ts(message, "create_time", thread.created_on)
    return message


def reply_to_proto(reply: Reply) -> jams_pb2.Reply:
    message = jams_pb2.Reply(name=f"jams/{reply.jam_id}/threads/{reply.thread_id}/replies/{reply.reply_id}", body=reply.body, author=reply.author)
    _ts(message, "create_time", reply.created_on)
    return message


def results_to_proto(jam: Jam) -> jams_pb2.JamResults:
    results = jam.results or {}
    message = jams_pb2.JamResults(
        jam=f"jams/{jam.jam_id}", votes_counted=results.get("votes_counted", 0), participants_counted=results.get("participants_counted", 0),
        tie_break=results.get("tie_break", ""),
        rows=[jams_pb2.ResultRow(rank=e["rank"], idea=f"jams/{jam.jam_id}/ideas/{e['idea_id']}", title=e["title"], votes=e["votes"]) for e in results.get("entries", [])],
    )
    _ts(message, "closed_at", parse_iso(results.get("closed_at", "")))
    return message


def export_results(jam: Jam, fmt: str) -> jams_pb2.ExportedFile:
    results = jam.results or {}
    rows = [{"rank": e["rank"], "idea": f"jams/{jam.jam_id}/ideas/{e['idea_id']}", "title": e["title"], "votes": e["votes"]} for e in results.get("entries", [])]
    if fmt == "json":
        body = {"jam": f"jams/{jam.jam_id}", "closed_at": results.get("closed_at"), "votes_counted": results.get("votes_counted"),
                "participants_counted": results.get("participants_counted"), "tie_break": results.get("tie_break"), "results": rows}
        return jams_pb2.ExportedFile(content_type="application/json", filename=f"{jam.jam_id}-results.json", data=json.dumps(body, ensure_ascii=False, indent=2).encode())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["rank", "idea", "title", "votes"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return jams_pb2.ExportedFile(content_type="text/csv; charset=utf-8", filename=f"{jam.jam_id}-results.csv", data=buffer.getvalue().encode())


class JamServicer(jams_pb2_grpc.JamServiceServicer):
    def __init__(self, app: JamsApplication):
        self.app = app

    async def CreateJam(self, request, context):
        if not request.HasField("jam"):
            raise InvalidArgument("is required", field="jam")
        jam = request.jam
        fields = {
            "title": jam.title, "description": jam.description, "vote_budget": jam.vote_budget, "top_n": jam.top_n,
            "visibility": enum_name(jams_pb2.Jam.Visibility, jam.visibility, "jam.visibility"),
            "open_time": _time(jam, "open_time"), "voting_time": _time(jam, "voting_time"), "close_time": _time(jam, "close_time"),
        }
        ctx = command_context(context, request.request_id)
        with fields_under("jam", request_level=("request_id", "jam_id")):
            created = await in_thread(self.app.create_jam, ctx, request.jam_id, fields, request_fingerprint(request))
        return jam_to_proto(created)

    async def GetJam(self, request, context):
        (jam_id,) = _parts(request.name, ("jams",), "name")
        return jam_to_proto(await in_thread(self.app.get_jam, current_principal(), jam_id))

    async def ListJams(self, request, context):
        size = page_size(request.page_size)
        after = decode_page_token(request.page_token, "jams") or 0
        if not isinstance(after, int) or after < 0:
            raise InvalidArgument("is not a token this service issued", field="page_token")
        jams, position = await in_thread(self.app.list_jams, current_principal(), size, after)
        return jams_pb2.ListJamsResponse(jams=[jam_to_proto(j) for j in jams], next_page_token=encode_page_token(position, "jams") if position else "")

    async def ScheduleJam(self, request, context):
        (jam_id,) = _parts(request.name, ("jams",), "name")
        times = (_time(request, "open_time"), _time(request, "voting_time"), _time(request, "close_time"))
        ctx = command_context(context, request.request_id)
        return jam_to_proto(await in_thread(self.app.schedule_jam, ctx, jam_id, times, request_fingerprint(request)))

    async def AdvanceJamPhase(self, request, context):
        (jam_id,) = _parts(request.name, ("jams",), "name")
        expected = enum_name(jams_pb2.Phase, request.phase, "phase")
        ctx = command_context(context, request.request_id)
        return jam_to_proto(await in_thread(self.app.advance_phase, ctx, jam_id, expected, request_fingerprint(request)))

    async def CreateForum(self, request, context):
        (jam_id,) = _parts(request.parent, ("jams",), "parent")
        ctx = command_context(context, request.request_id)
        with fields_under("forum", request_level=("request_id", "parent", "forum_id")):
            jam = await in_thread(self.app.create_forum, ctx, jam_id, request.forum_id, request.forum.title, request.forum.description, request_fingerprint(request))
        forum = jam.forums[request.forum_id]
        return jams_pb2.Forum(name=f"jams/{jam_id}/forums/{request.forum_id}", title=forum["title"], description=forum["description"])

    async def CreateIdea(self, request, context):
        (jam_id,) = _parts(request.parent, ("jams",), "parent")
        forum_id = _parts(request.idea.forum, ("jams", "forums"), "idea.forum")[1] if request.idea.forum else ""
        ctx = command_context(context, request.request_id)
        with fields_under("idea", request_level=("request_id", "parent")):
            idea = await in_thread(self.app.create_idea, ctx, jam_id, request.idea.title, request.idea.description, forum_id, request_fingerprint(request))
        return idea_to_proto(idea)

    async def GetIdea(self, request, context):
        jam_id, idea_id = _parts(request.name, ("jams", "ideas"), "name")
        return idea_to_proto(await in_thread(self.app.get_idea, current_principal(), jam_id, idea_id))

    async def MergeIdeas(self, request, context):
        jam_id, merged = _parts(request.name, ("jams", "ideas"), "name")
        into_jam, into = _parts(request.into, ("jams", "ideas"), "into")
        if into_jam != jam_id:
            raise InvalidArgument("ideas can only be merged within one jam", field="into")
        ctx = command_context(context, request.request_id)
        return idea_to_proto(await in_thread(self.app.merge_ideas, ctx, jam_id, merged, into, request_fingerprint(request)))

    def _vote_target(self, jam_name: str, idea_name: str, field: str) -> tuple[str, str]:
        (jam_id,) = _parts(jam_name, ("jams",), "jam")
        # An idea of another jam is looked up in this one, where it does not exist: naming the
        # jam it belongs to would tell a guest about a jam that did not invite them.
        _, idea_id = _parts(idea_name, ("jams", "ideas"), field)
        return jam_id, idea_id

    async def CastVote(self, request, context):
        jam_id, idea_id = self._vote_target(request.jam, request.idea, "idea")
        ctx = command_context(context, request.request_id)
        return ballot_to_proto(*await in_thread(self.app.cast_vote, ctx, jam_id, idea_id, request_fingerprint(request)))

    async def WithdrawVote(self, request, context):
        jam_id, idea_id = self._vote_target(request.jam, request.idea, "idea")
        ctx = command_context(context, request.request_id)
        return ballot_to_proto(*await in_thread(self.app.withdraw_vote, ctx, jam_id, idea_id, request_fingerprint(request)))

    async def ChangeVote(self, request, context):
        jam_id, from_id = self._vote_target(request.jam, request.from_idea, "from_idea")
        _, to_id = self._vote_target(request.jam, request.to_idea, "to_idea")
        ctx = command_context(context, request.request_id)
        return ballot_to_proto(*await in_thread(self.app.change_vote, ctx, jam_id, from_id, to_id, request_fingerprint(request)))

    async def GetBallot(self, request, context):
        jam_id, participant = _parts(request.name, ("jams", "ballots"), "name")
        return ballot_to_proto(*await in_thread(self.app.get_ballot, current_principal(), jam_id, participant))

    async def CreateInvitation(self, request, context):
        (jam_id,) = _parts(request.parent, ("jams",), "parent")
        ctx = command_context(context, request.request_id)
        invitation, code = await in_thread(self.app.create_invitation, ctx, jam_id, request.label, request_fingerprint(request))
        message = jams_pb2.Invitation(jam=f"jams/{jam_id}", code=code, label=invitation.label)
        _ts(message, "expire_time", invitation.expire_time)
        return message

    async def RedeemInvitation(self, request, context):
        (jam_id,) = _parts(request.jam, ("jams",), "jam")
        ctx = command_context(context)
        token, jams, expires = await in_thread(self.app.redeem_invitation, ctx, request.code, jam_id)
        message = jams_pb2.RedeemInvitationResponse(token=token, jams=[f"jams/{j}" for j in jams])
        _ts(message, "expire_time", expires)
        return message

    async def AcceptGuestGuidelines(self, request, context):
        (guest,) = _parts(request.name, ("guests",), "name")
        ctx = command_context(context, request.request_id)
        record = await in_thread(self.app.accept_guest_guidelines, ctx, guest, request.version, request_fingerprint(request))
        return jams_pb2.GuestGuidelines(name=f"guests/{record.guest}", version=record.guidelines_version)

    async def CreateThread(self, request, context):
        (jam_id,) = _parts(request.parent, ("jams",), "parent")
        thread = request.thread
        forum_id = _parts(thread.forum, ("jams", "forums"), "thread.forum")[1] if thread.forum else ""
        idea_id = _parts(thread.idea, ("jams", "ideas"), "thread.idea")[1] if thread.idea else ""
        ctx = command_context(context, request.request_id)
        with fields_under("thread", request_level=("request_id", "parent")):
            created = await in_thread(self.app.create_thread, ctx, jam_id, forum_id, idea_id, thread.title, thread.body, request_fingerprint(request))
        return thread_to_proto(created)

    async def FlagJamItem(self, request, context):
        jam_id, path = _flaggable_name(request.name)
        ctx = command_context(context, request.request_id)
        return _flag_state(request.name, await in_thread(self.app.flag, ctx, jam_id, path, request.reason, request_fingerprint(request)))

    async def VoteRestoreJamItem(self, request, context):
        jam_id, path = _flaggable_name(request.name)
        ctx = command_context(context, request.request_id)
        return _flag_state(request.name, await in_thread(self.app.vote_restore, ctx, jam_id, path, request_fingerprint(request)))

    async def HideJamItem(self, request, context):
        jam_id, path = _flaggable_name(request.name)
        ctx = command_context(context, request.request_id)
        return _flag_state(request.name, await in_thread(self.app.moderate, ctx, jam_id, path, True, request.reason, request_fingerprint(request)))

    async def RestoreJamItem(self, request, context):
        jam_id, path = _flaggable_name(request.name)
        ctx = command_context(context, request.request_id)
        return _flag_state(request.name, await in_thread(self.app.moderate, ctx, jam_id, path, False, request.reason, request_fingerprint(request)))

    async def CreateReply(self, request, context):
        jam_id, thread_id = _parts(request.parent, ("jams", "threads"), "parent")
        ctx = command_context(context, request.request_id)
        with fields_under("reply", request_level=("request_id", "parent")):
            reply = await in_thread(self.app.create_reply, ctx, jam_id, thread_id, request.reply.body, request_fingerprint(request))
        return reply_to_proto(reply)

    async def GetJamResults(self, request, context):
        (jam_id,) = _parts(request.name, ("jams",), "name")
        return results_to_proto(await in_thread(self.app.get_results, current_principal(), jam_id))

    async def ExportJamResults(self, request, context):
        (jam_id,) = _parts(request.name, ("jams",), "name")
        fmt = (request.format or "csv").lower()
        if fmt not in ("csv", "json"):
            raise InvalidArgument("must be csv or json", field="format")
        return export_results(await in_thread(self.app.get_results, current_principal(), jam_id), fmt)


def register(server: grpc.aio.Server, app: JamsApplication) -> list[str]:
    jams_pb2_grpc.add_JamServiceServicer_to_server(JamServicer(app), server)
    return [jams_pb2.DESCRIPTOR.services_by_name["JamService"].full_name]
