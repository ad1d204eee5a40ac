"""Every word the console shows exists in both languages, and English pages carry no Chinese."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from dizuo.accounts.members import ROLES
from dizuo.config import DATA_CLASSES
from dizuo.console.i18n import TEXT, Words
from dizuo.guard import ENTITY_TYPES

CONSOLE = Path(__file__).resolve().parents[2] / "src" / "dizuo" / "console"
HAN = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")  # CJK ideographs and punctuation


def used_keys() -> set[str]:
    found = set()
    for path in [*CONSOLE.glob("templates/*.html"), *CONSOLE.glob("*.py")]:
        if path.name == "i18n.py":  # its docstring shows the call, not a key
            continue
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r"""\bt\(\s*['"]([a-z_]+\.?[a-z_.-]*)['"]""", text))
    return found


def test_every_key_the_pages_use_is_translated() -> None:
    static = {key for key in used_keys() if not key.endswith(".")}  # 'class.' ~ value: below
    assert static - set(TEXT) == set()


# Keys built from a value ('role.' ~ actor.role): every value the services can give has its words.
VALUES = {
    "role": ROLES,
    "class": DATA_CLASSES,
    "size": ("small", "medium", "large"),
    "state": ("active", "expired", "revoked", "not_yet_valid", "exhausted"),
    "keys": ("active", "revoked", "expired"),
    "status": ("ok", "estimated", "client_gone", "upstream_cut", "blocked"),
    "health": ("closed", "open", "half_open", "unavailable"),
    "guard": ("prompt", "answer", "log", "redact", "block"),
    "run": ("queued", "running", "done", "failed", "interrupted"),
    "entity": ENTITY_TYPES,
}


@pytest.mark.parametrize("prefix", sorted(VALUES))
def test_every_value_shown_by_name_is_translated(prefix: str) -> None:
    assert f"{prefix}." in used_keys()
    assert {f"{prefix}.{value}" for value in VALUES[prefix]} - set(TEXT) == set()


@pytest.mark.parametrize("key", sorted(TEXT))
def test_both_languages_say_the_same_thing(key: str) -> None:
    zh, en = TEXT[key]
    assert zh and en
    assert not HAN.search(en), f"{key}: Chinese in the English text"
    fields = {name for _, name, _, _ in string.Formatter().parse(zh) if name}
    assert fields == {name for _, name, _, _ in string.Formatter().parse(en) if name}


@pytest.mark.parametrize(
    ("exact", "shown"),
    [
        ("33.104500", "33.10"),
        ("33.105000", "33.11"),  # half up, as money is rounded
        ("1234567.000000", "1,234,567.00"),
        ("0.000085", "< 0.01"),  # spent, if little: never a misleading 0.00
        ("0.000000", "0.00"),
    ],
)
def test_money_reads_to_the_fen(exact: str, shown: str) -> None:
    assert Words.cny(exact) == shown
