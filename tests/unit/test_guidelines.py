"""The guidelines rule as other services apply it: a yes is remembered per version, a no never."""

from __future__ import annotations

import dataclasses

import pytest

from watercooler.auth import Principal
from watercooler.config import load
from watercooler.guidelines import GuidelinesAcceptance, GuidelinesNotAccepted


class Recorded(GuidelinesAcceptance):
    """The rule with the profiles service's answers given (the integration test asks the real one)."""

    def __init__(self, version: str, accepted: dict[str, str]):
        super().__init__(dataclasses.replace(load(), guidelines_version=version), "test")
        self.accepted, self.asked = accepted, 0

    def fetch(self, person_id: str) -> str:
        self.asked += 1
        return self.accepted.get(person_id, "")


def person(subject: str, kind: str = "employee") -> Principal:
    return Principal(subject=subject, kind=kind)


def test_a_new_version_asks_again_and_a_yes_is_asked_once_a_no_every_time():
    current = Recorded("2027-01", {"ann": "2026-12", "bob": "2027-01"})
    with pytest.raises(GuidelinesNotAccepted) as old:
        current.require(person("ann"))  # accepted the previous version only
    assert "guidelines_version" in old.value.message and "2027-01" in old.value.message
    assert old.value.details == {"guidelines_version": "2027-01"}
    current.require(person("bob"))
    current.require(person("bob"))
    with pytest.raises(GuidelinesNotAccepted):
        current.require(person("ann"))
    assert current.asked == 3  # bob once, ann each time (she may accept at any moment)
    current.accepted["ann"] = "2027-01"
    current.require(person("ann"))


def test_services_are_not_asked():
    rule = Recorded("v1", {})
    rule.require(person("nightly-job", "service"))
    assert rule.asked == 0
