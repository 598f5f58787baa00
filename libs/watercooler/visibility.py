"""Who may see what: the platform's one visibility rule, for every audience kind.

Each kind gets two forms of the same rule, kept side by side so they cannot drift:
a check for one loaded item (the services that read by name) and the Elasticsearch
filter clauses for a query (search, lists, counts).  Posts and microposts have a third: the
audience tokens their search documents carry (``content_audience``) and the one filter over
them (``audience_clause``).  tests/integration/test_visibility_rule.py runs every form on
generated items and principals against a real index and checks they agree.

Principals: ``employee``, ``alumni`` (left the company), ``guest`` (invited to jams, the
token's ``jams``), ``service`` (platform jobs).  Memberships (communities, a space's
member list) reach content for employees only: an alumnus keeps them as history, and a
guest's subject is not an employee id, so a member list naming the same string grants
nothing.

Content (posts, microposts, comments, bookmarks, blogs, status updates):
  PUBLIC everyone; INTERNAL employees; COMMUNITY the community's members; PRIVATE the
  author only; the author and services always.  A draft is its author's (and, by name, a
  service's).  A deleted item is nobody's.  An item hidden by community flags is in no
  list or search for anyone; by name only its author (to edit it) and services (to
  moderate it) read it, until it is restored.

Classification (what the information is, apart from who it is shown to): PUBLIC (cleared
for release), INTERNAL (internal use, the default) or CONFIDENTIAL. A CONFIDENTIAL item is
read by employees and services only, whatever its visibility says (not by guests, nor by
alumni, its author included: they have left), and is never PUBLIC (``classification_conflict``).
Labelled: posts, microposts, bookmarks, status updates, media items and wiki spaces (their pages,
and comments, through their parent; a media item shown in a status or as an avatar follows its
own label). Jam ideas and discussion are not: they are written for everyone the jam invited.

Library (wiki spaces, whose pages take their audience, and media items):
  PUBLIC everyone; INTERNAL employees; RESTRICTED the owner (``profiles/{id}``), the listed
  members and, for a space owned by ``communities/{id}``, that community's members; services
  always.  Deleted pages and removed media are nobody's.  A media item shown inside something
  else (a status update's photo, a profile's avatar) is shown to whoever may see that item
  now; the status or profile around it keeps its own audience.

Every kind people write (content, wiki pages, media items, status updates, jam ideas,
threads and replies) can be hidden by community flags (watercooler.moderation): then by
name only its author and services read it (``reads_hidden``), in lists, searches and
counts nobody (``NOT_HIDDEN``); what hangs off it (comments, replies) follows.

Jams (ideas, threads): employees and services see every jam; guests the jams that invited
them and PUBLIC jams; alumni the PUBLIC jams.

Directory (people, communities): everyone but guests.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from .auth import Principal

PUBLIC, INTERNAL, COMMUNITY, PRIVATE, RESTRICTED = "PUBLIC", "INTERNAL", "COMMUNITY", "PRIVATE", "RESTRICTED"
CONFIDENTIAL = "CONFIDENTIAL"
# Classification labels; INTERNAL is the default (an item stored before labels existed is INTERNAL).
CLASSIFICATIONS = (PUBLIC, INTERNAL, CONFIDENTIAL)
CONTENT_VISIBILITIES = (PUBLIC, INTERNAL, COMMUNITY, PRIVATE)
LIBRARY_VISIBILITIES = (PUBLIC, INTERNAL, RESTRICTED)
JAM_VISIBILITIES = (INTERNAL, PUBLIC)
# The state of a post that is not a draft (search documents carry it as ``state``).
PUBLISHED = "PUBLISHED"

Clause = dict[str, Any]
# is_member(community_id, employee_id): asked only when the answer decides.
IsMember = Callable[[str, str], bool]

NOTHING: Clause = {"bool": {"must_not": [{"match_all": {}}]}}


def memberships_reach(principal: Principal) -> bool:
    """Whether community and space memberships open content to this principal: an
    employee's do; an alumnus's are history (leaving the company ends their reach: the
    records stay, so a returning employee finds them again), a guest has none."""
    return principal.kind == "employee"


def sees_internal(principal: Principal) -> bool:
    return principal.kind == "employee"


def sees_confidential(principal: Principal) -> bool:
    return principal.kind in ("employee", "service")


def classification_conflict(visibility: str, classification: str) -> str:
    """Why an item may not have this visibility and classification ('' if it may)."""
    if classification == CONFIDENTIAL and visibility == PUBLIC:
        return "a CONFIDENTIAL item is never PUBLIC: classify it INTERNAL or PUBLIC first, or choose another visibility"
    return ""


# --- content -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Content:
    """What decides who sees a content item."""

    visibility: str
    community: str
    author_id: str
    published: bool = True
    hidden: bool = False
    deleted: bool = False
    classification: str = INTERNAL


def reads_hidden(principal: Principal, author_id: str) -> bool:
    """Who reads an item hidden by community flags, by name: its author (to answer the flags
    by editing it) and services (to moderate it); in lists and searches nobody. The one rule
    for every flaggable kind (watercooler.moderation)."""
    return principal.is_service or principal.subject == author_id


# Search documents of every flaggable kind carry ``hidden``; must_not, so that documents
# written before a kind could be flagged (no field yet) count as not hidden.
NOT_HIDDEN: Clause = {"bool": {"must_not": [{"term": {"hidden": True}}]}}


def may_see_content(principal: Principal, item: Content, is_member: IsMember | None = None, *, listed: bool = False) -> bool:
    """The check for one loaded item. ``listed``: the rule of lists and searches (hidden
    items and other people's drafts are in none); otherwise the rule of a read by name."""
    if item.deleted or (item.classification == CONFIDENTIAL and not sees_confidential(principal)):
        return False
    is_author = not principal.is_service and principal.subject == item.author_id
    if item.hidden and (listed or not reads_hidden(principal, item.author_id)):
        return False
    if not item.published and not (is_author or (principal.is_service and not listed)):
        return False
    if principal.is_service or is_author or item.visibility == PUBLIC:
        return True
    if item.visibility == INTERNAL:
        return sees_internal(principal)
    if item.visibility == COMMUNITY:
        return memberships_reach(principal) and is_member is not None and is_member(item.community, principal.subject)
    return False


def content_clauses(principal: Principal, communities: Sequence[str], author_field: str = "author_id", *, drafts: bool = False) -> list[Clause]:
    """The filter clauses (for a bool ``filter``) of the same rule as ``may_see_content(listed=True)``.
    Documents carry ``visibility``, ``community``, the author's id in ``author_field``,
    ``hidden`` and ``deleted``; with ``drafts``, also ``state``; ``classification`` where the
    kind has one (a document without it is INTERNAL).  ``communities``: the caller's."""
    clauses: list[Clause] = [{"term": {"deleted": False}}, {"term": {"hidden": False}}]
    if not sees_confidential(principal):
        clauses.append({"bool": {"must_not": [{"term": {"classification": CONFIDENTIAL}}]}})
    if principal.is_service:
        return [*clauses, {"term": {"state": PUBLISHED}}] if drafts else clauses
    mine: Clause = {"term": {author_field: principal.subject}}
    audience: list[Clause] = [{"term": {"visibility": PUBLIC}}, mine]
    if sees_internal(principal):
        audience.append({"term": {"visibility": INTERNAL}})
    if communities and memberships_reach(principal):
        audience.append({"bool": {"filter": [{"term": {"visibility": COMMUNITY}}, {"terms": {"community": list(communities)}}]}})
    # PRIVATE items match the author clause only.
    clauses.append({"bool": {"should": audience, "minimum_should_match": 1}})
    if drafts:  # a draft is its author's
        clauses.append({"bool": {"should": [{"term": {"state": PUBLISHED}}, mine], "minimum_should_match": 1}})
    return clauses


# --- content, precomputed: who may see a post or micropost, stored on its search document -----
# The clauses above are three levels of bool over fields that are true for nearly every document
# (deleted, hidden, state, visibility): every candidate a query matches advances each of them,
# about half of a Search's query time over a million posts (docs/search.md). The same rule kept
# as one keyword field of tokens, written by the projection from those fields, is one filter of
# a few terms. ``content_audience`` makes a document's tokens, ``audience_clause`` a caller's.
AUDIENCE_FIELD = "audience"
# Tokens of a mark ``+c``: a CONFIDENTIAL item's, held by whoever sees_confidential.
_CONFIDENTIAL_MARK = "+c"


def content_audience(item: Content) -> list[str]:
    """The audience tokens of a content item with drafts (posts, microposts): whoever holds one
    (``audience_tokens``) sees it in lists and searches, exactly as ``may_see_content(listed=True)``
    decides. No token for a deleted or hidden item (no list shows it to anyone)."""
    if item.deleted or item.hidden:
        return []
    mark = _CONFIDENTIAL_MARK if item.classification == CONFIDENTIAL else ""
    tokens = [f"author{mark}:{item.author_id}"]
    if item.published:
        tokens.append("service")
        if item.visibility == PUBLIC:
            tokens += [f"public{mark}", f"staff{mark}"]  # staff: whoever sees INTERNAL sees PUBLIC too (one token to match)
        elif item.visibility == INTERNAL:
            tokens.append(f"staff{mark}")
        elif item.visibility == COMMUNITY and item.community:
            tokens.append(f"community{mark}:{item.community}")
    return tokens


def audience_tokens(principal: Principal, communities: Sequence[str]) -> list[str]:
    """The tokens ``principal`` holds (``communities``: theirs)."""
    if principal.is_service:
        return ["service"]
    tokens: list[str] = []
    for mark in ("", _CONFIDENTIAL_MARK) if sees_confidential(principal) else ("",):
        tokens += [f"author{mark}:{principal.subject}", f"staff{mark}" if sees_internal(principal) else f"public{mark}"]
        if memberships_reach(principal):
            tokens += [f"community{mark}:{community}" for community in communities]
    return tokens


def audience_clause(principal: Principal, communities: Sequence[str], max_terms: int = 65_536) -> Clause:
    """The filter clause of ``content_audience``: the documents holding one of the caller's
    tokens. Elasticsearch refuses a terms query of more than ``max_terms`` values (its
    index.max_terms_count), so a longer list of communities is several."""
    tokens = audience_tokens(principal, communities)
    # A token without an id (staff, public, service) is true of a large share of an index: each
    # is its own term query (a terms query of more than 16 values is read whole into a bitset).
    should: list[Clause] = [{"term": {AUDIENCE_FIELD: token}} for token in tokens if ":" not in token]
    named = [token for token in tokens if ":" in token]
    should += [{"terms": {AUDIENCE_FIELD: named[i:i + max_terms]}} for i in range(0, len(named), max_terms)]
    return {"bool": {"should": should, "minimum_should_match": 1}}


# --- library: wiki spaces and media items -------------------------------------------------------
@dataclass(frozen=True)
class Library:
    """What decides who sees a space (and its pages) or a media item."""

    visibility: str
    owner: str  # profiles/{id} or communities/{id}
    members: tuple[str, ...] = field(default_factory=tuple)
    deleted: bool = False
    classification: str = INTERNAL  # of a media item, or of a space and so its pages


def may_see_library(principal: Principal, item: Library, is_member: IsMember | None = None) -> bool:
    if item.deleted or (item.classification == CONFIDENTIAL and not sees_confidential(principal)):
        return False
    if principal.is_service or item.visibility == PUBLIC:
        return True
    if principal.kind not in ("employee", "alumni"):
        return False
    if item.owner == f"profiles/{principal.subject}" or (item.visibility == INTERNAL and sees_internal(principal)):
        return True
    if not memberships_reach(principal):
        return False
    if principal.subject in item.members:
        return True
    community = item.owner.removeprefix("communities/")
    return community != item.owner and is_member is not None and is_member(community, principal.subject)


def library_audience(principal: Principal, communities: Sequence[str] = ()) -> Clause | None:
    """The audience clause of ``may_see_library`` (None: everything), over documents with
    ``visibility``, ``owner``, ``members`` and, for media items, ``classification`` (a document
    without it is INTERNAL); ``communities``: the caller's."""
    if principal.is_service:
        return None
    should: list[Clause] = [{"term": {"visibility": PUBLIC}}]
    if principal.kind in ("employee", "alumni"):
        should.append({"term": {"owner": f"profiles/{principal.subject}"}})
    if sees_internal(principal):
        should.append({"term": {"visibility": INTERNAL}})
    if memberships_reach(principal):
        should.append({"term": {"members": principal.subject}})
        if communities:
            should.append({"terms": {"owner": [f"communities/{c}" for c in communities]}})
    seen: Clause = {"bool": {"should": should, "minimum_should_match": 1}}
    if not sees_confidential(principal):
        seen["bool"]["must_not"] = [{"term": {"classification": CONFIDENTIAL}}]
    return seen


def library_clauses(principal: Principal, communities: Sequence[str] = ()) -> list[Clause]:
    seen = library_audience(principal, communities)
    return [{"term": {"deleted": False}}] + ([] if seen is None else [seen])


# --- jams ------------------------------------------------------------------------------------------
def may_see_jam(principal: Principal, jam_id: str, visibility: str) -> bool:
    if principal.kind not in ("guest", "alumni"):
        return True
    return visibility == PUBLIC or jam_id in principal.jams


def jam_audience(principal: Principal) -> Clause | None:
    """The clause form of ``may_see_jam`` over documents carrying ``jam_id`` and ``visibility``
    (a jam's own, as its stats document has them); None: every jam."""
    if principal.kind not in ("guest", "alumni"):
        return None
    return {"bool": {"should": [{"term": {"visibility": PUBLIC}}, {"terms": {"jam_id": list(principal.jams)}}], "minimum_should_match": 1}}


def visible_jams(principal: Principal, public_jams: Collection[str]) -> list[str] | None:
    """The jam ids whose ideas and threads the principal sees (None: all); ``public_jams``:
    the ids of the PUBLIC jams."""
    if principal.kind not in ("guest", "alumni"):
        return None
    return list(dict.fromkeys([*principal.jams, *public_jams]))


def jam_clauses(principal: Principal, public_jams: Collection[str], jam_field: str = "jam_id") -> list[Clause]:
    jams = visible_jams(principal, public_jams)
    return [{"term": {"deleted": False}}] + ([] if jams is None else [{"terms": {jam_field: jams}}])


# --- the employee directory ------------------------------------------------------------------------
def may_browse_directory(principal: Principal) -> bool:
    """Guests see the jams that invited them and public content, not who works here."""
    return principal.kind != "guest"


def directory_clauses(principal: Principal) -> list[Clause]:
    return [{"term": {"deleted": False}}] + ([] if may_browse_directory(principal) else [NOTHING])
