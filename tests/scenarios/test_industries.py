"""GB/T 4754-2017 as the scenarios read it: 20 sections and 97 divisions shipped with the package; a
need names a section or one of its divisions, by code or by name, and keeps both."""

from __future__ import annotations

from typing import Any

import pytest

from dizuo.errors import DizuoError
from dizuo.scenarios.industries import SECTIONS, classify, divisions
from dizuo.scenarios.service import Scenarios
from dizuo.store import Database


def test_the_97_divisions_are_shipped_each_under_its_section() -> None:
    found = divisions()
    assert list(found) == [f"{n:02d}" for n in range(1, 98)]
    assert {d.section for d in found.values()} == set(SECTIONS)  # every section has divisions
    assert len({d.name for d in found.values()}) == 97
    assert found["37"].name == "铁路、船舶、航空航天和其他运输设备制造业" and found["37"].section == "C"
    assert found["65"].name == "软件和信息技术服务业" and found["65"].section == "I"
    # Sections hold consecutive divisions, in the standard's order (A 01–05, B 06–12, C 13–43 …).
    order = [d.section for d in found.values()]
    assert order == sorted(order)
    assert [c for c, d in found.items() if d.section == "C"] == [f"{n}" for n in range(13, 44)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("C", ("C", None)),
        ("c", ("C", None)),
        ("制造业", ("C", None)),
        ("37", ("C", "37")),
        ("C37", ("C", "37")),
        (" 铁路、船舶、航空航天和其他运输设备制造业 ", ("C", "37")),
        ("55", ("G", "55")),
        ("A37", None),  # a division of another section
        ("98", None),
        ("造船业", None),
    ],
)
def test_a_section_or_a_division_by_code_or_name(value: str, expected: tuple[str, str | None] | None) -> None:
    assert classify(value) == expected


def test_a_need_naming_a_division_keeps_it_and_its_section(empty_database_url: str) -> None:
    from dizuo.accounts import create_org

    db = Database(empty_database_url)
    db.upgrade()
    org = create_org(db, "船机厂").id
    need: dict[str, Any] = {"title": "船用柴油机配件质检", "district": "江津区", "description": "每月约 3000 份质检报告需要人工核对。"}  # fmt: skip
    made = Scenarios(db).create(org, {**need, "industry": "37"}, "t")
    assert (made["industry"], made["industry_name"]) == ("C", "制造业")
    assert (made["division"], made["division_name"]) == ("37", "铁路、船舶、航空航天和其他运输设备制造业")
    whole = Scenarios(db).create(org, {**need, "industry": "制造业"}, "t")
    assert (whole["industry"], whole["division"]) == ("C", None)
    with pytest.raises(DizuoError) as refused:
        Scenarios(db).create(org, {**need, "industry": "造船业"}, "t")
    assert refused.value.param == "industry" and "division" in refused.value.message("en")
    db.dispose()
