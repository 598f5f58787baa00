"""The fast collation keys are pyuca's keys, character for character."""

from __future__ import annotations

import random

import pytest
import pyuca

from tools.synthetic import Company
from watercooler.collation import collation_key

_PYUCA = pyuca.Collator()


def pyuca_key(text: str) -> str:
    import unicodedata

    return "".join(f"{w:05x}" for w in _PYUCA.sort_key(unicodedata.normalize("NFC", text)))


NAMES = [
    "Ōtani, Shōhei", "Łukasz", "Ærø", "Zoë", "Ñúñez", "Dvořák", "Öztürk", "Иванов", "Ёлкин", "Йосиф", "Ωμέγα", "Ἀθῆναι",
    "王小明", "山田太郎", "김민준", "محمد", "Nguyễn Văn A", "ß", "ﬁnn", "Ångström", "O'Neil", "van der Berg", "", "123",
    # contractions and combining marks: the slow path must be taken, and give the same keys
    "l·l", "L·L", "ŀl", "l\u0301\u00b7", "Л\u0306", "и\u0306", "a\u0327\u0301", "x\u0308\u0323", "\u0e40\u0e01", "\u0cc6\u0cc2",
]


@pytest.mark.parametrize("name", NAMES)
def test_named_cases(name):
    assert collation_key(name) == pyuca_key(name)


def test_synthetic_company_and_random_strings_of_many_scripts():
    names = [p.sort_name for p in Company(employees=3_000, seed=5).people(3_000)]
    rng = random.Random(11)
    alphabet = [chr(c) for c in [*range(32, 0x250), *range(0x370, 0x530), *range(0x900, 0x980), *range(0xE00, 0xE60), 0x301, 0x308, 0x323, 0x327, 0xB7, 0x306]]
    names += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(5_000)]
    assert [collation_key(n) for n in names] == [pyuca_key(n) for n in names]
