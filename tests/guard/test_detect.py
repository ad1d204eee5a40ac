"""Detectors: each identifier found by its real rules, exact offsets, hard negatives left alone."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from stdnum.cn import ric

from dizuo.guard import Scanner, scan
from dizuo.guard.synth import labeled_lines
from tests.support.shared import DATA, needs_shared

SAMPLE = DATA / "pii" / "sample.jsonl"


def found(text: str) -> list[tuple[str, str]]:
    return [(e.type, e.value) for e in scan(text)]


@needs_shared
def test_the_shared_sample_is_found_exactly() -> None:
    lines = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(lines) == 60
    for line in lines:
        assert [e.as_dict() for e in scan(line["text"])] == line["entities"], line["text"]


def test_every_type_reaches_the_required_precision_and_recall_on_the_generated_set() -> None:
    # The bar: precision and recall >= 0.99 per entity type on >= 2,000 labeled lines.
    counts: dict[str, Counter[str]] = {}
    lines = list(labeled_lines(2400))
    for line in lines:
        want = {(e["type"], e["start"], e["end"]) for e in line["entities"]}
        got = {(e.type, e.start, e.end) for e in scan(line["text"])}
        for kind, outcome in (
            [(t[0], "tp") for t in want & got]
            + [(t[0], "fp") for t in got - want]
            + [(t[0], "fn") for t in want - got]
        ):
            counts.setdefault(kind, Counter())[outcome] += 1
    assert len(counts) == 8
    for kind, c in counts.items():
        assert c["tp"] / (c["tp"] + c["fp"]) >= 0.99, (kind, c)
        assert c["tp"] / (c["tp"] + c["fn"]) >= 0.99, (kind, c)
    assert sum(not line["entities"] for line in lines) >= 700  # a third are hard negatives


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("身份证 11010519491231002X 已登记", [("CN_RESIDENT_ID", "11010519491231002X")]),
        ("身份证 110105194912310021 校验位错", []),
        ("长流水 911010519491231002X1 不是身份证", []),
        (
            "手机 138-0013-8000 与 +86 139 0013 9000",
            [("CN_MOBILE", "138-0013-8000"), ("CN_MOBILE", "+86 139 0013 9000")],
        ),
        ("手机 12000138000 不存在的号段", []),
        ("卡号 6222 0233 0792 4408", [("BANK_CARD", "6222 0233 0792 4408")]),
        ("订单 4111111111111111 没有说是卡", []),  # Visa-shaped, but nothing says it is a card
        ("信用卡 4111111111111111 到期", [("BANK_CARD", "4111111111111111")]),
        (
            "车牌 京AD12345 和 粤B·12345",
            [("CN_LICENSE_PLATE", "京AD12345"), ("CN_LICENSE_PLATE", "粤B·12345")],
        ),
        ("护照 E12345678", [("CN_PASSPORT", "E12345678")]),
        ("图号 E12345678", []),
        ("港澳通行证 C12345678", [("CN_HK_MACAO_PERMIT", "C12345678")]),
        ("key: AKIAIOSFODNN7EXAMPLE", [("API_KEY", "AKIAIOSFODNN7EXAMPLE")]),
        (
            "Authorization: Bearer abcdefghijklmnop0123456789",
            [("BEARER_TOKEN", "Bearer abcdefghijklmnop0123456789")],
        ),
        ("服务器 10.2.3.40 与 fe80::1", [("IP_ADDRESS", "10.2.3.40"), ("IP_ADDRESS", "fe80::1")]),
        ("版本 v1.2.3.4 不是地址", []),
        ("邮件 li.lei+qc@example.com。", [("EMAIL", "li.lei+qc@example.com")]),
    ],
)
def test_validated_detection(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


def with_check_digit(body: str) -> str:
    return body + ric.calc_check_digit(body + "0")


def test_a_right_check_digit_is_not_enough() -> None:
    assert found(f"身份证 {with_check_digit('11010519491231002')}") != []  # the control: valid
    assert found(f"生日不存在 {with_check_digit('11010519490230002')}") == []  # 30 February
    assert found(f"未来出生 {with_check_digit('11010520990101002')}") == []
    assert found(f"省级区划不存在 {with_check_digit('99010519491231002')}") == []


def test_private_key_block() -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7V\nabcdefghijklmnopqrstuv\n-----END RSA PRIVATE KEY-----"
    assert found(f"配置如下：\n{key}\n请检查") == [("PRIVATE_KEY", key)]


def test_offsets_are_characters_even_after_emoji_and_chinese() -> None:
    text = "😀客户：王芳，手机13800138000🙂"
    (entity,) = scan(text)
    assert text[entity.start : entity.end] == "13800138000" == entity.value


def test_adjacent_entities_sharing_a_separator_are_both_found() -> None:
    assert found("13800138000,13900139000") == [("CN_MOBILE", "13800138000"), ("CN_MOBILE", "13900139000")]


def test_keywords_and_custom_patterns() -> None:
    scanner = Scanner(keywords=["蓝鲸项目", "凸轮轴图纸"], patterns=[r"QC-\d{6}"])
    entities = scanner.scan("蓝鲸项目的凸轮轴图纸编号 QC-202611，联系 13800138000")
    assert [(e.type, e.value) for e in entities] == [
        ("KEYWORD", "蓝鲸项目"),
        ("KEYWORD", "凸轮轴图纸"),
        ("CUSTOM", "QC-202611"),
        ("CN_MOBILE", "13800138000"),
    ]


def test_clean_text_has_nothing() -> None:
    text = "船用柴油机配件质量检验报告显示，本批次柱塞偶件的尺寸、硬度和表面粗糙度均符合技术条件要求。" * 50
    assert scan(text) == []


def test_a_bare_yaml_off_means_off() -> None:
    from dizuo.config import parse_config

    config = parse_config(
        {"guard": {"default": {"action": False}, "classes": {"core": {"action": "block"}}}}, "t"
    )
    assert config.guard.default.action == "off" and config.guard.classes["core"].action == "block"


def test_a_text_skipped_without_regex_matching_holds_no_candidate_at_all() -> None:
    # Texts with no ASCII letter, digit or colon skip RE2. The claim: RE2 would find no candidate of
    # any built-in type in them. Checked on every window of the generated lines (entities and hard
    # negatives cut at every place), and on texts made to come close.
    from dizuo.guard import detect

    texts = [line["text"] for line in labeled_lines(300)]
    texts += [
        "请拨打１３８００１３８０００联系我",  # full-width digits: not digits to RE2 either
        "身份证号：一一〇一〇五一九九〇〇一〇一一二三四",
        "车牌京Ａ·１２３４５，邮箱：ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ",
        "—————BEGIN PRIVATE KEY—————",
        "：：１",
        "本机地址是::，不是别的",  # the IPv6 unspecified address: colons only
    ]
    skipped = 0
    for text in texts:
        for size in (1, 2, 3, 8, 20, len(text)):
            for start in range(0, max(1, len(text) - size + 1)):
                window = text[start : start + size]
                if detect._ANY_CANDIDATE.search(window) is not None:
                    continue
                skipped += 1
                data = window.encode("utf-8")
                assert detect._MATCH(detect._UNANCHORED, data, 0, len(data))[0][0] < 0, window
    assert skipped > 1000  # the check ran on many texts that skip
    assert Scanner().scan("请拨打１３８００１３８０００联系我") == []
    assert [e.type for e in scan("请拨打13800138000联系我")] == ["CN_MOBILE"]
