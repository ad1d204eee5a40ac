"""The standard's rules are read from its text: change the text and the rules change."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dizuo.apps.inspection import Standard, StandardUnrecognized, load_standard, parse_report
from dizuo.apps.inspection.audit import audit
from dizuo.kb.formats import parse_document
from tests.apps.inspection.reports import DEFECTS, STANDARD, clean, markdown


def rule(standard: Standard, clause: str):  # type: ignore[no-untyped-def]
    return next(r for r in standard.rules if r.clause == clause)


def test_limits_tables_and_plans_come_from_the_text(standard: Standard) -> None:
    assert standard.name == "Q/HJ 017—2024"
    diameter = rule(standard, "4.1")
    assert diameter.limit_for("HJ-P14") is not None
    p14 = diameter.limit_for("HJ-P14")
    assert (p14.low, p14.high, p14.unit) == (Decimal("13.993"), Decimal("13.998"), "mm")
    roundness = rule(standard, "4.2.1").limit
    assert roundness is not None and roundness.high == Decimal("0.0008") and roundness.unit == "mm"
    assert roundness.in_unit("μm").high == Decimal("0.8")  # type: ignore[union-attr]
    clearance = rule(standard, "4.3").limit
    assert clearance is not None and (clearance.low, clearance.high) == (Decimal("0.0015"), Decimal("0.0030"))
    hardness = rule(standard, "4.5")
    assert hardness.parts == {"柱塞", "柱塞套"} and hardness.limit.text() == "60～64 HRC"  # type: ignore[union-attr]
    assert rule(standard, "4.6").notes == {"low": "泄漏超差", "high": "卡滞风险，需复检滑动性"}
    assert rule(standard, "4.9").qualitative
    assert standard.sampling.sample_size(200) == 32 and standard.sampling.sample_size(90) is None
    assert standard.sampling.ac_re[50] == (1, 2)
    assert standard.piece_items == ("直径", "配合间隙", "密封性", "外观", "磁粉检测")
    assert standard.sample_items == ("几何公差", "表面粗糙度", "硬度")
    assert "审核人签字" in standard.required and "材料质量证明书编号" in standard.required
    assert standard.escalation == (3, "8D", "7")


def test_a_tighter_standard_judges_the_same_report_differently() -> None:
    text = STANDARD.read_text(encoding="utf-8")
    tighter = text.replace("0.0008 mm（0.8 μm）", "0.0004 mm（0.4 μm）").replace(
        "批量 91～150 时样本量为 20", "批量 91～150 时样本量为 32"
    )
    assert tighter != text
    spec = clean()  # roundness 0.45 μm in every sample, 20 samples
    report = parse_report(parse_document("r.md", markdown(spec)), "r.md")
    assert audit(report, load_standard([(STANDARD.name, STANDARD.read_bytes())])).findings == []
    findings = audit(report, load_standard([("tight.md", tighter.encode())])).findings
    kinds = {(f.kind, f.clause) for f in findings}
    assert ("out_of_limit", "4.2.1") in kinds and ("sample_size", "5.1.2") in kinds


def test_a_text_that_is_not_a_standard_is_refused() -> None:
    with pytest.raises(StandardUnrecognized) as caught:
        load_standard([(DEFECTS.name, DEFECTS.read_bytes())])
    assert caught.value.code == "standard_unrecognized"
    assert "批量与样本量" in caught.value.message("zh") and "sample" in caught.value.message("en")


def test_a_standard_split_over_two_files_reads_as_one() -> None:
    text = STANDARD.read_text(encoding="utf-8")
    head, tail = text.split("## 5 抽样与检验方法")
    standard = load_standard(
        [("规范.md", head.encode()), ("附录.md", ("## 5 抽样与检验方法" + tail).encode())]
    )
    assert standard.sampling.sample_size(120) == 20 and len(standard.rules) >= 10
