"""Community flags, one rule for every kind of item people write.

Posts, microposts, comments and bookmarks (posts service), wiki pages and media items (its
library), status updates (profiles service), jam ideas, threads and replies (jams service)
all mix in ``Flaggable``: ``FLAG_THRESHOLD`` distinct people other than the author hide the
item; ``FLAG_THRESHOLD`` other people (not its flaggers, not its author) vote it back, or the
author answers the flags by changing what people read; a service (a legal takedown, a spam
filter) hides and restores at once. Every step is an event (``ItemFlagged``, ``ItemHidden``,
``ItemRestoreVoted``, ``ItemRestored``), with the same payload in every service's
``events.proto``. Who sees a hidden item is the visibility rule's
(``watercooler.visibility.reads_hidden``).

Moderators: the owners of a community hide and restore what is in their community, a jam's
hosts what is in their jam (the services decide who moderates what), always with a reason
(``ItemHiddenByModerator``, ``ItemRestoredByModerator``). The author still reads their item by
name with the reason; only a moderator (or a service) brings it back: neither the author's
edit nor restore votes overrule the moderator.
"""

from __future__ import annotations

import os

from eventsourcing.domain import event
from eventsourcing.utils import register_topic

from .errors import AlreadyExists, FailedPrecondition, InvalidArgument
from .eventstore import EventSourcedAggregate
from .text import clean, has_control_characters

# Distinct people whose flags hide an item (and whose votes bring it back).
FLAG_THRESHOLD = 3
MAX_REASON = 500


def flag_threshold() -> int:
    """``FLAG_THRESHOLD``, or ``WC_FLAG_THRESHOLD`` where a deployment (or a test) sets another."""
    return int(os.environ.get("WC_FLAG_THRESHOLD") or FLAG_THRESHOLD)


def validate_reason(reason: str, field: str = "reason") -> str:
    reason = clean(reason or "")
    if not reason:
        raise InvalidArgument("is required", field=field)
    if len(reason) > MAX_REASON:
        raise InvalidArgument(f"must be at most {MAX_REASON} characters", field=field)
    if has_control_characters(reason, allow_newlines=True):
        raise InvalidArgument("must not contain control characters", field=field)
    return reason


class Flaggable(EventSourcedAggregate):
    """Items anyone in their audience may flag. At ``threshold`` distinct flaggers the item
    is hidden everywhere; it returns when its author answers the flags by changing what
    people read (``ANSWERING_FIELDS``: the text, not the tags or the audience alone, which
    would let a one-tag edit lift every flag) or ``threshold`` other people vote to restore
    it. No moderator among people: every step is an event.
    Subclasses set ``author_id`` (an employee id, or a guest's subject in a jam) and call
    ``_init_flags`` in their created event."""

    ANSWERING_FIELDS = ()  # set by each kind (no annotation: the aggregate would take it as an event field)

    def _init_flags(self) -> None:
        self.flaggers: list[str] = []
        self.restore_voters: list[str] = []
        self.hidden = False
        self.hidden_by = ""  # the moderator who hid it ("" when flags did)
        self.hide_reason = ""  # shown to the author while hidden

    def flag(self, person_id: str, reason: str, threshold: int) -> None:
        reason = validate_reason(reason)
        if person_id == self.author_id:
            raise FailedPrecondition("you cannot flag your own item", field="name")
        if self.hidden:
            raise FailedPrecondition("the item is already hidden", field="name")
        if person_id in self.flaggers:
            raise AlreadyExists("you already flagged this item", field="name")
        self._flagged(flagger_id=person_id, reason=reason)
        if len(self.flaggers) >= threshold:
            self._hidden(flag_count=len(self.flaggers))

    def vote_restore(self, person_id: str, threshold: int) -> None:
        if not self.hidden:
            raise FailedPrecondition("the item is not hidden", field="name")
        if self.hidden_by:
            raise FailedPrecondition("a moderator hid the item: only a moderator restores it", field="name")
        if person_id == self.author_id:
            raise FailedPrecondition("the author restores an item by editing it", field="name")
        if person_id in self.flaggers:
            raise FailedPrecondition("people who flagged the item cannot vote to restore it", field="name")
        if person_id in self.restore_voters:
            raise AlreadyExists("you already voted to restore this item", field="name")
        self._restore_voted(voter_id=person_id)
        if len(self.restore_voters) >= threshold:
            self._restored(reason="votes")

    def moderate_hide(self, by: str, reason: str) -> None:
        """A service (a platform job acting for the company: legal takedown, spam) hides the
        item at once; recorded as a flag with its reason, then the hide."""
        reason = validate_reason(reason)
        if self.hidden:
            raise FailedPrecondition("the item is already hidden", field="name")
        self._flagged(flagger_id=by, reason=reason)
        self._hidden(flag_count=len(self.flaggers))

    def moderate_restore(self) -> None:
        """A service brings a hidden item back at once (a takedown withdrawn, a false positive)."""
        if not self.hidden:
            raise FailedPrecondition("the item is not hidden", field="name")
        self._restored(reason="moderation")

    def hide_as_moderator(self, moderator_id: str, reason: str) -> None:
        """A moderator of the item's community or jam hides it at once, saying why."""
        reason = validate_reason(reason)
        if self.hidden:
            raise FailedPrecondition("the item is already hidden", field="name")
        self._hidden_by_moderator(moderator_id=moderator_id, reason=reason)

    def restore_as_moderator(self, moderator_id: str, reason: str) -> None:
        """A moderator brings a hidden item back (hidden by flags or by a moderator), saying why."""
        reason = validate_reason(reason)
        if not self.hidden:
            raise FailedPrecondition("the item is not hidden", field="name")
        self._restored_by_moderator(moderator_id=moderator_id, reason=reason)

    def _author_edited(self, changed_fields: list[str]) -> None:
        if self.hidden and not self.hidden_by and set(changed_fields) & set(self.ANSWERING_FIELDS):
            self._restored(reason="author_edit")

    @event("ItemFlagged")
    def _flagged(self, flagger_id: str, reason: str) -> None:
        self.flaggers.append(flagger_id)

    @event("ItemHidden")
    def _hidden(self, flag_count: int) -> None:
        self.hidden = True
        self.hide_reason = f"hidden by {flag_count} community flags"
        self.restore_voters = []

    @event("ItemRestoreVoted")
    def _restore_voted(self, voter_id: str) -> None:
        self.restore_voters.append(voter_id)

    @event("ItemRestored")
    def _restored(self, reason: str) -> None:
        # A new round: the same people may flag it again if it turns bad again.
        self.hidden = False
        self.hide_reason = ""
        self.flaggers = []
        self.restore_voters = []

    @event("ItemHiddenByModerator")
    def _hidden_by_moderator(self, moderator_id: str, reason: str) -> None:
        self.hidden = True
        self.hidden_by = moderator_id
        self.hide_reason = reason
        self.restore_voters = []

    @event("ItemRestoredByModerator")
    def _restored_by_moderator(self, moderator_id: str, reason: str) -> None:
        self.hidden = False
        self.hidden_by = ""
        self.hide_reason = ""
        self.flaggers = []
        self.restore_voters = []


# The flag events were first defined in the posts service's domain model; events stored then
# name that module in their topic, and still load.
for _name in ("ItemFlagged", "ItemHidden", "ItemRestoreVoted", "ItemRestored"):
    register_topic(f"services.posts.domainmodel:Flaggable.{_name}", getattr(Flaggable, _name))
