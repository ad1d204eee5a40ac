"""Chunking that respects Chinese: clauses, sentence ends, heading paths, tables with their header."""

from __future__ import annotations

from dizuo.kb import chunk_blocks, parse_markdown
from dizuo.kb.chunking import clause_of, sentences
from tests.support.shared import DATA, needs_shared

STANDARD = """# Q/HJ 017 检验规范

## 4 技术要求

### 4.1 柱塞直径

| 型号 | 公称直径/mm | 上偏差/mm | 下偏差/mm |
|---|---|---|---|
| HJ-P12 | 12.000 | -0.002 | -0.006 |
| HJ-P14 | 14.000 | -0.002 | -0.007 |

### 4.2 几何公差

4.2.1 柱塞外圆圆度应不大于 0.0008 mm。

4.2.2 柱塞外圆圆柱度应不大于 0.0010 mm。

### 4.6 密封性

在试验压力 20 MPa 条件下，密封时间应为 10 s ～ 30 s（含端值）。密封时间短于 10 s 判为泄漏超差！长于 30 s 判为卡滞风险？需复检；

## 7 不合格品处置

- 隔离不合格品
- 填写处置单
"""


def test_sentences_end_at_chinese_punctuation_and_keep_it() -> None:
    assert sentences("第一句。第二句！第三句？第四句；“引号。”之后") == [
        "第一句。",
        "第二句！",
        "第三句？",
        "第四句；",
        "“引号。”",
        "之后",
    ]


def test_clause_numbers_are_read_but_years_and_quantities_are_not() -> None:
    assert clause_of("4.2.1 柱塞外圆圆度") == "4.2.1"
    assert clause_of("4.10 材料") == "4.10"
    assert clause_of("7 不合格品处置", heading=True) == "7"
    assert clause_of("第十二条 数据出境") == "第十二条"
    assert clause_of("2024 年修订", heading=True) is None
    assert clause_of("20 MPa 下试验") is None  # a paragraph opening with a quantity
    assert clause_of("柱塞应逐件检验") is None


def test_each_chunk_carries_its_heading_path_and_clause() -> None:
    chunks = chunk_blocks(parse_markdown(STANDARD))
    roundness = next(c for c in chunks if "圆度" in c.text and "圆柱度" not in c.text)
    assert roundness.clause == "4.2.1"
    assert roundness.heading_path == ("Q/HJ 017 检验规范", "4 技术要求", "4.2 几何公差")
    assert next(c for c in chunks if "圆柱度" in c.text).clause == "4.2.2"
    sealing = next(c for c in chunks if "密封时间" in c.text)
    assert sealing.clause == "4.6" and sealing.text.endswith("需复检；")
    assert all(c.text.strip() for c in chunks)
    disposal = next(c for c in chunks if "隔离" in c.text)
    assert disposal.clause == "7" and disposal.text == "- 隔离不合格品\n- 填写处置单"


def test_table_rows_keep_their_header() -> None:
    chunks = [c for c in chunk_blocks(parse_markdown(STANDARD)) if c.kind == "table"]
    assert len(chunks) == 1 and chunks[0].clause == "4.1"
    assert "型号: HJ-P14；公称直径/mm: 14.000；上偏差/mm: -0.002；下偏差/mm: -0.007" in chunks[0].text
    small = [c for c in chunk_blocks(parse_markdown(STANDARD), max_chars=90) if c.kind == "table"]
    assert len(small) == 2  # one row each, each with the header line
    assert all(c.text.startswith("型号 | 公称直径/mm | 上偏差/mm | 下偏差/mm\n") for c in small)


def test_no_chunk_is_longer_than_the_limit_or_cuts_a_sentence_it_could_keep() -> None:
    paragraph = "".join(f"这是第{n}句话，用来测试分块。" for n in range(40))
    chunks = chunk_blocks(parse_markdown(f"# 标题\n\n{paragraph}\n"), max_chars=100)
    assert all(len(c.text) <= 100 for c in chunks)
    assert all(c.text.endswith("。") for c in chunks)
    assert "".join(c.text for c in chunks) == paragraph


def test_a_sentence_longer_than_a_chunk_is_cut_at_a_comma() -> None:
    long = "，".join(["很长的从句"] * 30) + "。"
    chunks = chunk_blocks(parse_markdown(long), max_chars=50)
    assert all(len(c.text) <= 50 for c in chunks)
    assert all(c.text.endswith(("，", "。")) for c in chunks)
    assert "".join(c.text for c in chunks) == long


def test_english_sentences_keep_their_spaces() -> None:
    chunks = chunk_blocks(parse_markdown("First sentence. Second sentence; third one!"))
    assert chunks[0].text == "First sentence. Second sentence; third one!"


@needs_shared
def test_the_shared_standard_is_chunked_clause_by_clause() -> None:
    text = (DATA / "inspection" / "standards" / "Q-HJ-017-柱塞偶件检验规范.md").read_text(encoding="utf-8")
    chunks = chunk_blocks(parse_markdown(text))
    clauses = {c.clause for c in chunks}
    assert {"4.1", "4.2.1", "4.2.3", "4.6", "5.1.2", "6.2", "6.3", "7"} <= clauses
    assert next(c for c in chunks if "Ac=1、Re=2" in c.text).clause == "6.2"
