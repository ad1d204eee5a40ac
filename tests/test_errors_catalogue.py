"""Every error message exists in Chinese and English with the same placeholders, and every code the
source raises has one."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from dizuo import errors
from dizuo.errors import pick_language
from tests.support.catalogue import every_message

MESSAGES = every_message()
SOURCE = Path(__file__).resolve().parent.parent / "src" / "dizuo"


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("code", sorted(MESSAGES))
def test_both_languages(code: str) -> None:
    zh, en = MESSAGES[code]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh), f"{code}: the zh message has no Chinese"
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in en), f"{code}: the en message has Chinese in it"
    # Placeholders may differ only where a field is language-specific (reason_zh / reason_en …).
    strip = {
        "reason_zh",
        "reason_en",
        "actual",
        "actual_en",
        "data_class_zh",
        "where_zh",
        "where_en",
        "missing",
        "missing_en",
        "limit_zh",
        "limit_en",
        "said_zh",
        "said_en",
        "state_zh",
        "state_en",
        "kind_zh",
        "kind_en",
    }
    assert fields(zh) - strip == fields(en) - strip


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, "zh"), (b"en-US,en;q=0.9", "en"), (b"zh-CN", "zh"), (b"fr-FR", "zh"), ("en", "en")],
)
def test_pick_language(header: bytes | str | None, expected: str) -> None:
    assert pick_language(header) == expected


# A code given where an error of the core's tree is raised, or as a feature's error class's default.
CORE = sorted(
    name
    for name in errors.__all__
    if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), errors.DizuoError)
)
RAISED = re.compile(rf"(?:\b(?:{'|'.join(CORE)})\(\s*|default_code\s*=\s*)\"([a-z][a-z_]+)\"")


def test_every_code_the_source_raises_has_a_message() -> None:
    raised = {
        (code, path.relative_to(SOURCE).as_posix())
        for path in SOURCE.rglob("*.py")
        for code in RAISED.findall(path.read_text(encoding="utf-8"))
    }
    assert len({code for code, _ in raised}) > 40  # the pattern still finds the raises
    assert sorted((code, where) for code, where in raised if code not in MESSAGES) == []
