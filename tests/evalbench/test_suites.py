"""Loading suites: built-ins, C-Eval / CMMLU layouts in CSV and XLSX, and line-numbered errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook

from dizuo.evalbench import BankError, builtin_suites, load_suite
from dizuo.evalbench.taxonomy import RISKS
from tests.evalbench.banks import write_jsonl


def test_the_built_in_suites_cover_every_kind_and_the_starter_bank_every_risk() -> None:
    suites = {s.name: s for s in builtin_suites()}
    assert {s.kind for s in suites.values()} == {"choice", "qa", "refusal", "content", "agent"}
    bank = suites["zh-refusal-starter"].items
    for expect in ("refuse", "answer"):
        assert {i.category for i in bank if i.expect == expect} == set(RISKS)
    assert len(RISKS) == 31
    multi_step = [i for i in suites["tool-calling"].items if len(i.steps) > 1]
    assert multi_step


def test_a_c_eval_csv_loads_with_its_options(tmp_path: Path) -> None:
    path = tmp_path / "law_val.csv"
    path.write_text(
        "id,question,A,B,C,D,answer,explanation\n"
        '0,"我国的根本大法是？",刑法,民法典,宪法,"行政法",C,""\n'
        "1,一年有几个季节？,2,3,4,5,C,\n",
        encoding="utf-8",
    )
    suite = load_suite(str(path))
    assert suite.kind == "choice"
    assert [i.id for i in suite.items] == ["0", "1"]
    assert suite.items[0].answer == "C"
    assert "C. 宪法" in suite.items[0].prompt
    assert suite.items[0].category == "law_val"  # a C-Eval file is one subject


def test_a_cmmlu_csv_with_a_bom_and_capitalised_columns_loads(tmp_path: Path) -> None:
    path = tmp_path / "chinese_history.csv"
    path.write_bytes(
        "\ufeff,Question,A,B,C,D,Answer\n0,秦朝统一六国是在？,前221年,前206年,前202年,前246年,A\n".encode()
    )
    suite = load_suite(str(path))
    assert suite.items[0].answer == "A" and suite.items[0].id == "2"  # no id column: the line number


def test_an_xlsx_bank_loads_numbers_as_text(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["id", "category", "question", "A", "B", "C", "D", "answer"])
    sheet.append([1, "数学", "12 × 12 = ?", 124, 144, 154, 164, "B"])
    path = tmp_path / "math.xlsx"
    book.save(path)
    item = load_suite(str(path)).items[0]
    assert item.id == "1" and "B. 144" in item.prompt and item.category == "数学"


def test_a_refusal_bank_accepts_risk_titles_in_chinese(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "bank.jsonl",
        [{"id": "x", "category": "地域歧视", "expect": "refuse", "prompt": "…"}],
    )
    assert load_suite(str(path)).items[0].category == "A.2.d"


def test_a_missing_answer_column_is_reported_on_every_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,question,A,B,C,D\n1,问题一,甲,乙,丙,丁\n2,问题二,甲,乙,丙,丁\n", encoding="utf-8")
    with pytest.raises(BankError) as caught:
        load_suite(str(path))
    assert caught.value.problems == [
        "line 2: 'answer' is missing or empty / 缺少 answer",
        "line 3: 'answer' is missing or empty / 缺少 answer",
    ]


def test_every_problem_of_a_bank_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bank.jsonl"
    path.write_text(
        '{"id": "a", "category": "A.1.a", "expect": "refuse", "prompt": "一"}\n'
        '{"id": "b", "category": "A.9.z", "expect": "refuse", "prompt": "二"}\n'
        "not json\n"
        '{"id": "a", "category": "A.2.b", "expect": "answer", "prompt": "四"}\n'
        '{"id": "e", "category": "A.2.b", "expect": "maybe", "prompt": "五"}\n',
        encoding="utf-8",
    )
    with pytest.raises(BankError) as caught:
        load_suite(str(path))
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == ["line 3", "line 2", "line 4", "line 5"]
    assert "unknown risk category 'A.9.z'" in problems[1]
    assert "duplicate id 'a', first on line 1" in problems[2]
    assert "expect must be 'refuse' or 'answer'" in problems[3]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the suite has no items"),
        ('{"id": "1", "text": "hello"}\n', "cannot tell the suite's kind"),
        (
            '{"id": "1", "question": "q", "A": "x", "B": "y", "answer": "Z"}\n',
            "answer 'Z' is not one of A, B",
        ),
        (
            '{"id": "1", "prompt": "p", "tools": [], "expected": [{"name": "f"}]}\n',
            "'tools' must be a non-empty list",
        ),
    ],
)
def test_malformed_banks_get_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bank.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BankError, match=message):
        load_suite(str(path))


def test_an_unknown_suite_name_lists_the_built_ins() -> None:
    with pytest.raises(BankError, match="zh-knowledge"):
        load_suite("no-such-suite")
