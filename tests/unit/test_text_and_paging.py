"""Python-side analysis (folding, collation) and page tokens."""

from __future__ import annotations

import pytest

from watercooler.errors import InvalidArgument
from watercooler.rpc import decode_page_token, encode_page_token, page_size, parse_name
from watercooler.text import collation_key, fold


def test_fold_removes_accents_and_case():
    assert fold("José ÅNGSTRÖM Łódź") == "jose angstrom łodz"
    assert fold("Straße") == "strasse"


def test_collation_key_orders_like_a_directory():
    names = ["Zoë", "Ángel", "Andrés", "Émile", "Oscar", "Ölaf", "ábel", "Bob"]
    assert sorted(names, key=collation_key) == ["ábel", "Andrés", "Ángel", "Bob", "Émile", "Ölaf", "Oscar", "Zoë"]
    # Scripts sort as blocks in UCA order: Latin, Greek, Cyrillic, then Han.
    mixed = ["王芳", "Иван", "Αλέξης", "Zoe", "Алексей"]
    assert sorted(mixed, key=collation_key) == ["Zoe", "Αλέξης", "Алексей", "Иван", "王芳"]


def test_page_token_round_trip_and_binding():
    token = encode_page_token([1.5, "abc", 3], "query-a")
    assert decode_page_token(token, "query-a") == [1.5, "abc", 3]
    with pytest.raises(InvalidArgument) as err:
        decode_page_token(token, "query-b")
    assert err.value.field == "page_token"
    with pytest.raises(InvalidArgument):
        decode_page_token("%%%garbage", "query-a")


def test_page_size_bounds():
    assert page_size(0) == 20
    assert page_size(100) == 100
    with pytest.raises(InvalidArgument):
        page_size(101)
    with pytest.raises(InvalidArgument):
        page_size(-1)


@pytest.mark.parametrize("name", ["", "profile/e1", "profiles/", "profiles/a/b", "blogs/e1"])
def test_bad_resource_names(name):
    with pytest.raises(InvalidArgument) as err:
        parse_name(name, "profiles")
    assert err.value.field == "name"
