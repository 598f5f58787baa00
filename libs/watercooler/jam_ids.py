"""The aggregate ids of a jam, its ideas and ballots: the jams service stores by them and the
read models find a jam's documents by them, so both use this one definition."""

from __future__ import annotations

from typing import Any

from .eventstore import stable_id


def jam_id_of(jam: str) -> Any:
    return stable_id("jam", jam)


def idea_aggregate_id(jam: str, idea: str) -> Any:
    return stable_id("jam-idea", jam, idea)


def ballot_id(jam: str, participant: str) -> Any:
    return stable_id("jam-ballot", jam, participant)
