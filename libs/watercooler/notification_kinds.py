"""Why a person is told something: the kinds of notifications (the projection makes them,
the profiles service's settings switch them off, the search service reads them)."""

from __future__ import annotations

KINDS = (
    "mention",  # mentioned in a micropost or a comment
    "reply",  # a reply to my micropost, or to my comment
    "comment",  # a comment on my post, micropost, wiki page or media item
    "rating",  # a rating of my blog post
    "like",  # a like of my micropost or comment
    "follower",  # someone follows me
    "connection_request",
    "connection_answer",  # my connection request accepted or declined
    "community_invitation",
    "wiki_edit",  # a page I created edited by someone else
    "jam_phase",  # a jam I take part in changed phase
    "jam_results",  # a jam I take part in published its results
)
