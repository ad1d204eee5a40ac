"""Every error message exists in Chinese and English with the same placeholders."""

from __future__ import annotations

import string

import pytest

from dizuo.errors import MESSAGES, pick_language


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
