"""Audits: the planted faults of the sample reports, clean reports in every format, exact numbers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dizuo.apps.inspection import Audit, History, ReportLayoutUnknown, Standard, audit, parse_report
from dizuo.errors import InvalidRequest
from dizuo.kb.formats import parse_document
from tests.apps.inspection.reports import WRITERS, Spec, clean, conclude, markdown, xlsx
from tests.support.shared import DATA, needs_shared

REPORTS = DATA / "inspection" / "reports"


def run(spec: Spec, standard: Standard, history: History | None = None, fmt: str = "md") -> Audit:
    name = f"report.{fmt}"
    return audit(parse_report(parse_document(name, WRITERS[fmt](spec)), name), standard, history)


def found(result: Audit) -> set[tuple[str, str, int | None, int | None]]:
    return {(f.kind, f.clause, f.piece, f.sample) for f in result.findings}


def shared_report(name: str, standard: Standard, history: History) -> Audit:
    data = (REPORTS / name).read_bytes()
    return audit(parse_report(parse_document(name, data), name), standard, history)


@needs_shared
def test_report_0611_wrong_piece_verdict_hidden_hardness_failure_and_wrong_acceptance(
    standard: Standard, history: History
) -> None:
    result = shared_report("JY-2025-0611-01.md", standard, history)
    assert not result.valid
    assert found(result) == {
        ("out_of_limit", "4.1", 17, None),  # 11.9935 mm < 12.000 − 0.006, reported 合格
        ("verdict_mismatch", "6.1", 17, None),
        ("out_of_limit", "4.6", 58, None),  # 8.7 s, reported 不合格: right, still a finding to trace
        ("count_mismatch", "6.1", None, None),  # 合格 119 / 不合格 1 should be 118 / 2
        ("out_of_limit", "4.5", 44, 6),  # sample 6: plunger HRC 59.5 < 60
        ("count_mismatch", "6.2", None, None),  # "不合格 0 件" in the sample
        ("batch_decision", "6.2", None, None),  # n=20, Ac=0, Re=1, one failure: 拒收, not 接收
    }
    assert (result.reported_decision, result.computed_decision) == ("accept", "reject")
    by_key = {(f.kind, f.clause): f for f in result.findings}
    diameter = by_key[("out_of_limit", "4.1")]
    assert (diameter.measured, diameter.limit, diameter.unit) == ("11.9935", "11.994～11.998 mm", "mm")
    assert diameter.root_cause_refs[0] == "QD-2024-012"  # 直径超下偏差
    assert by_key[("out_of_limit", "4.5")].root_cause_refs == ("QD-2022-047",)  # 表面硬度偏低
    assert by_key[("out_of_limit", "4.6")].root_cause_refs[0] == "QD-2022-031"  # 密封时间偏短
    assert "拒收" in by_key[("batch_decision", "6.2")].message


@needs_shared
def test_report_0702_missing_elements_short_sample_and_8d(standard: Standard, history: History) -> None:
    result = shared_report("JY-2025-0702-03.md", standard, history)
    assert not result.valid
    incomplete = {f.item for f in result.findings if f.kind == "incomplete"}
    assert incomplete == {"审核人签字", "材料质量证明书编号"}
    assert all(
        f.clause == "6.3" and f.root_cause_refs == ("QD-2024-019",)
        for f in result.findings
        if f.kind == "incomplete"
    )
    size = next(f for f in result.findings if f.kind == "sample_size")
    assert (size.clause, size.measured, size.limit) == ("5.1.2", "20", "32")  # lot 200 → 32 samples
    assert (result.reported_decision, result.computed_decision) == ("accept", "undetermined")
    clearance = {f.piece for f in result.findings if f.kind == "out_of_limit" and f.clause == "4.3"}
    sealing = {f.piece for f in result.findings if f.kind == "out_of_limit" and f.clause == "4.6"}
    assert clearance == sealing == {33, 34, 101}
    escalations = {f.item: f for f in result.findings if f.kind == "escalation"}
    assert set(escalations) == {"配合间隙", "密封时间"}
    assert all(f.clause == "7" and "8D" in f.message and "未提及" in f.message for f in escalations.values())
    assert escalations["配合间隙"].root_cause_refs[0] == "QD-2022-031"  # 间隙超上限 → 密封时间偏短
    assert escalations["密封时间"].root_cause_refs[0] == "QD-2022-031"
    assert not any(f.kind == "verdict_mismatch" for f in result.findings)  # its three 不合格 are right


@pytest.mark.parametrize("fmt", ["md", "docx", "xlsx", "html"])
def test_a_clean_report_has_no_findings_in_every_format(
    fmt: str, standard: Standard, history: History
) -> None:
    result = run(clean(), standard, history, fmt)
    assert result.findings == [] and result.valid
    assert (result.pieces_inspected, result.samples_inspected, result.computed_decision) == (
        120,
        20,
        "accept",
    )
    larger = run(clean("HJ-P16", lot=300), standard, history, fmt)  # 50 samples, Ac=1
    assert larger.findings == [] and larger.samples_required == 50


@pytest.mark.parametrize("fmt", ["md", "xlsx"])
def test_limits_are_inclusive_and_exact_at_the_fourth_decimal(fmt: str, standard: Standard) -> None:
    spec = clean()  # HJ-P12: 11.994 … 11.998 mm; clearance 0.0015 … 0.0030 mm; sealing 10 … 30 s
    for piece, column, value in [
        (1, "柱塞直径/mm", "11.9940"),
        (2, "柱塞直径/mm", "11.9980"),
        (3, "配合间隙/mm", "0.0030"),
        (4, "配合间隙/mm", "0.0015"),
        (5, "密封时间/s", "10.0"),
        (6, "密封时间/s", "30"),
    ]:
        spec.set_piece(piece, column, value)
    spec.set_sample(1, "柱塞Ra/μm", "0.10")  # ≤ 0.10 μm
    spec.set_sample(2, "圆度/μm", "0.8")  # ≤ 0.0008 mm, written in μm
    assert run(spec, standard, fmt=fmt).findings == []

    spec.set_piece(7, "柱塞直径/mm", "11.99399")  # 0.00001 mm under the lower limit
    spec.set_piece(8, "配合间隙/mm", "0.00301")
    spec.set_sample(3, "圆度/μm", "0.81")
    result = run(spec, standard, fmt=fmt)
    assert {(f.kind, f.clause, f.piece) for f in result.findings if f.kind == "out_of_limit"} == {
        ("out_of_limit", "4.1", 7),
        ("out_of_limit", "4.3", 8),
        ("out_of_limit", "4.2.1", 1 + 2 * 6),  # sample 3 is piece 13
    }
    measured = {f.piece: f.measured for f in result.findings if f.kind == "out_of_limit"}
    assert measured[7] == "11.99399" and measured[8] == "0.00301"  # as written, no float tail


def test_a_wrong_not_conforming_verdict_and_a_long_sealing_time(standard: Standard) -> None:
    spec = clean()
    spec.set_piece(5, "单件结论", "不合格")  # every value is fine
    spec.set_piece(9, "密封时间/s", "35.0")  # too long: 卡滞风险, reported 合格
    spec.set_piece(10, "磁粉检测", "有线性显示")
    spec.set_piece(10, "单件结论", "不合格")
    result = run(spec, standard)
    assert found(result) >= {
        ("verdict_mismatch", "6.1", 5, None),
        ("out_of_limit", "4.6", 9, None),
        ("verdict_mismatch", "6.1", 9, None),
        ("out_of_limit", "4.9", 10, None),
    }
    assert ("verdict_mismatch", "6.1", 10, None) not in found(result)
    long = next(f for f in result.findings if f.kind == "out_of_limit" and f.piece == 9)
    assert "卡滞风险" in long.message and "偏高" in long.message


def test_sampling_decisions_follow_ac_and_re(standard: Standard) -> None:
    spec = clean("HJ-P14", lot=300)  # 50 samples: Ac=1, Re=2
    spec.set_sample(4, "套孔Ra/μm", "0.17")  # one failure: still 接收
    conclude(spec, "接收", failed_samples=1)
    one = run(spec, standard)
    assert one.computed_decision == "accept" and one.valid
    assert {f.kind for f in one.findings} == {"out_of_limit"}
    spec.set_sample(9, "柱塞套硬度/HRC", "64.5")
    conclude(spec, "接收", failed_samples=2)
    two = run(spec, standard)
    assert two.computed_decision == "reject" and not two.valid
    assert ("batch_decision", "6.2", None, None) in found(two)
    conclude(spec, "拒收", failed_samples=2)
    assert run(spec, standard).valid


def test_missing_values_pieces_and_unknown_models_are_reported(standard: Standard) -> None:
    spec = clean()
    spec.set_piece(3, "配合间隙/mm", "")
    spec.set_piece(4, "密封时间/s", "1O.5")  # a letter O typed for a zero
    del spec.pieces[-1]
    result = run(spec, standard)
    assert not result.valid
    assert found(result) >= {
        ("incomplete", "4.3", 3, None),
        ("incomplete", "4.6", 4, None),
        ("incomplete", "5.1.1", None, None),  # 119 pieces recorded for a lot of 120
    }
    spec = clean()
    spec.fields["产品型号"] = "HJ-P18"
    unknown = run(spec, standard)
    assert any(
        f.kind == "inconsistent" and f.clause == "4.1" and "HJ-P18" in f.message for f in unknown.findings
    )


def test_a_report_without_a_piece_record_is_refused(standard: Standard) -> None:
    text = "# 检验报告\n\n- 报告编号：JY-1\n\n本批全部合格。\n".encode()
    with pytest.raises(ReportLayoutUnknown) as caught:
        parse_report(parse_document("报告.md", text), "报告.md")
    assert caught.value.code == "report_layout_unknown" and "报告.md" in caught.value.message("zh")


def test_english_messages(standard: Standard) -> None:
    spec = clean()
    spec.set_piece(2, "柱塞直径/mm", "11.9990")
    name = "report.xlsx"
    result = audit(parse_report(parse_document(name, xlsx(spec)), name), standard, lang="en")
    messages = [f.message for f in result.findings]
    assert any(
        m.startswith("Piece 2: 柱塞直径 11.999 mm is outside Q/HJ 017—2024 clause 4.1") for m in messages
    )
    assert any("by Q/HJ 017—2024 clause 6.1 it is nonconforming" in m for m in messages)


def test_markdown_report_round_trips_every_field(standard: Standard) -> None:
    spec = clean()
    report = parse_report(parse_document("r.md", markdown(spec)), "r.md")
    assert report.field("检验员签字") == "张明" and report.field("审核人签字") == "李华"
    assert report.declared_sample_size == 20 and len(report.pieces.rows) == 120


def test_a_column_in_a_unit_that_cannot_be_converted_is_refused(standard: Standard) -> None:
    text = markdown(clean()).decode().replace("柱塞直径/mm", "柱塞直径/in")
    with pytest.raises(InvalidRequest) as caught:
        audit(parse_report(parse_document("r.md", text.encode()), "r.md"), standard)
    assert caught.value.code == "report_unit_mismatch" and "柱塞直径/in" in caught.value.message("zh")
    spec = clean()
    for row in spec.pieces:  # the clearance written in μm: 0.0022 mm → 2.2
        row[2] = str(Decimal(row[2]) * 1000)
    spec.set_piece(5, "配合间隙/mm", "3.1")
    micrometres = markdown(spec).decode().replace("配合间隙/mm", "配合间隙/μm")
    converted = audit(parse_report(parse_document("r.md", micrometres.encode()), "r.md"), standard)
    assert {(f.kind, f.measured, f.limit) for f in converted.findings if f.kind == "out_of_limit"} == {
        ("out_of_limit", "3.1", "1.5～3 μm")
    }


def test_a_report_that_cites_another_standard_is_inconsistent(standard: Standard) -> None:
    spec = clean()
    spec.fields["检验依据"] = "Q/HJ 017-2024"  # a hyphen for the dash: the same standard
    assert run(spec, standard).findings == []
    spec.fields["检验依据"] = "Q/HJ 017—2019"
    result = run(spec, standard)
    assert [(f.kind, f.item, f.measured) for f in result.findings] == [
        ("inconsistent", "检验依据", "Q/HJ 017—2019")
    ]
    assert not result.valid
